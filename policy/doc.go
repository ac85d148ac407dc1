// Package policy is the OPA gate every tool call passes: it builds the
// versioned input document (Input, docs/POLICY.md), evaluates
// data.agenthelm.authz.decision with a query prepared once per policy
// revision (rules that depend only on data are evaluated then too, see
// static.go, and those that depend only on the tool once per tool, see
// toolcache.go), and turns the result into allow, deny or require_approval,
// failing closed on anything unexpected. It reloads the policy directory on
// change (Watch) without ever blocking Decide, and runs Rego unit tests
// (RunTests) and one-off evaluations (EvalFile) for the CLI.
//
// It imports toolcall and OPA, nothing from the saga engine or the journal.
//
//	eng, err := policy.New(ctx, policy.Options{Dir: "policies", Logger: log})
//	go func() { errc <- eng.Watch(ctx) }()
//	d := eng.Decide(ctx, policy.NewInput(call, tool, agent, saga, time.Now()))
//	switch d.Verdict() { case policy.VerdictDeny: ...; case policy.VerdictRequireApproval: ... }
package policy
