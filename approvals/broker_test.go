package approvals

import (
	"context"
	"errors"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agenthelm/agenthelm/internal/syncbuf"
	"github.com/google/go-cmp/cmp"
)

// notifierFunc adapts a function to Notifier.
type notifierFunc func(context.Context, Request) error

func (f notifierFunc) Notify(ctx context.Context, r Request) error { return f(ctx, r) }

type holdResult struct {
	d   Decision
	err error
}

// hold runs b.Hold in a goroutine. The test's end withdraws the request
// if it is still held, and waits for the goroutine.
func hold(t *testing.T, ctx context.Context, b *Broker, r Request, keepAlive func()) <-chan holdResult {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	ch := make(chan holdResult, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		d, err := b.Hold(ctx, r, keepAlive)
		ch <- holdResult{d, err}
	}()
	t.Cleanup(func() { cancel(); wg.Wait() })
	return ch
}

// waitPending waits until n requests are pending.
func waitPending(t *testing.T, b *Broker, n int) []Request {
	t.Helper()
	for {
		if p := b.Pending(); len(p) == n {
			return p
		}
		time.Sleep(time.Millisecond)
	}
}

func request(id string) Request {
	return Request{ID: id, Saga: "s-1", Step: 2, Upstream: "payments", Tool: "charge_customer",
		Arguments: []byte(`{"amount":10}`), ArgsDigest: "sha256:abc", Reasons: []string{"charges need approval"},
		Expires: time.Now().Add(time.Hour)}
}

func TestHoldApproved(t *testing.T) {
	b := New(Options{})
	res := hold(t, context.Background(), b, request("ap-1"), nil)
	p := waitPending(t, b, 1)
	if p[0].ID != "ap-1" || p[0].Tool != "charge_customer" || p[0].Created.IsZero() {
		t.Errorf("Pending() = %+v, want ap-1 with its creation time set", p)
	}
	if got, ok := b.Get("ap-1"); !ok || got.ArgsDigest != "sha256:abc" {
		t.Errorf("Get(ap-1) = %+v, %v", got, ok)
	}
	req, err := b.Decide("ap-1", true, "alice", "fine")
	if err != nil || req.ID != "ap-1" {
		t.Fatalf("Decide(ap-1) = %+v, %v", req, err)
	}
	r := <-res
	if r.err != nil {
		t.Fatalf("Hold: %v", r.err)
	}
	want := Decision{Approved: true, By: "alice", Reason: "fine", ArgsDigest: "sha256:abc"}
	if diff := cmp.Diff(want, r.d, cmpIgnoreAt); diff != "" {
		t.Errorf("Hold decision (-want +got):\n%s", diff)
	}
	if r.d.At.IsZero() {
		t.Error("decision has no time")
	}
	if p := b.Pending(); len(p) != 0 {
		t.Errorf("Pending() after the decision = %+v, want none", p)
	}
	if _, ok := b.Get("ap-1"); ok {
		t.Error("Get(ap-1) still finds the request after Hold returned")
	}
}

var cmpIgnoreAt = cmp.FilterPath(func(p cmp.Path) bool { return p.String() == "At" }, cmp.Ignore())

func TestHoldDenied(t *testing.T) {
	b := New(Options{})
	res := hold(t, context.Background(), b, request("ap-2"), nil)
	waitPending(t, b, 1)
	if _, err := b.Decide("ap-2", false, "bob", "not today"); err != nil {
		t.Fatal(err)
	}
	r := <-res
	if r.err != nil || r.d.Approved || r.d.Expired || r.d.By != "bob" || r.d.Reason != "not today" {
		t.Errorf("Hold = %+v, %v; want a denial by bob", r.d, r.err)
	}
}

func TestDecideUnknown(t *testing.T) {
	b := New(Options{})
	if _, err := b.Decide("ap-nope", true, "alice", ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("Decide(ap-nope) = %v, want ErrNotFound", err)
	}
}

// TestFirstDecisionWins decides while Hold is still notifying (so the
// request cannot leave the broker): the second decision is refused, the
// request is no longer listed as pending, and Hold returns the first.
func TestFirstDecisionWins(t *testing.T) {
	release := make(chan struct{})
	notified := make(chan struct{})
	b := New(Options{Notifier: notifierFunc(func(ctx context.Context, _ Request) error {
		close(notified)
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil
	})})
	res := hold(t, context.Background(), b, request("ap-3"), nil)
	<-notified
	if _, err := b.Decide("ap-3", false, "bob", "no"); err != nil {
		t.Fatalf("first Decide: %v", err)
	}
	if _, err := b.Decide("ap-3", true, "alice", "yes"); !errors.Is(err, ErrAlreadyDecided) {
		t.Errorf("second Decide = %v, want ErrAlreadyDecided", err)
	}
	if p := b.Pending(); len(p) != 0 {
		t.Errorf("Pending() after a decision = %+v, want none", p)
	}
	close(release)
	if r := <-res; r.err != nil || r.d.Approved || r.d.By != "bob" {
		t.Errorf("Hold = %+v, %v; want bob's denial", r.d, r.err)
	}
}

