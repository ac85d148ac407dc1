package journal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestAppendAssignsSeqsAndKeepsBodies(t *testing.T) {
	ctx := context.Background()
	clock := newClock()
	j := openTest(t, Options{Sync: true, now: clock.Now})
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("CET", 3600))

	seqs := mustAppend(t, j, Batch{Saga: "s", Events: []Event{
		{Kind: "saga.open", Time: at, Body: json.RawMessage(`{"b": [1, 2.50, "x"],  "a": null}`)},
		{Kind: "step.intent", Body: json.RawMessage("  \n{\"n\":1}\t")},
		{Kind: "note"},
	}})
	if diff := cmp.Diff([]uint64{1, 2, 3}, seqs); diff != "" {
		t.Fatalf("seqs (-want +got):\n%s", diff)
	}
	seqs = mustAppend(t, j, Batch{Saga: "s", Events: []Event{ev("step.outcome", `{}`)}})
	if diff := cmp.Diff([]uint64{4}, seqs); diff != "" {
		t.Fatalf("second Append seqs (-want +got):\n%s", diff)
	}

	got, err := j.Events(ctx, "s")
	if err != nil {
		t.Fatal(err)
	}
	want := []Event{
		{Seq: 1, Kind: "saga.open", Time: at.UTC(), Body: json.RawMessage(`{"b": [1, 2.50, "x"],  "a": null}`)},
		{Seq: 2, Kind: "step.intent", Time: clock.Now(), Body: json.RawMessage(`{"n":1}`)},
		{Seq: 3, Kind: "note", Time: clock.Now()},
		{Seq: 4, Kind: "step.outcome", Time: clock.Now(), Body: json.RawMessage(`{}`)},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Events (-want +got):\n%s", diff)
	}
}

func TestAppendRejectsInvalidBatches(t *testing.T) {
	j := openTest(t, Options{Sync: true})
	long := strings.Repeat("x", MaxIDLen+1)
	for _, tc := range []struct {
		name string
		b    Batch
		want error
		msg  string
	}{
		{"empty saga", Batch{Events: []Event{ev("a", "")}}, ErrInvalid, `journal: invalid batch for saga "": empty saga id`},
		{"nothing to write", Batch{Saga: "s"}, ErrInvalid, "no events and no head"},
		{"long saga id", Batch{Saga: long, Events: []Event{ev("a", "")}}, ErrInvalid, "saga id is 1025 bytes, above 1024"},
		{"event without kind", Batch{Saga: "s", Events: []Event{ev("a", ""), {}}}, ErrInvalid, "event 1 has no kind"},
		{"event with seq", Batch{Saga: "s", Events: []Event{{Kind: "a", Seq: 7}}}, ErrInvalid, "event 0 has seq 7; Append assigns seqs"},
		{"body not JSON", Batch{Saga: "s", Events: []Event{ev("a", `{"a":`)}}, ErrInvalid, "event 0: body is not valid JSON"},
		{"head of another saga", Batch{Saga: "s", Head: &Head{Saga: "t", Status: "open"}}, ErrInvalid, `head is for saga "t"`},
		{"head without status", Batch{Saga: "s", Head: &Head{}}, ErrInvalid, "head has no status"},
		{"long tool name", Batch{Saga: "s", Head: &Head{Status: "open", Tools: []string{long}}}, ErrInvalid, "tool name is 1025 bytes"},
		{"event above the record limit", Batch{Saga: "s", Events: []Event{{Kind: "a", Body: json.RawMessage(`"` + strings.Repeat("x", MaxRecordSize) + `"`)}}},
			ErrTooLarge, `journal: event 0 of saga "s" is 16.0 MiB, above the 16.0 MiB record limit`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seqs, err := j.Append(context.Background(), tc.b)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("Append = %v, %v; want %v containing %q", seqs, err, tc.want, tc.msg)
			}
		})
	}
	if err := j.Healthy(); err != nil {
		t.Errorf("Healthy() after invalid batches = %v", err)
	}
	if _, err := j.Events(context.Background(), "s"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Events(s) = %v, want ErrNotFound: nothing may have been written", err)
	}
}

