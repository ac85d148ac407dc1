package journal

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// listFixture writes six sagas created a minute apart:
//
//	s0 open      charge         s3 committed charge (terminal)
//	s1 failed    charge, email  s4 open      email
//	s2 committed email          s5 failed    refund
func listFixture(t *testing.T, j *Journal, t0 time.Time) {
	t.Helper()
	specs := []struct {
		status string
		tools  []string
	}{
		{"open", []string{"charge"}},
		{"failed", []string{"charge", "email"}},
		{"committed", []string{"email"}},
		{"committed", []string{"charge"}},
		{"open", []string{"email"}},
		{"failed", []string{"refund"}},
	}
	for i, s := range specs {
		mustAppend(t, j, Batch{Saga: fmt.Sprintf("s%d", i), Events: []Event{ev("open", "")},
			Head: &Head{Status: s.status, Created: t0.Add(time.Duration(i) * time.Minute), Tools: s.tools,
				Terminal: s.status != "open"}})
	}
}

func TestList(t *testing.T) {
	ctx := context.Background()
	j := openTest(t, Options{Sync: true})
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	listFixture(t, j, t0)
	min := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	for _, tc := range []struct {
		f    Filter
		want []string
	}{
		{Filter{}, []string{"s5", "s4", "s3", "s2", "s1", "s0"}},
		{Filter{Limit: 2}, []string{"s5", "s4"}},
		{Filter{Status: "failed"}, []string{"s5", "s1"}},
		{Filter{Status: "committed", Limit: 1}, []string{"s3"}},
		{Filter{Status: "nope"}, nil},
		{Filter{Tool: "charge"}, []string{"s3", "s1", "s0"}},
		{Filter{Tool: "email", Status: "open"}, []string{"s4"}},
		{Filter{Status: "failed", Tool: "email"}, []string{"s1"}},
		{Filter{Since: min(2)}, []string{"s5", "s4", "s3", "s2"}},
		{Filter{Until: min(2)}, []string{"s2", "s1", "s0"}},
		{Filter{Since: min(1), Until: min(3)}, []string{"s3", "s2", "s1"}},
		{Filter{Since: min(1).Add(time.Second), Until: min(3).Add(-time.Nanosecond)}, []string{"s2"}},
		{Filter{Tool: "charge", Since: min(1), Until: min(2)}, []string{"s1"}},
		{Filter{Status: "failed", Since: min(6)}, nil},
	} {
		heads, err := j.List(ctx, tc.f)
		if err != nil {
			t.Fatalf("List(%+v): %v", tc.f, err)
		}
		if diff := cmp.Diff(tc.want, sagasOf(heads)); diff != "" {
			t.Errorf("List(%+v) (-want +got):\n%s", tc.f, diff)
		}
	}
}

func TestNonTerminalAndDue(t *testing.T) {
	ctx := context.Background()
	j := openTest(t, Options{Sync: true})
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	listFixture(t, j, t0)

	got, err := j.NonTerminal(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"s0", "s4"}, sagasOf(got)); diff != "" {
		t.Errorf("NonTerminal (-want +got):\n%s", diff)
	}

	// Retries scheduled at +10s (s4) and +5s (s0); s0 then gets rescheduled.
	mustAppend(t, j, Batch{Saga: "s4", Head: &Head{Status: "compensating", Created: t0.Add(4 * time.Minute), NextAttempt: t0.Add(10 * time.Second)}})
	mustAppend(t, j, Batch{Saga: "s0", Head: &Head{Status: "compensating", Created: t0, NextAttempt: t0.Add(5 * time.Second)}})
	for _, tc := range []struct {
		now  time.Time
		want []string
	}{
		{t0, nil},
		{t0.Add(5 * time.Second), []string{"s0"}},
		{t0.Add(time.Hour), []string{"s0", "s4"}},
		{time.Time{}, nil},
	} {
		due, err := j.Due(ctx, tc.now)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tc.want, sagasOf(due)); diff != "" {
			t.Errorf("Due(%v) (-want +got):\n%s", tc.now, diff)
		}
	}
	mustAppend(t, j, Batch{Saga: "s0", Head: &Head{Status: "compensating", Created: t0, NextAttempt: t0.Add(time.Hour + time.Second)}})
	mustAppend(t, j, Batch{Saga: "s4", Head: &Head{Status: "compensated", Created: t0.Add(4 * time.Minute), Terminal: true}})
	due, err := j.Due(ctx, t0.Add(time.Hour))
	if err != nil || len(due) != 0 {
		t.Errorf("Due after reschedule and completion = %v, %v; want none", sagasOf(due), err)
	}
	if got, _ := j.NonTerminal(ctx); !cmp.Equal([]string{"s0"}, sagasOf(got)) {
		t.Errorf("NonTerminal after s4 completed = %v, want [s0]", sagasOf(got))
	}
}

