package main

import (
	"github.com/agenthelm/agenthelm/compensators"
	"github.com/agenthelm/agenthelm/config"
	"github.com/agenthelm/agenthelm/engine"
)

// rules gives the engine each tool's rule from the compensators Set: the
// configuration's, the packs' and trusted upstreams' annotations.
type rules struct{ set *compensators.Set }

var _ engine.Rules = rules{}

func newRules(cfg *config.Config) (rules, error) {
	set, err := compensators.New(cfg)
	if err != nil {
		return rules{}, err
	}
	return rules{set}, nil
}

func (r rules) Rule(upstream, tool string) engine.Rule {
	c := r.set.Rule(upstream, tool)
	rule := engine.Rule{
		ReadOnly:              c.ReadOnly,
		Irreversible:          c.Irreversible,
		Idempotent:            c.Idempotent,
		ErrorsMayLeaveEffects: c.ErrorsMayLeaveEffects,
		ContinueOnError:       c.ContinueOnError,
		Compensate:            c.Compensate,
	}
	if c.Capture != nil {
		rule.Capture = &engine.Capture{Tool: c.Capture.Tool, Args: c.Capture.Args}
	}
	return rule
}

// evalExpr builds a capture's or a compensation's arguments.
var evalExpr engine.Evaluator = compensators.Eval
