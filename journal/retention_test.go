package journal

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestRetentionRemovesExpiredTerminalSagas(t *testing.T) {
	ctx := context.Background()
	clock := newClock()
	j := openTest(t, Options{Sync: true, Retention: time.Hour, noRetentionFloor: true, now: clock.Now})

	mustAppend(t, j, Batch{Saga: "done", Events: []Event{ev("a", ""), ev("b", "")},
		Head: &Head{Status: "committed", Terminal: true, Tools: []string{"charge"}, NextAttempt: clock.Now()}})
	mustAppend(t, j, Batch{Saga: "open", Events: []Event{ev("a", "")}, Head: &Head{Status: "open", Tools: []string{"charge"}}})
	h, err := j.Head(ctx, "done")
	if err != nil || !h.Expires.Equal(clock.Now().Add(time.Hour)) {
		t.Fatalf("Head(done).Expires = %v, %v; want commit time + 1h", h.Expires, err)
	}

	clock.Add(59 * time.Minute)
	if err := j.GC(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := j.Head(ctx, "done"); err != nil {
		t.Fatalf("Head(done) before expiry: %v", err)
	}

	clock.Add(time.Minute)
	if err := j.GC(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := j.Head(ctx, "done"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Head(done) after expiry = %v, want ErrNotFound", err)
	}
	if _, err := j.Events(ctx, "done"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Events(done) after expiry = %v, want ErrNotFound", err)
	}
	if keys := rawKeys(t, j.db, "done"); len(keys) != 0 {
		t.Errorf("keys left of an expired saga: %v", keys)
	}
	heads, err := j.List(ctx, Filter{Tool: "charge"})
	if err != nil || !cmp.Equal([]string{"open"}, sagasOf(heads)) {
		t.Errorf("List(charge) = %v, %v; want [open]", sagasOf(heads), err)
	}
	// Non-terminal sagas never expire.
	clock.Add(10 * 365 * 24 * time.Hour)
	if err := j.GC(ctx); err != nil {
		t.Fatal(err)
	}
	if events, err := j.Events(ctx, "open"); err != nil || len(events) != 1 {
		t.Errorf("Events(open) ten years on = %v, %v", events, err)
	}
	// A reused id starts a new saga at seq 1.
	if seqs := mustAppend(t, j, Batch{Saga: "done", Events: []Event{ev("again", "")}}); seqs[0] != 1 {
		t.Errorf("first seq of a reused id = %d, want 1", seqs[0])
	}
}

func TestRetentionExpiryFollowsTerminalState(t *testing.T) {
	ctx := context.Background()
	clock := newClock()
	j := openTest(t, Options{Sync: true, Retention: time.Hour, noRetentionFloor: true, now: clock.Now})
	start := clock.Now()

	mustAppend(t, j, Batch{Saga: "s", Events: []Event{ev("a", "")}, Head: &Head{Status: "committed", Terminal: true}})
	// Writing a terminal head again keeps the original expiry.
	clock.Add(30 * time.Minute)
	mustAppend(t, j, Batch{Saga: "s", Events: []Event{ev("note", "")}, Head: &Head{Status: "committed", Terminal: true, Steps: 1}})
	if h, _ := j.Head(ctx, "s"); !h.Expires.Equal(start.Add(time.Hour)) {
		t.Errorf("Expires after a second terminal head = %v, want %v", h.Expires, start.Add(time.Hour))
	}
	// An operator rollback reopens it: no expiry while it is not terminal.
	mustAppend(t, j, Batch{Saga: "s", Events: []Event{ev("rollback", "")}, Head: &Head{Status: "compensating"}})
	if h, _ := j.Head(ctx, "s"); !h.Expires.IsZero() {
		t.Errorf("Expires of a reopened saga = %v, want zero", h.Expires)
	}
	clock.Add(2 * time.Hour)
	if err := j.GC(ctx); err != nil {
		t.Fatal(err)
	}
	if events, err := j.Events(ctx, "s"); err != nil || len(events) != 3 {
		t.Fatalf("Events(s) of the reopened saga = %d, %v; want all 3", len(events), err)
	}
	// Terminal again: a fresh retention period from now.
	mustAppend(t, j, Batch{Saga: "s", Head: &Head{Status: "compensated", Terminal: true}})
	if h, _ := j.Head(ctx, "s"); !h.Expires.Equal(clock.Now().Add(time.Hour)) {
		t.Errorf("Expires after terminal again = %v, want %v", h.Expires, clock.Now().Add(time.Hour))
	}
}

// TestSweepLargeSaga expires a saga with more events than one sweep step
// deletes, so the sweep must take several transactions.
func TestSweepLargeSaga(t *testing.T) {
	ctx := context.Background()
	clock := newClock()
	j := openTest(t, Options{Sync: true, Retention: time.Minute, noRetentionFloor: true, now: clock.Now})
	const n = sweepDeletes + 1500
	for start := 0; start < n; start += 1000 {
		var events []Event
		for range min(1000, n-start) {
			events = append(events, ev("k", ""))
		}
		mustAppend(t, j, Batch{Saga: "big", Events: events})
	}
	for i := range 3 {
		mustAppend(t, j, Batch{Saga: fmt.Sprintf("small%d", i), Events: []Event{ev("k", "")}, Head: &Head{Status: "done", Terminal: true}})
	}
	mustAppend(t, j, Batch{Saga: "big", Head: &Head{Status: "done", Terminal: true}})
	clock.Add(time.Hour)
	if err := j.GC(ctx); err != nil {
		t.Fatal(err)
	}
	for _, saga := range []string{"big", "small0", "small1", "small2"} {
		if _, err := j.Events(ctx, saga); !errors.Is(err, ErrNotFound) {
			t.Errorf("Events(%s) after expiry = %v, want ErrNotFound", saga, err)
		}
	}
	if keys := rawKeys(t, j.db, "v1/"); len(keys) != 1 {
		t.Errorf("keys left after every saga expired: %d (%v...)", len(keys), keys[:min(3, len(keys))])
	}
}

func TestMaintenanceSweepsPeriodically(t *testing.T) {
	ctx := context.Background()
	clock := newClock()
	j := openTest(t, Options{Sync: true, Retention: time.Minute, noRetentionFloor: true, now: clock.Now,
		sweepInterval: 10 * time.Millisecond})
	mustAppend(t, j, Batch{Saga: "s", Events: []Event{ev("a", "")}, Head: &Head{Status: "done", Terminal: true}})
	clock.Add(time.Hour)
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := j.Head(ctx, "s")
		if errors.Is(err, ErrNotFound) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("expired saga still there after 10s of 10ms sweeps: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestGCRunsAndHonoursContext(t *testing.T) {
	ctx := context.Background()
	clock := newClock()
	j := openTest(t, Options{Sync: true, Retention: time.Minute, noRetentionFloor: true, now: clock.Now})
	body := fmt.Sprintf("%q", strings.Repeat("x", valueThreshold))
	for i := range 20 {
		mustAppend(t, j, Batch{Saga: fmt.Sprintf("s%d", i), Events: []Event{ev("big", body)}, Head: &Head{Status: "done", Terminal: true}})
	}
	clock.Add(time.Hour)
	// GC must run cleanly (sweep, then value-log passes until Badger finds
	// nothing to rewrite); how much Badger reclaims depends on its own
	// discard statistics.
	if err := j.GC(ctx); err != nil {
		t.Fatalf("GC: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := j.GC(cctx); !errors.Is(err, context.Canceled) {
		t.Errorf("GC(cancelled) = %v, want context.Canceled", err)
	}
}
