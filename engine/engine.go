package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agenthelm/agenthelm/approvals"
	"github.com/agenthelm/agenthelm/journal"
	"github.com/agenthelm/agenthelm/policy"
	"github.com/agenthelm/agenthelm/proxy/upstream"
	"github.com/agenthelm/agenthelm/saga"
	"github.com/agenthelm/agenthelm/telemetry"
	"github.com/agenthelm/agenthelm/toolcall"
)

// Journal is what the engine needs from the write-ahead journal.
// *journal.Journal implements it.
type Journal interface {
	// Enqueue queues a batch for the next synced commit; commits keep the
	// order of Enqueue calls. Pending.Wait says when it is on disk.
	Enqueue(ctx context.Context, b journal.Batch) (*journal.Pending, error)
	// Events returns a saga's events in order (journal.ErrNotFound if none).
	Events(ctx context.Context, saga string) ([]journal.Event, error)
	// NonTerminal lists the sagas recovery must look at.
	NonTerminal(ctx context.Context) ([]journal.Head, error)
	// Head returns a saga's head (journal.ErrNotFound if none).
	Head(ctx context.Context, saga string) (journal.Head, error)
}

var _ Journal = (*journal.Journal)(nil)

// Invoker sends agenthelm's own requests (captures, compensations) to an
// upstream: on the agent session that made the step while it lives, else on
// a connection of agenthelm's own. The proxy implements it.
type Invoker interface {
	Invoke(ctx context.Context, upstream, session, method string, params json.RawMessage) (toolcall.Result, error)
}

// SpecInvoker is an Invoker that can also reach an upstream the
// configuration no longer names, as the journal recorded it (rule 29).
type SpecInvoker interface {
	InvokeSpec(ctx context.Context, spec upstream.Spec, envNames []string, method string, params json.RawMessage) (toolcall.Result, error)
}

// Rule is what the engine needs to know about one tool.
type Rule struct {
	ReadOnly              bool
	Irreversible          bool
	Idempotent            bool
	ErrorsMayLeaveEffects bool
	// ContinueOnError: a failure of this tool does not unwind the saga.
	ContinueOnError bool
	// Compensate undoes the step (nil: none). Its Upstream may be empty,
	// meaning the step's own upstream.
	Compensate *saga.Compensator
	// Capture is a call made before the step whose result the
	// compensation may use (nil: none).
	Capture *Capture
	// Retry re-sends a call that timed out or whose fate is unknown, under
	// the same idempotency key: only for idempotent tools (rule 16); nil or
	// a single attempt: never.
	Retry *Retry
}

// Retry is how often and how soon an idempotent call is sent again.
type Retry struct {
	Attempts int           // in all, the first included
	Backoff  time.Duration // before the second attempt; doubles after
}

// Capture is a pre-image call: a tool and a jq expression over {args}.
type Capture struct {
	Tool string
	Args string
}

// Gate is the policy decision point. *policy.Engine implements it.
type Gate interface {
	Decide(ctx context.Context, in policy.Input) policy.Decision
}

// Rules gives each tool's rule.
type Rules interface {
	Rule(upstream, tool string) Rule
}

// Evaluator builds a tool's arguments from a jq expression over
// {args, result, capture}. It must return a JSON object.
type Evaluator func(expr string, args, result, capture json.RawMessage) (json.RawMessage, error)

// Failure kinds that may unwind a saga (config saga.unwind_on).
const (
	FailToolError     = "tool_error"
	FailProtocolError = "protocol_error"
	FailTimeout       = "timeout"
	FailUpstreamDown  = "upstream_down"
)

