package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/agenthelm/agenthelm/examples/toolservers"
	"github.com/google/go-cmp/cmp"
)

// demoState is what the example servers hold after the demo.
type demoState struct {
	Bookings []string // "id status"
	Charges  []string // "id status refund-id"
	Sent     int
	Attempts int
}

func stateOf(servers map[string]toolservers.Server) demoState {
	var s demoState
	for _, b := range servers["hotel"].(*toolservers.Hotel).Bookings() {
		s.Bookings = append(s.Bookings, b.ID+" "+b.Status)
	}
	for _, c := range servers["payments"].(*toolservers.Payments).Charges() {
		s.Charges = append(s.Charges, strings.TrimSpace(c.ID+" "+c.Status+" "+c.RefundID))
	}
	email := servers["email"].(*toolservers.Email)
	s.Sent, s.Attempts = len(email.Sent()), email.Attempts()
	return s
}

// captureDemoServers makes the demo hand its example servers to the test.
func captureDemoServers(t *testing.T) func() map[string]toolservers.Server {
	t.Helper()
	var mu sync.Mutex
	var got map[string]toolservers.Server
	demoServersHook = func(m map[string]toolservers.Server) {
		mu.Lock()
		defer mu.Unlock()
		got = m
	}
	t.Cleanup(func() { demoServersHook = nil })
	return func() map[string]toolservers.Server {
		mu.Lock()
		defer mu.Unlock()
		return got
	}
}

