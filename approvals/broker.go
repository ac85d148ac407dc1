package approvals

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// Errors Decide returns.
var (
	ErrNotFound       = errors.New("no pending approval with that id")
	ErrAlreadyDecided = errors.New("this approval was already decided")
)

// Step is a summary of an earlier step of the saga, shown to approvers.
type Step struct {
	N        int             `json:"n"`
	Upstream string          `json:"upstream"`
	Tool     string          `json:"tool"`
	Status   string          `json:"status"`
	Args     json.RawMessage `json:"arguments,omitempty"`
}

// Request is a call waiting for a decision, with everything an approver
// needs to decide.
type Request struct {
	ID         string            `json:"id"`
	Saga       string            `json:"saga"`
	Step       int               `json:"step"`
	Upstream   string            `json:"upstream"`
	Tool       string            `json:"tool"`
	Arguments  json.RawMessage   `json:"arguments"`
	ArgsDigest string            `json:"args_digest"`
	Reasons    []string          `json:"reasons"`
	Approvers  []string          `json:"approvers,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
	Agent      string            `json:"agent,omitempty"`
	History    []Step            `json:"history,omitempty"`
	DecisionID string            `json:"decision_id"`
	Created    time.Time         `json:"created"`
	Expires    time.Time         `json:"expires"`
}

// Decision is how a request ended.
type Decision struct {
	Approved bool      `json:"approved"`
	Expired  bool      `json:"expired,omitempty"`
	By       string    `json:"by"`
	Reason   string    `json:"reason,omitempty"`
	At       time.Time `json:"at"`
	// ArgsDigest is the digest the decision was made for (rule 22).
	ArgsDigest string `json:"args_digest"`
}

// Notifier tells people that a request waits. It must not block for long;
// failures are logged, and the request still waits.
type Notifier interface {
	Notify(ctx context.Context, r Request) error
}

// Options configure a Broker.
type Options struct {
	// Notifier is told of each new request (nil: nobody is told).
	Notifier Notifier
	// KeepAliveEvery is how often Hold calls its keepAlive while waiting
	// (progress notifications). Zero means 10 s.
	KeepAliveEvery time.Duration
	Logger         *slog.Logger
	// Now is the clock (tests); nil means time.Now.
	Now func() time.Time
}

// Broker holds pending approvals. It is safe for concurrent use.
type Broker struct {
	opts    Options
	mu      sync.Mutex
	pending map[string]*entry
}

type entry struct {
	req       Request
	decided   chan Decision // buffered 1: the first decision
	isDecided bool          // a decision was taken (first wins)
	done      bool          // Hold returned
}

// New returns a broker.
func New(opts Options) *Broker {
	if opts.KeepAliveEvery <= 0 {
		opts.KeepAliveEvery = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Broker{opts: opts, pending: map[string]*entry{}}
}

// NewID returns a fresh approval id.
func NewID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "ap-" + hex.EncodeToString(b[:])
}

// Hold registers r, notifies, and blocks until r is decided, expires at
// r.Expires (a denial with Expired set), or ctx ends (the agent went away:
// ctx.Err() is returned and the request is withdrawn). keepAlive, if not
// nil, is called every KeepAliveEvery while waiting.
func (b *Broker) Hold(ctx context.Context, r Request, keepAlive func()) (Decision, error) {
	id := b.Open(ctx, r)
	return b.Wait(ctx, id, keepAlive)
}

// KeepAliveEvery is how often a wait calls its keepAlive: for callers that
// wait for a decision on their own (see Open).
func (b *Broker) KeepAliveEvery() time.Duration { return b.opts.KeepAliveEvery }

// Open registers r and notifies, without waiting: the request is pending
// (listed, decidable) at once. It returns r's id (a fresh one when r has
// none). Exactly one Wait for that id must follow; it ends the request.
// Open and Wait apart serve a call whose agent is not waiting on the
// line: a 2026-07-28 client that was answered input_required and will
// retry.
func (b *Broker) Open(ctx context.Context, r Request) string {
	if r.ID == "" {
		r.ID = NewID()
	}
	if r.Created.IsZero() {
		r.Created = b.opts.Now()
	}
	e := &entry{req: r, decided: make(chan Decision, 1)}
	b.mu.Lock()
	b.pending[r.ID] = e
	b.mu.Unlock()
	if b.opts.Notifier != nil {
		if err := b.opts.Notifier.Notify(ctx, r); err != nil {
			b.opts.Logger.Warn("approval notification failed; the call still waits", "approval", r.ID, "err", err)
		}
	}
	return r.ID
}

// Wait blocks until the request Open registered under id is decided,
// expires (a denial with Expired set), or ctx ends (the request is
// withdrawn and ctx.Err() returned). Either way the request stops being
// pending. keepAlive, if not nil, is called every KeepAliveEvery.
func (b *Broker) Wait(ctx context.Context, id string, keepAlive func()) (Decision, error) {
	b.mu.Lock()
	e := b.pending[id]
	b.mu.Unlock()
	if e == nil {
		return Decision{}, ErrNotFound
	}
	defer func() {
		b.mu.Lock()
		e.done = true
		delete(b.pending, id)
		b.mu.Unlock()
	}()
	expire := time.NewTimer(max(e.req.Expires.Sub(b.opts.Now()), 0))
	defer expire.Stop()
	tick := time.NewTicker(b.opts.KeepAliveEvery)
	defer tick.Stop()
	for {
		select {
		case d := <-e.decided:
			return d, nil
		case <-expire.C:
			if d, ok := b.decide(e, Decision{Expired: true, By: "agenthelm", Reason: "the approval expired", ArgsDigest: e.req.ArgsDigest}); ok {
				return d, nil
			}
			return <-e.decided, nil // a person decided at the same moment
		case <-tick.C:
			if keepAlive != nil {
				keepAlive()
			}
		case <-ctx.Done():
			return Decision{}, ctx.Err()
		}
	}
}

// Decide records a person's decision on a pending request. The first
// decision wins (ErrAlreadyDecided after it). Approvers named by the policy
// are shown to people, not enforced: whoever holds the admin token may
// decide, and who did is journaled.
func (b *Broker) Decide(id string, approve bool, by, reason string) (Request, error) {
	b.mu.Lock()
	e := b.pending[id]
	b.mu.Unlock()
	if e == nil {
		return Request{}, ErrNotFound
	}
	if _, ok := b.decide(e, Decision{Approved: approve, By: by, Reason: reason, ArgsDigest: e.req.ArgsDigest}); !ok {
		return e.req, ErrAlreadyDecided
	}
	return e.req, nil
}

func (b *Broker) decide(e *entry, d Decision) (Decision, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if e.done || e.isDecided {
		return Decision{}, false
	}
	d.At = b.opts.Now()
	e.isDecided = true
	e.decided <- d
	return d, true
}

// Pending lists the requests waiting, oldest first.
func (b *Broker) Pending() []Request {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]Request, 0, len(b.pending))
	for _, e := range b.pending {
		if !e.isDecided {
			out = append(out, e.req)
		}
	}
	slices.SortFunc(out, func(a, b Request) int { return a.Created.Compare(b.Created) })
	return out
}

// Get returns a pending request.
func (b *Broker) Get(id string) (Request, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.pending[id]
	if e == nil {
		return Request{}, false
	}
	return e.req, true
}
