// Package compensators knows, for every tool of every upstream, what the
// saga engine must do with its calls: whether the tool is read-only,
// irreversible or idempotent, which call captures the state it is about to
// change, and which calls undo it. Rules come from agenthelm.yaml, from
// ready-made packs for well-known MCP servers (packs: [memory]) and from
// the tool annotations of trusted upstreams, in that order of precedence.
// It also runs the jq expressions that build those calls' arguments (Eval).
//
// It imports config and saga, not the engine, and does no I/O.
//
//	set, err := compensators.New(cfg)               // at start-up
//	errs := set.Check("memory", toolNames)          // after tools/list
//	rule := set.Rule("memory", "create_entities")
//	args, err := compensators.Eval(rule.Compensate.Args, args, result, capture)
package compensators
