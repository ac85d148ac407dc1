package saga

import (
	"encoding/json"
	"testing"
	"time"
)

// TestForkIsolatesApply: the engine applies events to a fork and keeps it
// only once the journal has them, so a fork must never change its origin.
func TestForkIsolatesApply(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := New("s")
	for _, ev := range []Event{
		{Kind: EvOpened, Time: now},
		{Kind: EvIntent, Step: 1, Time: now, Intent: &Intent{Tool: "a", Compensator: &Compensator{Tool: "undo"}}},
		{Kind: EvOutcome, Step: 1, Time: now, Status: string(Succeeded)},
		{Kind: EvAborted, Time: now},
		{Kind: EvCompStarted, Step: 1, Attempt: 1, Time: now},
		{Kind: EvCompFinished, Step: 1, Attempt: 1, Error: "boom", Time: now},
	} {
		if err := s.Apply(ev); err != nil {
			t.Fatal(err)
		}
	}
	before, _ := json.Marshal(s)
	f := s.Fork()
	for _, ev := range []Event{
		{Kind: EvIntent, Step: 2, Time: now, Intent: &Intent{Tool: "b"}},
		{Kind: EvOutcome, Step: 1, Time: now, Status: string(InDoubt)},
		{Kind: EvRetry, Time: now},
		{Kind: EvCompFinished, Step: 1, Attempt: 2, OK: true, Time: now},
		{Kind: EvStatus, Status: string(Compensated), Time: now},
	} {
		_ = f.Apply(ev) // the intent after abort is refused or not: the origin must not change either way
	}
	after, _ := json.Marshal(s)
	if string(before) != string(after) {
		t.Errorf("applying to a fork changed the origin:\nbefore %s\nafter  %s", before, after)
	}
	if f.Status != Compensated || f.Step(1).Comp.Status != CompDone {
		t.Errorf("fork state = %s / %s, want the applied events", f.Status, f.Step(1).Comp.Status)
	}
}