func TestDemo(t *testing.T) {
	servers := captureDemoServers(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	if err := run(ctx, []string{"demo", "--no-color"}, strings.NewReader(""), &stdout, &stderr); err != nil {
		t.Fatalf("demo: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	out := stdout.String()
	t.Logf("demo output:\n%s", out)

	// The story, in order: each call journaled before it is forwarded and
	// before it is answered, then the unwinding, newest step first.
	pos := 0
	for _, want := range []string{
		"setup",
		"step 1  hotel.book_hotel",
		"→ book_hotel {",
		"#1  opened      saga s-",
		"#2  policy      step 1 allow (revision ",
		"#3  intent      step 1 hotel/book_hotel, undo: cancel_hotel_booking",
		"#4  outcome     step 1 succeeded",
		`← ok: {"booking_id":"bk_0001"`,
		"step 2  payments.charge_customer",
		"held for approval ap-",
		"approved by the demo's auto-approver",
		"#5  policy      step 2 require_approval (revision ",
		"#6  approval    step 2 held: ap-",
		"#7  approval    step 2 ap-",
		"approved by demo-operator",
		"#8  intent      step 2 payments/charge_customer, undo: refund_customer",
		"#9  outcome     step 2 succeeded",
		`← ok: {"charge_id":"ch_0001"`,
		"step 3  email.send_email",
		"#10 policy      step 3 require_approval",
		"#13 intent      step 3 email/send_email, undo: none (irreversible)",
		"#14 outcome     step 3 tool_error",
		"← error: mailbox unavailable: ana.lima@bounce.example",
		"rollback",
		"#15 aborted     step 3 (send_email) failed: tool_error",
		"#16 compensate  step 2: payments/refund_customer, attempt 1",
		`#17 compensated step 2: {"charge_id":"ch_0001"`,
		"#18 compensate  step 1: hotel/cancel_hotel_booking, attempt 1",
		`#19 compensated step 1: {"booking_id":"bk_0001"`,
		"#20 status      saga compensated",
		"agenthelm rolled back saga s-",
		"the tool servers after the run",
		"bk_0001  Ana Lima, Hotel Lisboa Centro, 3 nights: cancelled",
		"ch_0001  EUR 1,840.00 for cus_ana_lima: refunded (re_0001)",
		"0 sent, 1 failed",
		"agenthelm sagas show s-",
		"compensated  (scope agent:agenthelm-demo-agent)",
		"agenthelm traces show s-",
		"undo    payments/refund_customer  compensated",
		"done",
		"2 steps undone in reverse order",
	} {
		i := strings.Index(out[pos:], want)
		if i < 0 {
			t.Fatalf("demo output lacks %q after byte %d", want, pos)
		}
		pos += i + len(want)
	}

	// Plain text when asked, and readable in 100 columns.
	if strings.Contains(out, "\x1b[") {
		t.Error("--no-color output has ANSI escapes")
	}
	for i, line := range strings.Split(out, "\n") {
		if n := utf8.RuneCountInString(line); n > 100 {
			t.Errorf("line %d is %d columns wide, want at most 100: %q", i+1, n, line)
		}
	}

	// The example servers themselves: every effect of the failed saga is
	// undone, and the compensations ran exactly once.
	got := stateOf(servers())
	want := demoState{Bookings: []string{"bk_0001 cancelled"}, Charges: []string{"ch_0001 refunded re_0001"}, Sent: 0, Attempts: 1}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("example servers after the demo (-want +got):\n%s", d)
	}
}

func TestDemoKeep(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	runCtx, stop := context.WithCancel(ctx)
	var stdout syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(runCtx, []string{"demo", "--no-color", "--keep"}, strings.NewReader(""), &stdout, os.Stderr)
	}()
	for !strings.Contains(stdout.String(), "/healthz") {
		select {
		case err := <-done:
			t.Fatalf("demo --keep ended before Ctrl-C: %v\n%s", err, stdout.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	if !strings.Contains(stdout.String(), "still running (--keep)") {
		t.Errorf("demo --keep does not say it keeps running:\n%s", stdout.String())
	}
	stop() // Ctrl-C
	if err := <-done; err != nil {
		t.Errorf("demo --keep after Ctrl-C = %v, want nil (exit 0)", err)
	}
}

func TestDemoDecideHeld(t *testing.T) {
	tests := []struct {
		name        string
		interactive bool
		stdin       string
		want        bool
		wantOut     string
	}{
		{"auto", false, "", true, "approved by the demo's auto-approver"},
		{"yes", true, "y\n", true, "approved by you"},
		{"YES", true, "YES\n", true, "approved by you"},
		{"no", true, "n\n", false, "denied by you"},
		{"enter", true, "\n", false, "denied by you"},
		{"eof", true, "", false, "denied by you"},
	}
	for _, tt := range tests {
		var out bytes.Buffer
		n := newNarrator(&out, false)
		approve, reason, err := decideHeld(context.Background(), n, strings.NewReader(tt.stdin), tt.interactive, time.Millisecond, "charge_customer EUR 1,840.00")
		if err != nil || approve != tt.want || reason == "" {
			t.Errorf("decideHeld(%s) = %v, %q, %v; want %v with a reason", tt.name, approve, reason, err, tt.want)
		}
		if !strings.Contains(out.String(), tt.wantOut) {
			t.Errorf("decideHeld(%s) printed %q, want %q in it", tt.name, out.String(), tt.wantOut)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := decideHeld(ctx, newNarrator(&bytes.Buffer{}, false), strings.NewReader(""), false, time.Hour, "x"); err == nil {
		t.Error("decideHeld with a cancelled context: want an error")
	}
}

func TestDemoColorTerminal(t *testing.T) {
	if colorTerminal(&bytes.Buffer{}) {
		t.Error("colorTerminal(buffer) = true")
	}
	null, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	if colorTerminal(null) {
		t.Error("colorTerminal(/dev/null) = true")
	}
	var out bytes.Buffer
	newNarrator(&out, true).line("agent", cGreen, "ok")
	if got, want := out.String(), "  "+cGreen+"agent    "+cReset+" ok\n"; got != want {
		t.Errorf("coloured line = %q, want %q", got, want)
	}
}

func TestDemoFormatting(t *testing.T) {
	for _, tt := range []struct {
		v    float64
		want string
	}{{0, "0.00"}, {12.5, "12.50"}, {999.99, "999.99"}, {1840, "1,840.00"}, {1234567.891, "1,234,567.89"}, {-1840, "-1,840.00"}} {
		if got := money(tt.v); got != tt.want {
			t.Errorf("money(%v) = %q, want %q", tt.v, got, tt.want)
		}
	}
	if got := clip("abcdef", 4); got != "abc…" {
		t.Errorf(`clip("abcdef", 4) = %q, want "abc…"`, got)
	}
	if got := clip("abc", 4); got != "abc" {
		t.Errorf(`clip("abc", 4) = %q`, got)
	}
}

// syncBuffer is a buffer the demo's goroutines and the test share.
