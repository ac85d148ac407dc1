package policy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown"
	"github.com/open-policy-agent/opa/v1/topdown/print"
)

// Modes (Options.Mode).
const (
	// ModeEnforce: a deny is not forwarded, a hold waits for approval.
	ModeEnforce = "enforce"
	// ModeDryRun: the verdict is computed, journaled and traced, and the
	// call is forwarded whatever it is.
	ModeDryRun = "dry-run"
)

// stepCacheSize bounds the step cache: two generations of this many steps.
const stepCacheSize = 4096

// DefaultDebounce is how long Watch waits for a directory to settle.
const DefaultDebounce = 250 * time.Millisecond

// Options configure an Engine.
type Options struct {
	// Dir is the policy directory: *.rego files and data.json / data.yaml
	// files, see docs/POLICY.md. *_test.rego files are tests. Exactly one
	// of Dir and Bundle is set.
	Dir string
	// Bundle takes the policy from an OPA bundle server instead of a
	// directory (see BundleSource).
	Bundle *BundleSource
	// Mode is ModeEnforce or ModeDryRun; empty means ModeEnforce.
	Mode string
	// TestOnReload runs the directory's policy tests before a revision is
	// activated, at New and on every Reload; a failing test rejects it.
	TestOnReload bool
	// Debounce is how long Watch waits after the last file event before it
	// reloads; zero means DefaultDebounce.
	Debounce time.Duration
	// Logger receives load and reload events, fail-closed decisions and the
	// output of print() in policies (at debug level); nil discards.
	Logger *slog.Logger
	// OnReload, if set, is called after every Reload that activated a new
	// revision (err nil) or was rejected (rev is the revision still active).
	// A Reload that finds the files unchanged does not call it. It runs on
	// the reloading goroutine and must not call Reload.
	OnReload func(rev string, err error)
}

// Engine evaluates tool calls against a policy directory. Decide is safe for
// concurrent use and never waits for a reload: the compiled revision is
// swapped atomically.
type Engine struct {
	opts Options
	log  *slog.Logger

	cur   atomic.Pointer[revision]
	steps *stepCache // values of saga steps seen in earlier inputs
	parts *partCache // values of the tools, transports, agents and times seen

	reloadMu    sync.Mutex // serializes Reload
	lastFP      string     // fingerprint of the last attempted snapshot; under reloadMu
	etag        string     // the bundle server's etag of the last bundle fetched; under reloadMu
	statusMu    sync.Mutex // guards lastErr, lastErrAt
	lastErr     error
	lastErrAt   time.Time
	testWatched func() // test hook: Watch has registered its watches
}

// Status describes the active policy revision and the last reload.
type Status struct {
	// Revision identifies the active policy files and data.
	Revision string `json:"revision"`
	// LoadedAt is when the active revision was activated.
	LoadedAt time.Time `json:"loaded_at"`
	// Files are the active revision's policy and data files, relative to Dir.
	Files []string `json:"files"`
	// LastError is why the most recent reload was rejected; empty until
	// then, and again once a reload succeeds. While it is set, the files on
	// disk are not what decides.
	LastError string `json:"last_error,omitempty"`
	// LastErrorAt is when LastError happened.
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	// Mode is ModeEnforce or ModeDryRun.
	Mode string `json:"mode"`
	// Source is where the policy comes from: the directory, or "bundle "
	// and the bundle server's URL.
	Source string `json:"source"`
}

