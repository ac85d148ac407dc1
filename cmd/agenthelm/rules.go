package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/agenthelm/agenthelm/config"
	"github.com/agenthelm/agenthelm/engine"
	"github.com/agenthelm/agenthelm/saga"
)

// configRules gives each tool's rule from agenthelm.yaml.
type configRules struct{ cfg *config.Config }

func newRules(cfg *config.Config) (engine.Rules, error) { return configRules{cfg}, nil }

func (r configRules) Rule(up, tool string) engine.Rule {
	t, ok := r.cfg.Upstreams[up].Tools[tool]
	if !ok {
		return engine.Rule{}
	}
	rule := engine.Rule{ReadOnly: t.ReadOnly, Irreversible: t.Irreversible, Idempotent: t.Idempotent,
		ErrorsMayLeaveEffects: t.ErrorsMayLeaveEffects, ContinueOnError: t.OnError == config.OnErrorContinue}
	if c := t.Compensate; c != nil {
		src := c.Args.String()
		rule.Compensate = &saga.Compensator{Tool: c.Tool, Args: src, NeedsResult: strings.Contains(src, ".result")}
	}
	if c := t.Capture; c != nil {
		rule.Capture = &engine.Capture{Tool: c.Tool, Args: c.Args.String()}
	}
	return rule
}

var exprCache sync.Map // source -> config.Expr

// evalExpr builds a tool's arguments from a jq expression over
// {args, result, capture}.
func evalExpr(src string, args, result, capture json.RawMessage) (json.RawMessage, error) {
	if strings.TrimSpace(src) == "" {
		return json.RawMessage("{}"), nil
	}
	var e config.Expr
	if v, ok := exprCache.Load(src); ok {
		e = v.(config.Expr)
	} else {
		var err error
		if e, err = config.CompileExpr(src); err != nil {
			return nil, err
		}
		exprCache.Store(src, e)
	}
	in := map[string]any{}
	for k, raw := range map[string]json.RawMessage{"args": args, "result": result, "capture": capture} {
		var v any
		if len(raw) > 0 {
			if err := json.Unmarshal(raw, &v); err != nil {
				return nil, fmt.Errorf(".%s: %w", k, err)
			}
		}
		in[k] = v
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	v, err := e.Eval(ctx, in)
	if err != nil {
		return nil, err
	}
	if _, ok := v.(map[string]any); !ok {
		return nil, fmt.Errorf("jq expression %q must produce an object, got %T", src, v)
	}
	return json.Marshal(v)
}