// TestConcurrentAppends appends from many goroutines to shared and private
// sagas and checks that every saga's seqs are 1..n with no gap, that each
// Append got the seqs its events are stored under, and that a reopened
// journal holds exactly the same events.
func TestConcurrentAppends(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	var commits, records int
	var statsMu sync.Mutex
	j := openTest(t, Options{Dir: dir, Sync: true, MaxBatch: 64, OnCommit: func(n int, _ time.Duration) {
		statsMu.Lock()
		commits++
		records += n
		statsMu.Unlock()
	}})

	const writers, perWriter = 32, 40
	type sent struct {
		saga string
		seqs []uint64
		body []string
	}
	results := make(chan sent, writers*perWriter)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWriter {
				saga := fmt.Sprintf("shared-%d", i%3)
				if w%4 == 0 {
					saga = fmt.Sprintf("own-%d", w)
				}
				n := 1 + (w+i)%3
				var events []Event
				var bodies []string
				for k := range n {
					b := fmt.Sprintf(`{"w":%d,"i":%d,"k":%d}`, w, i, k)
					events = append(events, ev("k", b))
					bodies = append(bodies, b)
				}
				head := &Head{Status: "open", Tools: []string{fmt.Sprintf("tool-%d", w%5)}}
				seqs, err := j.Append(ctx, Batch{Saga: saga, Events: events, Head: head})
				if err != nil {
					t.Errorf("Append: %v", err)
					return
				}
				results <- sent{saga, seqs, bodies}
			}
		}()
	}
	wg.Wait()
	close(results)

	want := map[string]map[uint64]string{}
	for r := range results {
		if want[r.saga] == nil {
			want[r.saga] = map[uint64]string{}
		}
		for k, seq := range r.seqs {
			if k > 0 && seq != r.seqs[k-1]+1 {
				t.Errorf("one Append got non-consecutive seqs %v", r.seqs)
			}
			if old, dup := want[r.saga][seq]; dup {
				t.Fatalf("saga %s seq %d assigned twice (%s and %s)", r.saga, seq, old, r.body[k])
			}
			want[r.saga][seq] = r.body[k]
		}
	}
	check := func(j *Journal) map[string][]Event {
		all := map[string][]Event{}
		for saga, bySeq := range want {
			events, err := j.Events(ctx, saga)
			if err != nil {
				t.Fatalf("Events(%s): %v", saga, err)
			}
			if len(events) != len(bySeq) {
				t.Errorf("saga %s: %d events stored, %d acknowledged", saga, len(events), len(bySeq))
			}
			for i, e := range events {
				if e.Seq != uint64(i+1) {
					t.Fatalf("saga %s: event %d has seq %d (gap or disorder)", saga, i, e.Seq)
				}
				if string(e.Body) != bySeq[e.Seq] {
					t.Errorf("saga %s seq %d = %s, Append was told %s", saga, e.Seq, e.Body, bySeq[e.Seq])
				}
			}
			h, err := j.Head(ctx, saga)
			if err != nil || h.LastSeq != uint64(len(events)) {
				t.Errorf("Head(%s) = LastSeq %d, %v; want %d", saga, h.LastSeq, err, len(events))
			}
			all[saga] = events
		}
		return all
	}
	before := check(j)
	statsMu.Lock()
	t.Logf("%d Appends in %d commits (%.1f per commit)", records, commits, float64(records)/float64(commits))
	if records != writers*perWriter {
		t.Errorf("OnCommit counted %d Appends, want %d", records, writers*perWriter)
	}
	statsMu.Unlock()

	if err := j.Close(ctx); err != nil {
		t.Fatal(err)
	}
	j2 := openTest(t, Options{Dir: dir, Sync: true})
	if diff := cmp.Diff(before, check(j2)); diff != "" {
		t.Errorf("events after reopen differ (-before +after):\n%s", diff)
	}
	// The seq counter continues from the stored events after a reopen.
	if seqs := mustAppend(t, j2, Batch{Saga: "shared-0", Events: []Event{ev("k", "")}}); seqs[0] != uint64(len(before["shared-0"])+1) {
		t.Errorf("first seq after reopen = %d, want %d", seqs[0], len(before["shared-0"])+1)
	}
}

