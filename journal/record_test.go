package journal

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/google/go-cmp/cmp"
)

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(b, []byte("\n"))
}

// The v1 fixtures are frozen: a later build must decode them unchanged.
// While the writer still writes v1, it must also produce them byte for
// byte; a change to the envelope needs a new version and a new fixture.

func TestV1EventFixture(t *testing.T) {
	raw := readFixture(t, "v1-event.json")
	want := Event{
		Seq:  7,
		Kind: "step.intent",
		Time: time.Date(2026, 3, 1, 11, 0, 0, 123456789, time.UTC),
		Body: json.RawMessage(`{"step":1,"tool":"charge","upstream":"payments","args":{"amount":1200,"currency":"EUR","memo":"Grüße <ok> & \"quoted\""},"idempotency_key":"saga-7f3a/1"}`),
	}
	got, err := decodeEvent(7, raw)
	if err != nil {
		t.Fatalf("decode v1 event: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("decoded v1 event (-want +got):\n%s", diff)
	}
	enc, err := encodeEvent(Event{Kind: want.Kind, Time: want.Time.In(time.FixedZone("CET", 3600)), Body: want.Body})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(enc, raw) {
		t.Errorf("encodeEvent =\n%s\nwant the v1 fixture\n%s", enc, raw)
	}
}

func TestV1HeadFixture(t *testing.T) {
	raw := readFixture(t, "v1-head.json")
	want := Head{
		Saga: "saga-7f3a", Status: "stuck", Scope: "agent",
		Created:     time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
		Updated:     time.Date(2026, 3, 1, 12, 5, 0, 500000000, time.UTC),
		Tools:       []string{"charge", "send_email"},
		Upstreams:   []string{"payments", "email"},
		Steps:       2,
		Terminal:    true,
		NextAttempt: time.Date(2026, 3, 1, 12, 6, 0, 0, time.UTC),
		LastSeq:     9,
		Expires:     time.Date(2026, 3, 31, 12, 5, 0, 500000000, time.UTC),
	}
	got, err := decodeHead(raw)
	if err != nil {
		t.Fatalf("decode v1 head: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("decoded v1 head (-want +got):\n%s", diff)
	}
	enc, err := encodeHead(&want)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(enc, raw) {
		t.Errorf("encodeHead =\n%s\nwant the v1 fixture\n%s", enc, raw)
	}
}

// loadDump writes the keys and values of a testdata dump into a new Badger
// directory, the way an older agenthelm left it.
func loadDump(t *testing.T, dir, name string) {
	t.Helper()
	f, err := os.Open("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	db, err := badger.Open(badgerOptions(dir, true, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	sc := bufio.NewScanner(f)
	err = db.Update(func(txn *badger.Txn) error {
		for sc.Scan() {
			line := sc.Text()
			if strings.HasPrefix(line, "#") || line == "" {
				continue
			}
			end := strings.Index(line[1:], `" `) + 2
			if end < 2 {
				end = len(line)
			}
			key, err := strconv.Unquote(line[:end])
			if err != nil {
				t.Fatalf("%s: bad key in %q: %v", name, line, err)
			}
			if err := txn.Set([]byte(key), []byte(strings.TrimPrefix(line[end:], " "))); err != nil {
				return err
			}
		}
		return sc.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestV1JournalFixture opens a journal directory holding exactly the keys
// and values a format-1 journal wrote, and uses it.
func TestV1JournalFixture(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	loadDump(t, dir, "v1-journal.txt")
	clock := newClock()
	clock.Add(5 * time.Minute)
	j := openTest(t, Options{Dir: dir, Sync: true, now: clock.Now})
	at := func(min, sec int) time.Time { return time.Date(2026, 3, 1, 12, min, sec, 0, time.UTC) }

	events, err := j.Events(ctx, "saga-a")
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for i, e := range events {
		if e.Seq != uint64(i+1) {
			t.Errorf("event %d has seq %d", i, e.Seq)
		}
		kinds = append(kinds, e.Kind)
	}
	if diff := cmp.Diff([]string{"saga.open", "step.intent", "step.outcome", "saga.commit"}, kinds); diff != "" {
		t.Errorf("saga-a kinds (-want +got):\n%s", diff)
	}
	if got := string(events[2].Body); got != `{"step":1,"outcome":"success","result":{"id":"ch_1"}}` || !events[2].Time.Equal(at(0, 2)) {
		t.Errorf("saga-a event 3 = %s at %v", got, events[2].Time)
	}

	b, err := j.Head(ctx, "saga-b")
	if err != nil {
		t.Fatal(err)
	}
	wantB := Head{Saga: "saga-b", Status: "compensating", Scope: "session", Created: at(1, 0), Updated: at(1, 0),
		Tools: []string{"create_entities", "send_email"}, Upstreams: []string{"memory", "email"}, Steps: 2,
		NextAttempt: at(1, 30), LastSeq: 2}
	if diff := cmp.Diff(wantB, b); diff != "" {
		t.Errorf("Head(saga-b) (-want +got):\n%s", diff)
	}

	odd := "tenant/x\x00y"
	for _, tc := range []struct {
		name string
		got  func() ([]Head, error)
		want []string
	}{
		{"List all", func() ([]Head, error) { return j.List(ctx, Filter{}) }, []string{odd, "saga-b", "saga-a"}},
		{"List committed", func() ([]Head, error) { return j.List(ctx, Filter{Status: "committed"}) }, []string{"saga-a"}},
		{"List tool a/b", func() ([]Head, error) { return j.List(ctx, Filter{Tool: "a/b"}) }, []string{odd}},
		{"NonTerminal", func() ([]Head, error) { return j.NonTerminal(ctx) }, []string{"saga-b", odd}},
		{"Due", func() ([]Head, error) { return j.Due(ctx, at(1, 30)) }, []string{"saga-b"}},
	} {
		heads, err := tc.got()
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if diff := cmp.Diff(tc.want, sagasOf(heads)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, diff)
		}
	}

	// Writing continues where the old journal stopped.
	if seqs := mustAppend(t, j, Batch{Saga: "saga-b", Events: []Event{ev("compensation.ok", `{}`)},
		Head: &Head{Status: "compensated", Terminal: true}}); seqs[0] != 3 {
		t.Errorf("next seq of saga-b = %d, want 3", seqs[0])
	}
	// The old terminal saga expires on the date it recorded (12:01 on
	// 31 March); saga-b, terminal since 12:05 on 1 March, stays until 12:05.
	clock.Add(30*24*time.Hour - time.Minute)
	if err := j.GC(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := j.Head(ctx, "saga-a"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Head(saga-a) after its expiry = %v, want ErrNotFound", err)
	}
	if _, err := j.Head(ctx, "saga-b"); err != nil {
		t.Errorf("Head(saga-b), terminal for less than the retention: %v", err)
	}
}

func sagasOf(heads []Head) []string {
	var s []string
	for _, h := range heads {
		s = append(s, h.Saga)
	}
	return s
}

func TestDecodeRefusesNewerOrCorruptRecords(t *testing.T) {
	ctx := context.Background()
	j := openTest(t, Options{Sync: true})
	mustAppend(t, j, Batch{Saga: "new", Events: []Event{ev("a", "")}, Head: &Head{Status: "open"}})
	mustAppend(t, j, Batch{Saga: "bad", Events: []Event{ev("a", "")}, Head: &Head{Status: "open"}})
	err := j.db.Update(func(txn *badger.Txn) error {
		if err := txn.Set(eventKey("new", 1), []byte(`{"v":2,"kind":"a","time":"2026-03-01T12:00:00Z","extra":true}`)); err != nil {
			return err
		}
		if err := txn.Set(headKey("new"), []byte(`{"v":2,"saga":"new","status":"open"}`)); err != nil {
			return err
		}
		return txn.Set(eventKey("bad", 1), []byte("\x00\x01garbage"))
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = j.Events(ctx, "new")
	if want := `journal: event 1 of saga "new": journal: unsupported format: record version 2, this build reads up to 1`; !errors.Is(err, ErrFormat) || err.Error() != want {
		t.Errorf("Events(v2 record) = %v, want %q", err, want)
	}
	if _, err := j.Head(ctx, "new"); !errors.Is(err, ErrFormat) {
		t.Errorf("Head(v2 record) = %v, want ErrFormat", err)
	}
	if _, err := j.List(ctx, Filter{}); !errors.Is(err, ErrFormat) {
		t.Errorf("List over a v2 head = %v, want ErrFormat", err)
	}
	_, err = j.Events(ctx, "bad")
	if !errors.Is(err, ErrCorrupt) || !strings.HasPrefix(err.Error(), `journal: event 1 of saga "bad" is corrupt: `) {
		t.Errorf("Events(garbage record) = %v, want ErrCorrupt", err)
	}
}

func TestStringEncoding(t *testing.T) {
	cases := []string{"", "a", "a/b", "a\x00", "\x00", "\x00\x01", "a\x00\xffb", "\xff\xff", "saga-1"}
	for _, s := range cases {
		enc := appendString(nil, s)
		got, rest, ok := readString(append(enc, "tail"...))
		if !ok || got != s || string(rest) != "tail" {
			t.Errorf("readString(appendString(%q)) = %q, %q, %v", s, got, rest, ok)
		}
	}
	// Prefix-free: no encoded id is a prefix of another's encoding.
	for _, a := range cases {
		for _, b := range cases {
			if a != b && bytes.HasPrefix(appendString(nil, b), appendString(nil, a)) {
				t.Errorf("encoding of %q is a prefix of the encoding of %q", a, b)
			}
		}
	}
}

func FuzzStringEncoding(f *testing.F) {
	for _, s := range []string{"", "a", "a\x00b", "\x00\xff", "x\x00\x01"} {
		f.Add(s, "b")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		ea, eb := appendString(nil, a), appendString(nil, b)
		got, rest, ok := readString(append(ea, eb...))
		if !ok || got != a || !bytes.Equal(rest, eb) {
			t.Fatalf("round trip of %q = %q, %v", a, got, ok)
		}
		if a != b && bytes.HasPrefix(eb, ea) {
			t.Fatalf("encoding of %q is a prefix of %q's", a, b)
		}
		if cmpOrder := strings.Compare(a, b); cmpOrder != bytes.Compare(ea, eb) {
			t.Fatalf("order of %q and %q not preserved", a, b)
		}
	})
}

func TestIndexKeyRoundTrip(t *testing.T) {
	status := "open/\x00x"
	k := indexKey(prefixStatus, &status, 42, "saga/\x00id")
	base := appendString(bytes.Clone(prefixStatus), status)
	saga, ts, ok := sagaFromIndexKey(k, base, false)
	if !ok || saga != "saga/\x00id" || ts != 42 {
		t.Errorf("sagaFromIndexKey = %q, %d, %v", saga, ts, ok)
	}
	saga, ts, ok = sagaFromIndexKey(k, prefixStatus, true)
	if !ok || saga != "saga/\x00id" || ts != 42 {
		t.Errorf("sagaFromIndexKey with component = %q, %d, %v", saga, ts, ok)
	}
	if _, _, ok := sagaFromIndexKey(append(k, 'x'), base, false); ok {
		t.Error("trailing bytes accepted")
	}
	if timeKey(time.Time{}) != 0 || timeKey(time.Unix(-5, 0)) != 0 || timeKey(time.Unix(0, 7)) != 7 {
		t.Error("timeKey does not clamp")
	}
}
