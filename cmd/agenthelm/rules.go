package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/agenthelm/agenthelm/compensators"
	"github.com/agenthelm/agenthelm/config"
	"github.com/agenthelm/agenthelm/engine"
)

// rules gives the engine each tool's rule from the compensators Set: the
// configuration's, the packs' and trusted upstreams' annotations.
type rules struct {
	set *compensators.Set
	cfg *config.Config
}

var _ engine.Rules = rules{}

func newRules(cfg *config.Config) (rules, error) {
	set, err := compensators.New(cfg)
	if err != nil {
		return rules{}, err
	}
	return rules{set: set, cfg: cfg}, nil
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
	// Forward retries are configured per tool and only for idempotent ones
	// (config validation refuses the rest).
	if t, ok := r.cfg.Upstreams[upstream].Tools[tool]; ok && t.Retry != nil && c.Idempotent {
		rule.Retry = &engine.Retry{Attempts: t.Retry.Attempts, Backoff: time.Duration(t.Retry.Backoff)}
	}
	for _, rt := range r.cfg.Routes {
		if rt.Upstream == upstream && rt.Tool == tool && rt.Retry != nil && c.Idempotent {
			rule.Retry = &engine.Retry{Attempts: rt.Retry.Attempts, Backoff: time.Duration(rt.Retry.Backoff)}
		}
	}
	return rule
}

// evalExpr builds a capture's or a compensation's arguments. An expression
// that declares the step cannot be undone (error({cannot_undo: ...})) is
// reported to the engine as such, so the step goes to needs_human at once
// instead of being retried until the saga is stuck.
func evalExpr(expr string, args, result, capture json.RawMessage) (json.RawMessage, error) {
	out, err := compensators.Eval(expr, args, result, capture)
	if errors.Is(err, compensators.ErrCannotUndo) {
		return nil, fmt.Errorf("%w: %w", engine.ErrCannotUndo, err)
	}
	return out, err
}
