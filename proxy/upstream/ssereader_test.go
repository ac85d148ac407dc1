package upstream

import (
	"bytes"
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/agenthelm/agenthelm/proxy/jsonrpc"
)

// readAll reads every event; an oversized event shows up as Type "TOO LARGE".
func readAll(t *testing.T, r io.Reader, limit int) ([]Event, *EventReader) {
	t.Helper()
	er := NewEventReader(r, limit)
	var out []Event
	for {
		ev, err := er.Next()
		if errors.Is(err, jsonrpc.ErrFrameTooLarge) {
			out = append(out, Event{Type: "TOO LARGE"})
			continue
		}
		if errors.Is(err, io.EOF) {
			return out, er
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		out = append(out, ev)
	}
}

func TestEventReader(t *testing.T) {
	msg := func(data, id string) Event { return Event{Type: "message", Data: []byte(data), ID: id} }
	tests := []struct {
		name   string
		in     string
		limit  int
		want   []Event
		lastID string
		retry  time.Duration
	}{
		{name: "LF", in: "data: {\"a\":1}\n\n", want: []Event{msg(`{"a":1}`, "")}},
		{name: "CRLF", in: "data: x\r\n\r\ndata: y\r\n\r\n", want: []Event{msg("x", ""), msg("y", "")}},
		{name: "CR only", in: "data: x\r\rdata: y\r\r", want: []Event{msg("x", ""), msg("y", "")}},
		{name: "no space after colon", in: "data:x\n\n", want: []Event{msg("x", "")}},
		{name: "only first space stripped", in: "data:  x\n\n", want: []Event{msg(" x", "")}},
		{name: "multi-line data", in: "data: a\ndata: b\ndata\n\n", want: []Event{msg("a\nb\n", "")}},
		{name: "comments and unknown fields", in: ": keepalive\nfoo: bar\ndata: x\n\n", want: []Event{msg("x", "")}},
		{name: "event type", in: "event: endpoint\ndata: /messages?s=1\n\n", want: []Event{{Type: "endpoint", Data: []byte("/messages?s=1")}}},
		{name: "id persists", in: "id: 7\ndata: a\n\ndata: b\n\n", want: []Event{msg("a", "7"), msg("b", "7")}, lastID: "7"},
		{name: "empty id resets", in: "id: 7\ndata: a\n\nid\ndata: b\n\n", want: []Event{msg("a", "7"), msg("b", "")}},
		{name: "id with NUL ignored", in: "id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n", want: []Event{msg("a", "1"), msg("b", "1")}, lastID: "1"},
		{name: "priming block without data", in: "id: s_0\nevent: prime\n\ndata: x\n\n", want: []Event{msg("x", "s_0")}, lastID: "s_0"},
		{name: "empty data line dispatches", in: "event: prime\nid: s_0\ndata: \n\n", want: []Event{{Type: "prime", Data: []byte{}, ID: "s_0"}}, lastID: "s_0"},
		{name: "retry", in: "retry: 1500\ndata: x\n\nretry: soon\n\n", want: []Event{{Type: "message", Data: []byte("x"), Retry: 1500 * time.Millisecond}}, retry: 1500 * time.Millisecond},
		{name: "BOM", in: "\xEF\xBB\xBFdata: x\n\n", want: []Event{msg("x", "")}},
		{name: "unfinished event discarded", in: "data: x\n\ndata: y\n", want: []Event{msg("x", "")}},
		{name: "oversized event skipped", in: "data: " + strings.Repeat("z", 100) + "\n\ndata: ok\n\n", limit: 50, want: []Event{{Type: "TOO LARGE"}, msg("ok", "")}},
		{name: "oversized across lines", in: "data: " + strings.Repeat("z", 30) + "\ndata: " + strings.Repeat("z", 30) + "\n\ndata: ok\n\n", limit: 50, want: []Event{{Type: "TOO LARGE"}, msg("ok", "")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// One byte at a time as well, so that line endings split across
			// reads (CR then LF) are handled.
			for _, r := range []io.Reader{strings.NewReader(tt.in), iotest.OneByteReader(strings.NewReader(tt.in))} {
				got, er := readAll(t, r, tt.limit)
				if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
					t.Errorf("events of %q (-want +got):\n%s", tt.in, diff)
				}
				if er.LastEventID() != tt.lastID && tt.lastID != "" {
					t.Errorf("LastEventID() = %q, want %q", er.LastEventID(), tt.lastID)
				}
				if er.Retry() != tt.retry {
					t.Errorf("Retry() = %v, want %v", er.Retry(), tt.retry)
				}
			}
		})
	}
}

