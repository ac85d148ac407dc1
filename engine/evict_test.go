package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agenthelm/agenthelm/engine"
	"github.com/agenthelm/agenthelm/journal"
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
			loads := &countingJournal{}
			eo := engine.Options{IdleCommit: 20 * time.Millisecond,
				Journal: journalWrapper(func(j *journal.Journal) engine.Journal { loads.Journal = j; return loads }),
				Rules:   rules{"create": {Compensate: &saga.Compensator{Tool: "delete", Args: "{name: .args.name}"}}}}
			if masked {
				eo.Redact = maskArgs
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
			for i := range runs {
				waitStatus(t, s.e, fmt.Sprintf("run-%d", i), saga.Committed)
			}
			want := 0
			if masked {
				want = runs // kept for their originals (fewer than the bound)
			}
			waitInMemory(t, s.e, want, "the committed sagas to leave memory")

			// A call that names an ended saga is refused (rule 15) from its
			// head: its events are not read back for it.
			before := loads.events.Load()
			res, err := s.client.CallTool(ctx, &mcp.CallToolParams{Name: "create", Arguments: map[string]any{"name": "late"},
				Meta: mcp.Meta{engine.MetaSaga: "run-5"}})
			if err != nil || !res.IsError || !strings.Contains(text(res), "saga run-5 is committed and takes no new steps") {
				t.Errorf("a call to the ended run-5 answered %+v, %v; want it refused", res, err)
			}
			if got := loads.events.Load() - before; got != 0 && !masked {
				t.Errorf("refusing a call to the ended run-5 read its events %d times, want none", got)
			}
			if got := s.e.InMemory(); got != want {
				t.Errorf("%d sagas in memory after the refused call, want %d", got, want)
			}

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

// waitStatus waits up to 10 s for a saga to reach a status.
func waitStatus(t *testing.T, e *engine.Engine, id string, want saga.Status) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		sg, err := e.Load(context.Background(), id)
		if err == nil && sg.Status == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited 10 s for saga %s to be %s: %v, %v", id, want, sg, err)
		}
	}
}

// maskArgs redacts every call's arguments whole, for the journal.
func maskArgs(member string, raw json.RawMessage) json.RawMessage {
	if member == "args" {
		return json.RawMessage(`{"name":"***"}`)
	}
	return raw
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
		Redact: maskArgs,
		Rules:  rules{"create": {Compensate: &saga.Compensator{Tool: "delete", Args: "{name: .args.name}"}}}}, proxy.Options{})
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

// countingJournal is the stack's real journal, counting the reads of whole
// sagas.
type countingJournal struct {
	*journal.Journal
	events atomic.Int64
}

func (c *countingJournal) Events(ctx context.Context, saga string) ([]journal.Event, error) {
	c.events.Add(1)
	return c.Journal.Events(ctx, saga)
}
