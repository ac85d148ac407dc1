package compensators

import (
	"maps"
	"slices"

	"github.com/agenthelm/agenthelm/config"
	"github.com/agenthelm/agenthelm/saga"
)

// packs are the ready-made rule sets, by the name upstreams.*.packs uses.
// docs/COMPENSATORS.md describes what each covers.
var packs = map[string]map[string]Rule{
	"memory":     memoryPack(),
	"filesystem": filesystemPack(),
}

func init() {
	// config validates upstreams.*.packs against KnownPacks; the packs
	// live here.
	for name := range packs {
		config.KnownPacks[name] = true
	}
}

// PackNames returns the names of the packs, sorted.
func PackNames() []string { return slices.Sorted(maps.Keys(packs)) }

// compensate builds a pack's compensator: a call, then further calls.
func compensate(tool, args string, then ...saga.Call) *saga.Compensator {
	needs := NeedsResult(args)
	for _, c := range then {
		needs = needs || NeedsResult(c.Args)
	}
	return &saga.Compensator{Tool: tool, Args: args, NeedsResult: needs, Then: then}
}

// readOnly is the rule of a tool that changes nothing.
var readOnly = Rule{ReadOnly: true, Idempotent: true}