// TestGroupCommit holds the committer inside one commit while 50 Appends
// queue, and checks they then share a single transaction.
func TestGroupCommit(t *testing.T) {
	ctx := context.Background()
	g := newGate()
	var mu sync.Mutex
	var batches []int
	j := openTest(t, Options{Sync: true, commit: g.commit, OnCommit: func(n int, d time.Duration) {
		mu.Lock()
		batches = append(batches, n)
		mu.Unlock()
		if d <= 0 {
			t.Errorf("OnCommit duration %v", d)
		}
	}})
	first := appendAsync(j, ctx, "a", 1)
	<-g.entered
	var rest []<-chan appendResult
	for i := range 50 {
		rest = append(rest, appendAsync(j, ctx, fmt.Sprintf("s%d", i%7), 1))
	}
	waitQueued(t, j, 50)
	close(g.release)
	if r := <-first; r.err != nil {
		t.Fatal(r.err)
	}
	for _, c := range rest {
		if r := <-c; r.err != nil {
			t.Fatal(r.err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if diff := cmp.Diff([]int{1, 50}, batches); diff != "" {
		t.Errorf("Appends per commit (-want +got):\n%s", diff)
	}
}

// TestGroupSplitsAtBadgerTxnLimit queues more than one Badger transaction
// can hold: the committer must split the group, never fail a caller for
// it, and fail only the batch that cannot fit even alone.
func TestGroupSplitsAtBadgerTxnLimit(t *testing.T) {
	ctx := context.Background()
	g := newGate()
	var mu sync.Mutex
	var batches []int
	j := openTest(t, Options{Sync: true, commit: g.commit, OnCommit: func(n int, _ time.Duration) {
		mu.Lock()
		batches = append(batches, n)
		mu.Unlock()
	}})
	limit := j.db.MaxBatchSize()
	// 60 KiB bodies stay below the value threshold, so they count fully
	// against the transaction limit (about 2.4 MiB): ~40 fit in one.
	body := fmt.Sprintf("%q", strings.Repeat("x", 60<<10))
	one := func(saga string, n int) Batch {
		b := Batch{Saga: saga}
		for range n {
			b.Events = append(b.Events, Event{Kind: "k", Body: json.RawMessage(body)})
		}
		return b
	}

	first := appendAsync(j, ctx, "first", 1)
	<-g.entered
	const n = 100
	results := make(chan appendResult, n)
	for i := range n {
		go func() {
			seqs, err := j.Append(ctx, one(fmt.Sprintf("s%d", i%10), 1))
			results <- appendResult{seqs, err}
		}()
	}
	waitQueued(t, j, n)
	tooBig := make(chan error, 1)
	go func() {
		_, err := j.Append(ctx, one("huge", int(limit/(60<<10))+5))
		tooBig <- err
	}()
	waitQueued(t, j, n+1)
	close(g.release)

	<-first
	for range n {
		if r := <-results; r.err != nil {
			t.Errorf("Append in a split group: %v", r.err)
		}
	}
	err := <-tooBig
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), `journal: batch for saga "huge" (45 events, 45 keys) does not fit in one transaction`) {
		t.Errorf("oversized batch = %v, want ErrTooLarge", err)
	}
	mu.Lock()
	total := 0
	for _, b := range batches[1:] {
		total += b
	}
	t.Logf("Appends per commit: %v", batches)
	if len(batches) < 4 || total != n {
		t.Errorf("Appends per commit = %v, want the %d queued ones split over several commits", batches, n)
	}
	mu.Unlock()
	for i := range 10 {
		events, err := j.Events(ctx, fmt.Sprintf("s%d", i))
		if err != nil || len(events) != n/10 || events[len(events)-1].Seq != n/10 {
			t.Errorf("saga s%d: %d events, %v", i, len(events), err)
		}
	}
	if _, err := j.Events(ctx, "huge"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Events(huge) = %v, want ErrNotFound", err)
	}
	if err := j.Healthy(); err != nil {
		t.Errorf("Healthy() = %v", err)
	}
}

func TestAppendContext(t *testing.T) {
	g := newGate()
	dir := t.TempDir()
	j := openTest(t, Options{Dir: dir, Sync: true, commit: g.commit})

	done, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := j.Append(done, Batch{Saga: "s", Events: []Event{ev("a", "")}}); !errors.Is(err, context.Canceled) || errors.Is(err, ErrInDoubt) {
		t.Errorf("Append(cancelled ctx) = %v, want context.Canceled and not in doubt", err)
	}

	first := appendAsync(j, context.Background(), "s", 1)
	<-g.entered
	ctx, cancel := context.WithCancel(context.Background())
	waiting := appendAsync(j, ctx, "s", 1)
	waitQueued(t, j, 1)
	cancel()
	r := <-waiting
	if !errors.Is(r.err, ErrInDoubt) || !errors.Is(r.err, context.Canceled) {
		t.Errorf("Append cancelled while queued = %v, want ErrInDoubt and context.Canceled", r.err)
	}
	if r.err.Error() != "journal: append in doubt: context canceled" {
		t.Errorf("message = %q", r.err)
	}
	close(g.release)
	if r := <-first; r.err != nil {
		t.Fatal(r.err)
	}
	// The cancelled request was still queued when the committer took it,
	// so it was dropped: the saga has only the first event.
	if err := j.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	j2 := openTest(t, Options{Dir: dir, Sync: true})
	if events, err := j2.Events(context.Background(), "s"); err != nil || len(events) != 1 {
		t.Errorf("Events(s) = %d events, %v; want only the first", len(events), err)
	}
}

func TestHeadReplacesIndexEntries(t *testing.T) {
	ctx := context.Background()
	clock := newClock()
	j := openTest(t, Options{Sync: true, now: clock.Now})
	created := clock.Now().Add(-time.Minute)
	mustAppend(t, j, Batch{Saga: "s", Events: []Event{ev("open", "")},
		Head: &Head{Status: "open", Created: created, Tools: []string{"charge", "charge", "email"}}})
	clock.Add(time.Second)
	mustAppend(t, j, Batch{Saga: "s", Head: &Head{Status: "compensating", Tools: []string{"charge", "refund"},
		NextAttempt: clock.Now().Add(time.Minute)}})

	h, err := j.Head(ctx, "s")
	if err != nil {
		t.Fatal(err)
	}
	want := Head{Saga: "s", Status: "compensating", Created: created, Updated: clock.Now(), Tools: []string{"charge", "refund"},
		NextAttempt: clock.Now().Add(time.Minute), LastSeq: 1}
	if diff := cmp.Diff(want, h); diff != "" {
		t.Errorf("Head (-want +got):\n%s", diff)
	}
	got := rawKeys(t, j.db, "v1/i/")
	wantKeys := []string{
		fmt.Sprintf("%q", indexKey(prefixDue, nil, timeKey(clock.Now().Add(time.Minute)), "s")),
		fmt.Sprintf("%q", indexKey(prefixLive, nil, timeKey(created), "s")),
		fmt.Sprintf("%q", indexKey(prefixStatus, ptr("compensating"), timeKey(created), "s")),
		fmt.Sprintf("%q", indexKey(prefixTime, nil, timeKey(created), "s")),
		fmt.Sprintf("%q", indexKey(prefixTool, ptr("charge"), timeKey(created), "s")),
		fmt.Sprintf("%q", indexKey(prefixTool, ptr("refund"), timeKey(created), "s")),
	}
	if diff := cmp.Diff(wantKeys, got); diff != "" {
		t.Errorf("index keys (-want +got):\n%s", diff)
	}
}

func ptr[T any](v T) *T { return &v }