// TestEventReaderDoesNotWaitAfterCR: an event ended by CR CR must be
// dispatched without waiting for a byte that might never come.
func TestEventReaderDoesNotWaitAfterCR(t *testing.T) {
	pr, pw := io.Pipe()
	defer pw.Close()
	er := NewEventReader(pr, 0)
	go pw.Write([]byte("data: x\r\r")) //nolint:errcheck
	got := make(chan Event, 1)
	go func() {
		ev, _ := er.Next()
		got <- ev
	}()
	select {
	case ev := <-got:
		if string(ev.Data) != "x" {
			t.Errorf("Data = %q, want x", ev.Data)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Next blocked after CR CR")
	}
}

func TestEventWriterRoundTrip(t *testing.T) {
	events := []Event{
		{Type: "message", Data: []byte(`{"jsonrpc":"2.0","method":"x"}`), ID: "1"},
		{Type: "endpoint", Data: []byte("/messages?sessionid=abc")},
		{Type: "message", Data: []byte("line1\nline2\r\nline3\rline4"), ID: "2", Retry: 250 * time.Millisecond},
		{Type: "message", Data: []byte(""), ID: "3"},
	}
	rec := httptest.NewRecorder()
	ew := NewEventWriter(rec)
	for _, ev := range events {
		if err := ew.WriteEvent(ev); err != nil {
			t.Fatalf("WriteEvent: %v", err)
		}
	}
	if err := ew.WriteComment("keep-alive"); err != nil {
		t.Fatal(err)
	}
	if !rec.Flushed {
		t.Error("events were not flushed")
	}
	got, _ := readAll(t, rec.Body, 0)
	want := []Event{
		events[0],
		{Type: "endpoint", Data: events[1].Data, ID: "1"}, // the last event id persists
		{Type: "message", Data: []byte("line1\nline2\nline3\nline4"), ID: "2", Retry: 250 * time.Millisecond},
		{Type: "message", Data: []byte(""), ID: "3"},
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	for _, bad := range []Event{{Type: "a\nb"}, {ID: "a\rb"}, {ID: "a\x00b"}} {
		if err := ew.WriteEvent(bad); err == nil {
			t.Errorf("WriteEvent(%+v) accepted a field it cannot encode", bad)
		}
	}
}

// FuzzEventRoundTrip: whatever data the writer is given, the reader gets
// the same data back, with line endings normalized to LF.
func FuzzEventRoundTrip(f *testing.F) {
	f.Add([]byte(`{"jsonrpc":"2.0","id":1,"result":{}}`), "7")
	f.Add([]byte("a\r\nb\rc\n"), "")
	f.Add([]byte(""), "x")
	f.Fuzz(func(t *testing.T, data []byte, id string) {
		if strings.ContainsAny(id, "\r\n\x00") {
			return
		}
		var buf bytes.Buffer
		if err := NewEventWriter(&buf).WriteEvent(Event{Data: data, ID: id}); err != nil {
			t.Fatal(err)
		}
		ev, err := NewEventReader(&buf, 0).Next()
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		want := bytes.ReplaceAll(bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n")), []byte("\r"), []byte("\n"))
		if !bytes.Equal(ev.Data, want) || ev.ID != id {
			t.Errorf("round trip of %q id %q = %q id %q", data, id, ev.Data, ev.ID)
		}
	})
}
