package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/agenthelm/agenthelm/engine"
	"github.com/agenthelm/agenthelm/proxy"
	"github.com/agenthelm/agenthelm/saga"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestEndedSagasLeaveMemory: a saga that has been committed (here when
// idle) leaves the engine's memory, so that a sidecar running for weeks
// does not hold every agent run it ever saw; an operator can still roll it
// back, from the journal, and it leaves memory again once compensated.
// Ended sagas whose journal holds masked values keep the originals their
// undo needs (up to a bound): their rollback uses the real value.
func TestEndedSagasLeaveMemory(t *testing.T) {
	for _, masked := range []bool{false, true} {
		t.Run(fmt.Sprintf("masked=%v", masked), func(t *testing.T) {
			eo := engine.Options{IdleCommit: 20 * time.Millisecond,
				Rules: rules{"create": {Compensate: &saga.Compensator{Tool: "delete", Args: "{name: .args.name}"}}}}
			if masked {
				eo.Redact = func(member string, raw json.RawMessage) json.RawMessage {
					if member == "args" {
						return json.RawMessage(`{"name":"***"}`)
					}
					return raw
				}
			}
			s := newStack(t, "", eo, proxy.Options{})
			ctx := context.Background()
			const runs = 10
			for i := range runs {
				res, err := s.client.CallTool(ctx, &mcp.CallToolParams{Name: "create", Arguments: map[string]any{"name": fmt.Sprintf("item-%d", i)},
					Meta: mcp.Meta{engine.MetaSaga: fmt.Sprintf("run-%d", i)}})
				if err != nil || res.IsError {
					t.Fatalf("run %d: %+v %v", i, res, err)
				}
			}
			want := 0
			if masked {
				want = runs // kept for their originals (fewer than the bound)
			}
			waitInMemory(t, s.e, want, "the committed sagas to leave memory")

			sg, err := s.e.Rollback(ctx, "run-3", "ops", "undo run 3")
			if err != nil || sg.Status != saga.Compensated {
				t.Fatalf("rollback of committed run-3: %v, %v", sg, err)
			}
			ops, _ := s.led.snapshot()
			if last := ops[len(ops)-1]; last != "delete item-3" {
				t.Errorf("the rollback ran %q, want delete item-3 (the real name)", last)
			}
			waitInMemory(t, s.e, want, "the compensated saga to leave memory")
			if !masked {
				return
			}
			if strings.Contains(strings.Join(ops, ","), "***") {
				t.Errorf("a compensation used the masked value: %v", ops)
			}
		})
	}
}

func waitInMemory(t *testing.T, e *engine.Engine, want int, what string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); e.InMemory() != want; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited 10 s for %s: %d sagas in memory, want %d", what, e.InMemory(), want)
		}
	}
}

// TestKeptSagasAreBounded: ended sagas kept for their redacted values are
// the latest 256; older ones leave memory too.
func TestKeptSagasAreBounded(t *testing.T) {
	s := newStack(t, "", engine.Options{IdleCommit: 10 * time.Millisecond,
		Redact: func(member string, raw json.RawMessage) json.RawMessage {
			if member == "args" {
				return json.RawMessage(`{"name":"***"}`)
			}
			return raw
		},
		Rules: rules{"create": {Compensate: &saga.Compensator{Tool: "delete", Args: "{name: .args.name}"}}}}, proxy.Options{})
	ctx := context.Background()
	for i := range 300 {
		res, err := s.client.CallTool(ctx, &mcp.CallToolParams{Name: "create", Arguments: map[string]any{"name": fmt.Sprintf("item-%d", i)},
			Meta: mcp.Meta{engine.MetaSaga: fmt.Sprintf("run-%d", i)}})
		if err != nil || res.IsError {
			t.Fatalf("run %d: %+v %v", i, res, err)
		}
	}
	waitInMemory(t, s.e, 256, "all but the latest 256 ended sagas to leave memory")
}