// Options configure an Engine. Journal, Invoker, Rules and Eval are required.
type Options struct {
	Journal Journal
	Invoker Invoker
	Rules   Rules
	Eval    Evaluator
	Logger  *slog.Logger
	// Retry is how failed compensations are retried.
	Retry saga.Policy
	// Gate decides allow, deny or hold for each call (nil: allow all).
	Gate Gate
	// Approvals holds calls the gate sends for approval. Nil with a gate
	// that asks for approval denies them (fail closed).
	Approvals *approvals.Broker
	// ApprovalTimeout is how long a held call waits when the policy does
	// not say (zero: 15 minutes); MaxHold caps any wait (zero: 1 hour).
	ApprovalTimeout time.Duration
	MaxHold         time.Duration
	// UnwindOnDenial unwinds the saga when a call is denied by policy;
	// UnwindOnRejection when an approval is rejected or expires.
	UnwindOnDenial    bool
	UnwindOnRejection bool
	// Scope is "agent" (default: every call of this sidecar's agent is one
	// saga) or "session" (one saga per MCP session).
	Scope string
	// AgentHeader names the HTTP header that identifies the agent when
	// several agents share agenthelm (empty: clientInfo, then "default").
	AgentHeader string
	// IdleCommit commits an open saga with no call in flight for this long.
	// Zero means 60 s.
	IdleCommit time.Duration
	// UnwindOn lists the failures that unwind a saga. Nil means all four.
	UnwindOn []string
	// Redact masks secrets in arguments and results before they are
	// journaled (member is "args" or "result", for path rules). The
	// originals stay in memory, so an undo that needs a masked value works
	// while agenthelm runs (for an ended saga, while it is among the
	// latest 256 ended sagas with masked values); after a restart it gets
	// the masked value. Nil: nothing is masked.
	Redact func(member string, raw json.RawMessage) json.RawMessage
	// Tracer makes the engine's spans and records its metrics (nil: none).
	Tracer *telemetry.Tracer
	// Describe says how an upstream is reached, to be journaled with each
	// step (nil: not journaled).
	Describe func(upstream string) *saga.Launch
	// ControlTools answers calls to agenthelm_commit and agenthelm_rollback
	// (add ControlTools to the proxy's ExtraTools so agents see them).
	ControlTools bool
	// OpenGrace is how long a saga left open by a crash waits for its agent
	// before it is aborted. Zero means 5 minutes.
	OpenGrace time.Duration
	// CallTimeout bounds captures and compensations (zero: 60 s).
	CallTimeout time.Duration
	// Now is the clock (tests); nil means time.Now.
	Now func() time.Time
}

// Engine turns tool calls into saga steps. It implements
// toolcall.Interceptor.
type Engine struct {
	opts   Options
	log    *slog.Logger
	unwind map[string]bool
	ctx    context.Context // lifetime of background work
	stop   context.CancelFunc
	wg     sync.WaitGroup

	stuck atomic.Int64 // sagas in the stuck state, for the gauge

	mu     sync.Mutex
	live   map[string]*live  // saga id -> saga in memory
	scopes map[string]string // scope key -> open saga id
	// kept are ended sagas left in memory for the unmasked values their
	// undo may need (see evictIfDone), oldest first.
	kept   []keptSaga
	closed bool
	held   map[string]*heldApproval // approval id -> call answered input_required

	// stateKey MACs request states (inputreq.go). It lives only in this
	// process: approvals pending in it do not survive a restart either.
	stateKey []byte
}

// original is a step's unmasked arguments and result.
type original struct{ args, result json.RawMessage }

// live is a saga held in memory while it is open or unwinding.
type live struct {
	mu        sync.Mutex
	s         *saga.Saga
	inflight  sync.WaitGroup // forward calls in flight (rule 14)
	idle      *time.Timer
	unwinding bool // one unwinder at a time (rule 18)
	// originals keeps, by step, the arguments and results as the agent and
	// the upstream sent them where the journal holds masked copies.
	originals map[int]original
	retry     *time.Timer
	broken    error // the journal refused a write: state is not trusted
	lists     headLists
	// policy is what the policy input needs from each step, kept as the
	// saga grows (see policyView).
	policy policyView
	// carried are approvals waiting for the client's retry of an approved
	// call that the upstream answered input_required, by the digest of
	// the upstream's requestState (see carryApproval).
	carried map[string]carriedApproval

	// users counts the callers holding this saga (liveSaga, open and
	// detach hand it out; release gives it back); gen changes with every
	// hand-out. scope is its key in Engine.scopes, if any. All three are
	// guarded by Engine.mu, not mu.
	users int
	gen   uint64
	scope string
	// kept says the saga is queued in Engine.kept, as of hand-out keptGen.
	kept    bool
	keptGen uint64
}