// New loads, compiles and (with TestOnReload) tests the policy directory.
// It fails if the directory does not load: the error names file:line:col
// and OPA's message.
func New(ctx context.Context, opts Options) (*Engine, error) {
	switch {
	case opts.Dir == "" && opts.Bundle == nil:
		return nil, errors.New("policy: Options.Dir or Options.Bundle is required")
	case opts.Dir != "" && opts.Bundle != nil:
		return nil, errors.New("policy: set Options.Dir or Options.Bundle, not both")
	case opts.Bundle != nil && opts.Bundle.URL == "":
		return nil, errors.New("policy: Options.Bundle.URL is required")
	}
	switch opts.Mode {
	case "":
		opts.Mode = ModeEnforce
	case ModeEnforce, ModeDryRun:
	default:
		return nil, fmt.Errorf("policy: mode %q: want %q or %q", opts.Mode, ModeEnforce, ModeDryRun)
	}
	if opts.Debounce <= 0 {
		opts.Debounce = DefaultDebounce
	}
	e := &Engine{opts: opts, log: opts.Logger, steps: newStepCache(stepCacheSize), parts: newPartCache()}
	if e.log == nil {
		e.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	snap, raw, etag, err := e.readSnapshot(ctx, "")
	if err != nil && opts.Bundle != nil && opts.Bundle.CacheFile != "" {
		// The bundle server is out of reach: start with the last bundle
		// that was activated, and keep polling.
		if cached, cerr := os.ReadFile(opts.Bundle.CacheFile); cerr == nil {
			e.log.Warn("policy bundle server not reachable; starting with the cached bundle", "bundle", opts.Bundle.URL, "cache", opts.Bundle.CacheFile, "err", err)
			snap, err = opts.Bundle.snapshot(cached)
			raw, etag = nil, ""
		}
	}
	if err != nil {
		return nil, fmt.Errorf("load policy %s: %w", e.where(), err)
	}
	rev, err := e.load(ctx, snap)
	if err != nil {
		return nil, fmt.Errorf("load policy %s: %w", e.where(), err)
	}
	e.lastFP, e.etag = e.fingerprint(snap), etag
	e.cur.Store(rev)
	if raw != nil {
		if err := opts.Bundle.saveCache(raw); err != nil {
			e.log.Warn("policy bundle not cached", "cache", opts.Bundle.CacheFile, "err", err)
		}
	}
	e.log.Info("policy loaded", "source", e.where(), "revision", rev.id, "files", len(rev.files), "mode", opts.Mode)
	return e, nil
}

// load builds a revision from snap and, with TestOnReload, runs its tests.
func (e *Engine) load(ctx context.Context, snap *snapshot) (*revision, error) {
	rev, err := build(ctx, snap, compileOptions{printHook: printLogger{e.log}})
	if err != nil {
		return nil, err
	}
	if e.opts.TestOnReload {
		if err := testSnapshot(ctx, snap); err != nil {
			return nil, err
		}
	}
	if !rev.hasDefaultDecision() {
		e.log.Warn("policy has no `default decision` rule: inputs it does not cover are denied as undefined",
			"source", e.where(), "revision", rev.id)
	}
	return rev, nil
}

// fingerprint identifies everything a reload looks at: the deciding files,
// and the tests when they gate the reload.
func (e *Engine) fingerprint(snap *snapshot) string {
	if !e.opts.TestOnReload || len(snap.tests) == 0 {
		return snap.revision()
	}
	h := sha256.New()
	h.Write([]byte(snap.revision()))
	tests := slices.Clone(snap.tests)
	slices.SortFunc(tests, func(a, b source) int { return strings.Compare(a.rel, b.rel) })
	for _, f := range tests {
		fmt.Fprintf(h, "\x00%s\x00%d\x00", f.rel, len(f.data))
		h.Write(f.data)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Reload reads the directory again and, if anything changed, parses,
// compiles (and with TestOnReload tests) it as a new revision and activates
// it. On failure the active revision keeps deciding, and the error is
// returned and kept in Status until a later reload succeeds. Decisions in
// progress finish on the revision they started with.
func (e *Engine) Reload(ctx context.Context) error {
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()

	snap, raw, etag, err := e.readSnapshot(ctx, e.etag)
	if errors.Is(err, errNotModified) {
		e.statusMu.Lock()
		defer e.statusMu.Unlock()
		return e.lastErr // the server has nothing newer: same outcome
	}
	if err != nil {
		e.lastFP = ""
		return e.rejected(err)
	}
	e.etag = etag
	fp := e.fingerprint(snap)
	if fp == e.lastFP {
		e.statusMu.Lock()
		defer e.statusMu.Unlock()
		return e.lastErr // unchanged since the last attempt: same outcome
	}
	e.lastFP = fp
	rev, err := e.load(ctx, snap)
	if err != nil {
		if ctx.Err() != nil {
			e.lastFP = "" // interrupted, not judged: try these files again next time
		}
		return e.rejected(err)
	}
	old := e.cur.Swap(rev)
	e.statusMu.Lock()
	e.lastErr, e.lastErrAt = nil, time.Time{}
	e.statusMu.Unlock()
	e.log.Info("policy reloaded", "source", e.where(), "revision", rev.id, "previous", old.id, "files", len(rev.files))
	if raw != nil {
		if err := e.opts.Bundle.saveCache(raw); err != nil {
			e.log.Warn("policy bundle not cached", "cache", e.opts.Bundle.CacheFile, "err", err)
		}
	}
	if e.opts.OnReload != nil {
		e.opts.OnReload(rev.id, nil)
	}
	return nil
}

func (e *Engine) rejected(err error) error {
	err = fmt.Errorf("reload policy %s: %w", e.where(), err)
	e.statusMu.Lock()
	e.lastErr, e.lastErrAt = err, time.Now()
	e.statusMu.Unlock()
	active := e.cur.Load().id
	e.log.Error("policy reload rejected; the previous revision stays active", "revision", active, "err", err)
	if e.opts.OnReload != nil {
		e.opts.OnReload(active, err)
	}
	return err
}

// Status reports the active revision and the outcome of the last reload.
func (e *Engine) Status() Status {
	rev := e.cur.Load()
	st := Status{Revision: rev.id, LoadedAt: rev.loadedAt, Files: slices.Clone(rev.files), Mode: e.opts.Mode, Source: e.where()}
	e.statusMu.Lock()
	if e.lastErr != nil {
		st.LastError, st.LastErrorAt = e.lastErr.Error(), e.lastErrAt
	}
	e.statusMu.Unlock()
	return st
}

// Decide evaluates the policy for one call. It never fails: an invalid
// input, an evaluation error, an undefined decision or a decision that is
// not an object of the documented shape give a deny whose reason says so,
// with the cause in Decision.Err (fail closed). In dry-run mode the verdict
// is the same and DryRun is set.
func (e *Engine) Decide(ctx context.Context, in Input) Decision {
	start := time.Now()
	rev := e.cur.Load()
	d := rev.decide(ctx, &in, e.steps, e.parts, start)
	d.DryRun = e.opts.Mode == ModeDryRun
	if d.Err != nil {
		e.log.Warn("policy decision failed closed",
			"decision", d.ID, "revision", d.Revision, "tool", in.Tool.Name, "upstream", in.Tool.Upstream,
			"saga", in.Saga.ID, "dry_run", d.DryRun, "err", d.Err)
	}
	return d
}

// decide evaluates in against the revision.
func (r *revision) decide(ctx context.Context, in *Input, steps *stepCache, parts *partCache, start time.Time) Decision {
	v, tool, err := in.convert(steps, parts)
	if err != nil {
		d := Decision{ID: newID(start), Revision: r.id}
		d.failClosed(fmt.Errorf("%w: %v", ErrInput, err))
		d.Duration = time.Since(start)
		return d
	}
	var at time.Time
	if in.Time.Unix != 0 {
		at = time.Unix(in.Time.Unix, 0)
	}
	return r.eval(ctx, v, tool, at, start)
}

// evalValue evaluates an input value against the revision. A non-zero at
// is what time.now_ns() returns, so that replaying a journaled input
// reproduces its decision.
func (r *revision) evalValue(ctx context.Context, v ast.Value, at, start time.Time, opts ...rego.EvalOption) Decision {
	return r.eval(ctx, v, nil, at, start, opts...)
}

// eval is evalValue for an input whose input.tool is tool, the key of the
// revision's tool rule values (nil: not shared, not cached).
func (r *revision) eval(ctx context.Context, v, tool ast.Value, at, start time.Time, opts ...rego.EvalOption) (d Decision) {
	d.ID, d.Revision = newID(start), r.id
	defer func() { d.Duration = time.Since(start) }()

	if err := ctx.Err(); err != nil {
		d.failClosed(fmt.Errorf("%w: %v", ErrEvaluation, err))
		return d
	}
	// OPA would start a goroutine per evaluation to watch ctx, and collect
	// metrics nobody reads: a cancel flag set by context.AfterFunc (nothing
	// to watch for a context that cannot be cancelled) costs less.
	cancel := topdown.NewCancel()
	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, cancel.Cancel)
		defer stop()
	}
	opts = append(opts, rego.EvalParsedInput(v), rego.EvalExternalCancel(cancel), rego.EvalMetrics(metrics.NoOp()), decisionTerm)
	var vc *decisionCache
	var known staticValues
	if r.static != nil || r.tools != nil {
		known = r.tools.get(tool)
		vc = newDecisionCache(r.static, known)
		opts = append(opts, rego.EvalVirtualCache(vc))
	}
	if !at.IsZero() {
		opts = append(opts, rego.EvalTime(at))
	}
	rs, err := r.query.Eval(ctx, opts...)
	if err == nil && tool != nil && r.tools != nil && !r.tools.complete(known) {
		r.tools.learn(tool, known, vc)
	}
	switch {
	case err != nil:
		d.failClosed(fmt.Errorf("%w: %v", ErrEvaluation, err))
	case len(rs) == 0 || len(rs[0].Expressions) == 0:
		d.failClosed(fmt.Errorf("%w: %s has no value for this input (give the rule a default)", ErrUndefined, DecisionQuery))
	default:
		t, ok := rs[0].Expressions[0].Value.(*ast.Term) // see decisionTerm
		if !ok {
			d.failClosed(fmt.Errorf("%w: unexpected result %T", ErrEvaluation, rs[0].Expressions[0].Value))
			break
		}
		if raw, err := marshalDecision(t.Value); err == nil {
			d.Raw = raw
		}
		if err := d.fill(t.Value); err != nil {
			d.failClosed(err)
		}
	}
	return d
}

// decisionTerm makes OPA hand over the decision as the AST term it
// computed, rather than converted to Go maps: evalValue reads and encodes
// the term itself (see astjson.go).
var decisionTerm = rego.EvalGenerateJSON(func(t *ast.Term, _ *rego.EvalContext) (any, error) { return t, nil })

// printLogger sends the output of print() in policies to the logger.
type printLogger struct{ log *slog.Logger }

func (p printLogger) Print(pctx print.Context, msg string) error {
	attrs := []any{"output", msg}
	if pctx.Location != nil {
		attrs = append(attrs, "location", fmt.Sprintf("%s:%d", pctx.Location.File, pctx.Location.Row))
	}
	p.log.Debug("policy print", attrs...)
	return nil
}
