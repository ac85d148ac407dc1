package policy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/tester"
)

// ErrTestsFailed: a policy directory's tests did not all pass.
var ErrTestsFailed = errors.New("policy tests failed")

// ErrNoTests: a policy directory has no tests (rules named test_*).
var ErrNoTests = errors.New("no policy tests found")

// RunTests runs the Rego unit tests (rules named test_* in any .rego file,
// usually *_test.rego) of the policy directory dir, the way `opa test`
// does, and writes `opa test`'s report to w: failures only, or every test
// with verbose, then the PASS/FAIL summary. The directory is read as the
// engine reads it, data files included. A test that raises an error counts
// as failed, and so does a built-in error (as in Decide, where it denies).
// err is set when the directory does not load or compile, or has no tests;
// `agenthelm policy test` succeeds iff err == nil && failed == 0.
func RunTests(ctx context.Context, dir string, w io.Writer, opts TestOptions) (passed, failed int, err error) {
	snap, err := readDir(dir)
	if err != nil {
		return 0, 0, err
	}
	return runTests(ctx, snap, w, opts)
}

// TestOptions configure RunTests.
type TestOptions struct {
	// Verbose reports every test, and traces the failing ones.
	Verbose bool
	// Timeout bounds each test; a test that takes longer fails. Zero:
	// DefaultTestTimeout.
	Timeout time.Duration
}

// DefaultTestTimeout bounds one policy test, as opa test's default does.
const DefaultTestTimeout = 5 * time.Second

// reloadTestTimeout bounds one test of a reload's gate (test_on_reload):
// a test that is merely slow on a busy machine must not reject a reload.
const reloadTestTimeout = 60 * time.Second

// testSnapshot runs a snapshot's tests for a reload: nil when all pass,
// otherwise an ErrTestsFailed error that names the failing tests.
func testSnapshot(ctx context.Context, snap *snapshot) error {
	if len(snap.tests) == 0 {
		return nil // nothing to gate on
	}
	var report strings.Builder
	_, failed, err := runTests(ctx, snap, &report, TestOptions{Timeout: reloadTestTimeout})
	if err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("%w:\n%s", ErrTestsFailed, strings.TrimSpace(report.String()))
	}
	return nil
}

func runTests(ctx context.Context, snap *snapshot, w io.Writer, opts TestOptions) (passed, failed int, err error) {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTestTimeout
	}
	verbose := opts.Verbose
	if w == nil {
		w = io.Discard
	}
	mods, err := snap.modules(true)
	if err != nil {
		return 0, 0, err
	}
	doc, err := snap.document()
	if err != nil {
		return 0, 0, err
	}
	ch, err := tester.NewRunner().
		SetDefaultRegoVersion(ast.RegoV1).
		SetStore(inmem.NewFromObjectWithOpts(doc, inmem.OptRoundTripOnWrite(false))).
		SetModules(mods).
		RaiseBuiltinErrors(true).
		StackTraces(true).
		CapturePrintOutput(true).
		EnableTracing(verbose).
		SetTimeout(opts.Timeout).
		RunTests(ctx, nil)
	if err != nil {
		var aerrs ast.Errors
		if errors.As(err, &aerrs) {
			return 0, 0, &LoadError{Errors: aerrs}
		}
		return 0, 0, fmt.Errorf("run policy tests: %w", err)
	}

	// Count as the report does, while the report streams.
	fwd := make(chan *tester.Result)
	done := make(chan error, 1)
	go func() {
		done <- tester.PrettyReporter{Output: w, Verbose: verbose, FailureLine: true}.Report(fwd)
	}()
	total := 0
	for r := range ch {
		total++
		p, f := countResult(r)
		passed += p
		failed += f
		fwd <- r
	}
	close(fwd)
	if err := <-done; err != nil {
		return passed, failed, fmt.Errorf("report policy tests: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return passed, failed, fmt.Errorf("run policy tests: %w", err)
	}
	if total == 0 {
		return 0, 0, fmt.Errorf("%w in %s (rules named test_*)", ErrNoTests, snap.dir)
	}
	return passed, failed, nil
}

// countResult counts a result's leaf test cases (a test with sub-results,
// for example one over a table, counts each case).
func countResult(r *tester.Result) (passed, failed int) {
	switch {
	case r.Skip:
		return 0, 0
	case r.Error != nil:
		return 0, 1
	}
	leaves := 0
	for _, sr := range r.SubResults.Iter {
		if len(sr.SubResults) != 0 {
			continue
		}
		leaves++
		if sr.Fail {
			failed++
		} else {
			passed++
		}
	}
	if leaves == 0 {
		if r.Fail {
			return 0, 1
		}
		return 1, 0
	}
	return passed, failed
}