// keptSaga is an ended saga kept in memory, as it was when kept.
type keptSaga struct {
	l   *live
	id  string
	gen uint64
}

// maxKept bounds the ended sagas kept in memory for their unmasked values.
const maxKept = 256

var _ toolcall.Interceptor = (*Engine)(nil)

var (
	// ErrSagaNotOpen is returned for operations on a saga in the wrong state.
	ErrSagaNotOpen = errors.New("saga is not open")
	// ErrCannotUndo, wrapped by an Evaluator's error, says a step's effects
	// cannot be undone with the tools at hand (a created file on a server
	// with no delete tool): the step needs a human, not retries.
	ErrCannotUndo = errors.New("cannot be undone automatically")
)

// New returns an engine. Call Recover before serving traffic and Close at
// the end.
func New(opts Options) *Engine {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.IdleCommit <= 0 {
		opts.IdleCommit = 60 * time.Second
	}
	if opts.OpenGrace <= 0 {
		opts.OpenGrace = 5 * time.Minute
	}
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = 60 * time.Second
	}
	if opts.ApprovalTimeout <= 0 {
		opts.ApprovalTimeout = 15 * time.Minute
	}
	if opts.MaxHold <= 0 {
		opts.MaxHold = time.Hour
	}
	if opts.Scope == "" {
		opts.Scope = "agent"
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	un := map[string]bool{}
	if opts.UnwindOn == nil {
		opts.UnwindOn = []string{FailToolError, FailProtocolError, FailTimeout, FailUpstreamDown}
	}
	for _, k := range opts.UnwindOn {
		un[k] = true
	}
	ctx, stop := context.WithCancel(context.Background())
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	return &Engine{opts: opts, log: opts.Logger, unwind: un, ctx: ctx, stop: stop,
		live: map[string]*live{}, scopes: map[string]string{}, stateKey: key}
}