func TestNotFound(t *testing.T) {
	ctx := context.Background()
	j := openTest(t, Options{Sync: true})
	if _, err := j.Events(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Events(nope) = %v, want ErrNotFound", err)
	}
	if _, err := j.Head(ctx, "nope"); !errors.Is(err, ErrNotFound) || err.Error() != `journal: saga not found: "nope"` {
		t.Errorf("Head(nope) = %v, want ErrNotFound", err)
	}
	// A saga with events but no head, and one with a head but no events.
	mustAppend(t, j, Batch{Saga: "events-only", Events: []Event{ev("a", "")}})
	mustAppend(t, j, Batch{Saga: "head-only", Head: &Head{Status: "open"}})
	if _, err := j.Head(ctx, "events-only"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Head(events-only) = %v, want ErrNotFound", err)
	}
	if events, err := j.Events(ctx, "head-only"); err != nil || len(events) != 0 {
		t.Errorf("Events(head-only) = %v, %v; want none and no error", events, err)
	}
}

// TestIdsThatArePrefixesOfEachOther checks that ids sharing prefixes, or
// holding '/' and NUL bytes, never see each other's events or index keys.
func TestIdsThatArePrefixesOfEachOther(t *testing.T) {
	ctx := context.Background()
	j := openTest(t, Options{Sync: true})
	ids := []string{"a", "a/b", "a\x00", "a\x00b", "ab"}
	for i, id := range ids {
		mustAppend(t, j, Batch{Saga: id, Events: []Event{ev("k", fmt.Sprint(i))},
			Head: &Head{Status: "st" + id, Tools: []string{id}}})
	}
	for i, id := range ids {
		events, err := j.Events(ctx, id)
		if err != nil || len(events) != 1 || string(events[0].Body) != fmt.Sprint(i) {
			t.Errorf("Events(%q) = %v, %v", id, events, err)
		}
		for _, f := range []Filter{{Status: "st" + id}, {Tool: id}} {
			heads, err := j.List(ctx, f)
			if err != nil || !cmp.Equal([]string{id}, sagasOf(heads)) {
				t.Errorf("List(%+v) = %q, %v; want only %q", f, sagasOf(heads), err, id)
			}
		}
	}
}

// TestListReadsNoEventBodies stores events big enough to live in Badger's
// value log, then corrupts the value-log file that holds them. Listing and
// heads still work (they never read event bodies); Events reports the
// corruption.
func TestListReadsNoEventBodies(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	j, err := Open(ctx, Options{Dir: dir, Sync: true})
	if err != nil {
		t.Fatal(err)
	}
	big := fmt.Sprintf("%q", strings.Repeat("x", 2*valueThreshold))
	for i := range 8 {
		mustAppend(t, j, Batch{Saga: fmt.Sprintf("s%d", i),
			Events: []Event{ev("big", big), ev("big", big)},
			Head:   &Head{Status: "open", Tools: []string{"t"}}})
	}
	if err := j.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// Open and close once more so that a newer value-log file exists.
	if j, err = Open(ctx, Options{Dir: dir, Sync: true}); err != nil {
		t.Fatal(err)
	}
	if err := j.Close(ctx); err != nil {
		t.Fatal(err)
	}
	vlogs, _ := filepath.Glob(filepath.Join(dir, "*.vlog"))
	if len(vlogs) != 2 {
		t.Fatalf("value log files %v, want 2 (the one with the bodies and a new one)", vlogs)
	}
	// Badger checks (and truncates) only the newest value-log file at open,
	// so corrupt the older one, which holds the bodies.
	f, err := os.OpenFile(vlogs[0], os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := f.Stat()
	if st.Size() < 16*valueThreshold {
		t.Fatalf("%s is %d bytes: the bodies are not in the value log", vlogs[0], st.Size())
	}
	junk := []byte(strings.Repeat("\xde\xad\xbe\xef", 1024))
	for off := int64(4096); off+int64(len(junk)) < st.Size(); off += 32 << 10 {
		if _, err := f.WriteAt(junk, off); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()

	var logs logBuffer
	j = openTest(t, Options{Dir: dir, Sync: true, Logger: bufferLogger(&logs)})
	heads, err := j.List(ctx, Filter{Tool: "t"})
	if err != nil || len(heads) != 8 {
		t.Fatalf("List over corrupted event bodies = %d heads, %v; want 8", len(heads), err)
	}
	if got, err := j.NonTerminal(ctx); err != nil || len(got) != 8 {
		t.Errorf("NonTerminal = %d heads, %v", len(got), err)
	}
	if _, err := j.Head(ctx, "s3"); err != nil {
		t.Errorf("Head(s3): %v", err)
	}
	if logs.String() != "" {
		t.Errorf("listing logged:\n%s", logs.String())
	}
	// Badger only logs a failed value read and hands back an empty value;
	// the envelope decode turns that into ErrCorrupt.
	if _, err := j.Events(ctx, "s3"); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Events(s3) over a corrupted value log = %v, want ErrCorrupt", err)
	}
	if !strings.Contains(logs.String(), "checksum mismatch") {
		t.Errorf("Badger did not log a checksum mismatch:\n%s", logs.String())
	}
}

func TestIndexWalksAreKeyOnly(t *testing.T) {
	for _, reverse := range []bool{false, true} {
		if o := keysOnly(prefixTime, reverse); o.PrefetchValues || o.Reverse != reverse || string(o.Prefix) != string(prefixTime) {
			t.Errorf("keysOnly(%v) = %+v", reverse, o)
		}
	}
}