// TestConcurrentDecisions races many deciders: exactly one wins, and Hold
// returns the winner's decision.
func TestConcurrentDecisions(t *testing.T) {
	b := New(Options{})
	res := hold(t, context.Background(), b, request("ap-4"), nil)
	waitPending(t, b, 1)
	const n = 16
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = b.Decide("ap-4", i%2 == 0, "person-"+string(rune('a'+i)), "")
		}()
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Fatalf("deciders %d and %d both won", winner, i)
			}
			winner = i
		case !errors.Is(err, ErrAlreadyDecided) && !errors.Is(err, ErrNotFound):
			t.Errorf("Decide #%d = %v, want ErrAlreadyDecided or ErrNotFound", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no decider won")
	}
	r := <-res
	if want := "person-" + string(rune('a'+winner)); r.d.By != want || r.d.Approved != (winner%2 == 0) {
		t.Errorf("Hold = %+v, want the decision of %s", r.d, want)
	}
}

func TestHoldExpires(t *testing.T) {
	for _, tc := range []struct {
		name    string
		expires time.Duration
	}{
		{"soon", 20 * time.Millisecond},
		{"already past", -time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := New(Options{})
			r := request("ap-5")
			r.Expires = time.Now().Add(tc.expires)
			got := <-hold(t, context.Background(), b, r, nil)
			if got.err != nil || got.d.Approved || !got.d.Expired || got.d.By != "agenthelm" || got.d.ArgsDigest != "sha256:abc" {
				t.Errorf("Hold = %+v, %v; want an expiry (a denial) for the request's digest", got.d, got.err)
			}
			if _, err := b.Decide("ap-5", true, "alice", "too late"); !errors.Is(err, ErrNotFound) {
				t.Errorf("Decide after expiry = %v, want ErrNotFound", err)
			}
		})
	}
}

func TestHoldCancelledWithdraws(t *testing.T) {
	b := New(Options{})
	ctx, cancel := context.WithCancel(context.Background())
	res := hold(t, ctx, b, request("ap-6"), nil)
	waitPending(t, b, 1)
	cancel()
	if r := <-res; !errors.Is(r.err, context.Canceled) {
		t.Errorf("Hold after cancel = %+v, %v; want context.Canceled", r.d, r.err)
	}
	if p := b.Pending(); len(p) != 0 {
		t.Errorf("Pending() after the agent went away = %+v, want none", p)
	}
	if _, err := b.Decide("ap-6", true, "alice", ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("Decide on a withdrawn request = %v, want ErrNotFound", err)
	}
}

func TestPendingOldestFirst(t *testing.T) {
	b := New(Options{})
	ctx, cancel := context.WithCancel(context.Background())
	t0 := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	var results []<-chan holdResult
	for _, c := range []struct {
		id  string
		off time.Duration
	}{{"ap-b", 2 * time.Minute}, {"ap-c", 3 * time.Minute}, {"ap-a", time.Minute}} {
		r := request(c.id)
		r.Created = t0.Add(c.off)
		results = append(results, hold(t, ctx, b, r, nil))
	}
	p := waitPending(t, b, 3)
	var ids []string
	for _, r := range p {
		ids = append(ids, r.ID)
	}
	if diff := cmp.Diff([]string{"ap-a", "ap-b", "ap-c"}, ids); diff != "" {
		t.Errorf("Pending() order (-want +got):\n%s", diff)
	}
	cancel()
	for _, r := range results {
		<-r
	}
}

func TestHoldKeepAlive(t *testing.T) {
	b := New(Options{KeepAliveEvery: time.Millisecond})
	ticks := make(chan struct{}, 100)
	res := hold(t, context.Background(), b, request("ap-7"), func() {
		select {
		case ticks <- struct{}{}:
		default:
		}
	})
	for range 3 {
		<-ticks
	}
	if _, err := b.Decide("ap-7", true, "alice", ""); err != nil {
		t.Fatal(err)
	}
	if r := <-res; r.err != nil || !r.d.Approved {
		t.Errorf("Hold = %+v, %v", r.d, r.err)
	}
}

func TestHoldNotifyFailureStillWaits(t *testing.T) {
	var logs syncBuf
	b := New(Options{
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		Notifier: notifierFunc(func(context.Context, Request) error {
			return errors.New("webhook hooks.example answered 500")
		}),
	})
	r := request("")
	res := hold(t, context.Background(), b, r, nil)
	p := waitPending(t, b, 1)
	if !regexp.MustCompile(`^ap-[0-9a-f]{16}$`).MatchString(p[0].ID) {
		t.Errorf("generated id = %q, want ap- and 16 hex digits", p[0].ID)
	}
	if _, err := b.Decide(p[0].ID, true, "alice", ""); err != nil {
		t.Fatal(err)
	}
	if r := <-res; r.err != nil || !r.d.Approved {
		t.Errorf("Hold = %+v, %v", r.d, r.err)
	}
	if !strings.Contains(logs.String(), "approval notification failed") {
		t.Errorf("log = %q, want the notification failure", logs.String())
	}
}

type syncBuf = syncbuf.Buffer