// Close stops timers and background unwinding (which resumes after a
// restart from the journal) and waits for it.
func (e *Engine) Close(ctx context.Context) error {
	e.mu.Lock()
	e.closed = true
	for _, l := range e.live {
		l.mu.Lock()
		if l.idle != nil {
			l.idle.Stop()
		}
		if l.retry != nil {
			l.retry.Stop()
		}
		l.mu.Unlock()
	}
	e.mu.Unlock()
	e.stop()
	done := make(chan struct{})
	go func() { e.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// newSagaID returns a time-ordered, unguessable saga id.
func (e *Engine) newSagaID() string {
	var b [5]byte
	_, _ = rand.Read(b[:])
	return "s-" + e.opts.Now().UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b[:])
}

// record journals events for a saga and applies them to its state, as one
// durable batch with the saga's new head, and waits until they are on disk.
// The caller holds l.mu.
func (e *Engine) record(ctx context.Context, l *live, evs ...saga.Event) error {
	p, err := e.stage(l, evs...)
	if err != nil {
		return err
	}
	if _, err := p.Wait(context.WithoutCancel(ctx)); err != nil {
		l.broken = fmt.Errorf("journal: %w", err)
		return l.broken
	}
	return nil
}

// stage applies events to the saga's state and queues them, with the head
// they produce, for the journal's next synced commit, without waiting. The
// caller holds l.mu, so the journal receives a saga's batches in the order
// of its state; waiting for durability outside the lock lets concurrent
// calls of one saga share a synced commit (group commit) instead of taking
// turns at fsync. Whoever waits must mark the saga broken if the wait fails.
func (e *Engine) stage(l *live, evs ...saga.Event) (*journal.Pending, error) {
	if l.broken != nil {
		return nil, l.broken
	}
	// Apply to a fork first, so that the live state changes only once the
	// batch is queued.
	next := l.s.Fork()
	batch := journal.Batch{Saga: l.s.ID}
	for _, ev := range evs {
		if ev.Time.IsZero() {
			ev.Time = e.opts.Now()
		}
		if err := next.Apply(ev); err != nil {
			return nil, fmt.Errorf("saga %s: %w", l.s.ID, err)
		}
		body, err := json.Marshal(ev)
		if err != nil {
			return nil, fmt.Errorf("encode %s event: %w", ev.Kind, err)
		}
		batch.Events = append(batch.Events, journal.Event{Kind: string(ev.Kind), Time: ev.Time, Body: body})
	}
	lists := l.lists.extend(next.Steps)
	head := headOf(next, lists)
	batch.Head = &head
	// Never skipped once queued: later batches of this saga build on it.
	p, err := e.opts.Journal.Enqueue(context.Background(), batch)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	e.countTransition(l.s.Status, next.Status)
	l.s, l.lists = next, lists
	return p, nil
}

// countTransition feeds the saga metrics: finished sagas by state, and the
// number of stuck sagas (a gauge that recovery sets from the journal).
func (e *Engine) countTransition(from, to saga.Status) {
	if from == to || e.opts.Tracer == nil {
		return
	}
	m := e.opts.Tracer.Metrics()
	switch to {
	case saga.Committed, saga.Compensated, saga.NeedsHuman, saga.Stuck:
		m.SagaFinished(context.Background(), string(to))
	}
	switch {
	case to == saga.Stuck:
		m.SetStuckSagas(context.Background(), int(e.stuck.Add(1)))
	case from == saga.Stuck:
		m.SetStuckSagas(context.Background(), int(e.stuck.Add(-1)))
	}
}

// await waits for a staged batch outside the saga's lock.
func (e *Engine) await(ctx context.Context, l *live, p *journal.Pending) error {
	_, span := e.opts.Tracer.StartInternal(ctx, telemetry.SpanJournalCommit)
	defer span.End()
	if _, err := p.Wait(context.WithoutCancel(ctx)); err != nil {
		l.mu.Lock()
		if l.broken == nil {
			l.broken = fmt.Errorf("journal: %w", err)
		}
		err = l.broken
		l.mu.Unlock()
		return err
	}
	return nil
}

func clone(s *saga.Saga) (*saga.Saga, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	var c saga.Saga
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

// headOf derives the journal's listing head from a saga's state and the
// distinct tools and upstreams of its steps.
func headOf(s *saga.Saga, lists headLists) journal.Head {
	return journal.Head{Saga: s.ID, Status: string(s.Status), Scope: s.Scope, Created: s.Created,
		Updated: s.Updated, Steps: len(s.Steps), Terminal: s.Status.Terminal(), NextAttempt: s.NextAttempt(),
		Tools: lists.tools, Upstreams: lists.upstreams}
}

// headLists are the distinct tools and upstreams of a saga's first steps
// steps, in order of first use. Every batch's head lists them; keeping
// them as the saga grows makes staging a batch cost the same at step
// 5000 as at step 5 (it runs under the saga's lock, so every call of the
// saga would wait for a scan of all its steps).
type headLists struct {
	steps            int
	tools, upstreams []string
}

// extend returns the lists for steps, which begin with the steps c has
// seen (steps are only ever appended). c is not changed: a batch the
// journal refuses leaves the saga's lists as they were.
func (c headLists) extend(steps []*saga.Step) headLists {
	if c.steps > len(steps) {
		c = headLists{} // not the same saga's steps: start over
	}
	for _, st := range steps[c.steps:] {
		if !slices.Contains(c.tools, st.Tool) {
			c.tools = append(slices.Clip(c.tools), st.Tool)
		}
		if !slices.Contains(c.upstreams, st.Upstream) {
			c.upstreams = append(slices.Clip(c.upstreams), st.Upstream)
		}
	}
	c.steps = len(steps)
	return c
}

// Load folds a saga's events from the journal.
func (e *Engine) Load(ctx context.Context, id string) (*saga.Saga, error) {
	evs, err := e.opts.Journal.Events(ctx, id)
	if err != nil {
		return nil, err
	}
	s := saga.New(id)
	for _, je := range evs {
		var ev saga.Event
		if err := json.Unmarshal(je.Body, &ev); err != nil {
			return nil, fmt.Errorf("saga %s event %d: %w", id, je.Seq, err)
		}
		if err := s.Apply(ev); err != nil {
			return nil, fmt.Errorf("saga %s event %d: %w", id, je.Seq, err)
		}
	}
	return s, nil
}

// liveSaga returns the in-memory saga, loading it from the journal when it
// is not held (or its state is no longer trusted). The caller must release
// it when done.
func (e *Engine) liveSaga(ctx context.Context, id string) (*live, error) {
	e.mu.Lock()
	l := e.live[id]
	if l != nil {
		e.use(l)
	}
	e.mu.Unlock()
	if l != nil {
		l.mu.Lock()
		broken := l.broken
		l.mu.Unlock()
		if broken == nil {
			return l, nil
		}
		e.release(l)
	}
	s, err := e.Load(ctx, id)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if cur := e.live[id]; cur != nil && cur != l {
		e.use(cur)
		return cur, nil
	}
	nl := &live{s: s}
	e.live[id] = nl
	e.use(nl)
	return nl, nil
}

// use hands l out to one more caller. The caller holds e.mu.
func (e *Engine) use(l *live) {
	l.users++
	l.gen++
}

// release gives back a saga that liveSaga, open or detach handed out. A
// saga that nobody holds any more and that has ended leaves memory (see
// evictIfDone).
func (e *Engine) release(l *live) {
	e.mu.Lock()
	l.users--
	free := l.users == 0
	e.mu.Unlock()
	if free {
		e.evictIfDone(l)
	}
}

// evictIfDone drops a committed or compensated saga from memory once no
// caller holds it and it is not unwinding: the journal has all of it, and
// liveSaga loads it again for an operator who rolls it back. Without this,
// every saga a long-running sidecar ever ran would stay in memory.
func (e *Engine) evictIfDone(l *live) {
	e.mu.Lock()
	gen := l.gen
	e.mu.Unlock()
	l.mu.Lock()
	done := l.s.Status.Terminal() && !l.unwinding && l.broken == nil
	masked := len(l.originals) > 0
	id := l.s.ID
	l.mu.Unlock()
	if !done {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	// Handed out since the look above: its holder may change it.
	if l.users > 0 || l.gen != gen || e.live[id] != l {
		return
	}
	if !masked {
		e.forgetLocked(l, id)
		return
	}
	// The journal has only masked copies of some of its values, and an
	// operator's rollback may need the originals: keep the latest ended
	// sagas of that kind, and forget the oldest beyond maxKept.
	if !l.kept || l.keptGen != gen {
		l.kept, l.keptGen = true, gen
		e.kept = append(e.kept, keptSaga{l: l, id: id, gen: gen})
	}
	for len(e.kept) > maxKept {
		k := e.kept[0]
		e.kept = e.kept[1:]
		if !k.l.kept || k.l.keptGen != k.gen {
			continue // a later entry of the same saga is queued
		}
		k.l.kept = false
		if k.l.users == 0 && k.l.gen == k.gen && e.live[k.id] == k.l {
			e.forgetLocked(k.l, k.id)
		}
	}
}

// forgetLocked drops saga id, held as l, from memory. The caller holds
// e.mu.
func (e *Engine) forgetLocked(l *live, id string) {
	delete(e.live, id)
	if l.scope != "" && e.scopes[l.scope] == id {
		delete(e.scopes, l.scope)
	}
}

// InMemory is the number of sagas held in memory: open, unwinding, or in
// use by a caller (for tests and metrics; ended sagas are in the journal).
func (e *Engine) InMemory() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.live)
}

// redact masks a member for the journal and reports whether it changed.
func (e *Engine) redact(member string, raw json.RawMessage) (json.RawMessage, bool) {
	if e.opts.Redact == nil || len(raw) == 0 {
		return raw, false
	}
	out := e.opts.Redact(member, raw)
	return out, string(out) != string(raw)
}

// keepOriginal remembers a step's unmasked value. Caller holds l.mu.
func (l *live) keepOriginal(step int, args, result json.RawMessage) {
	if l.originals == nil {
		l.originals = map[int]original{}
	}
	o := l.originals[step]
	if args != nil {
		o.args = args
	}
	if result != nil {
		o.result = result
	}
	l.originals[step] = o
}

// unmasked returns a step's arguments and result as sent, where known.
func (l *live) unmasked(st *saga.Step) (args, result json.RawMessage) {
	args, result = st.Args, st.Result
	l.mu.Lock()
	defer l.mu.Unlock()
	if o, ok := l.originals[st.N]; ok {
		if o.args != nil {
			args = o.args
		}
		if o.result != nil {
			result = o.result
		}
	}
	return args, result
}
