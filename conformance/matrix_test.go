package conformance

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// The matrix: scenario × upstream transport × front door × client era.
// Every cell ends as pass, fail, n/a (with why), or gap (a known gap listed
// in knownGaps, with its reason). A fail fails the test; a gap is reported
// but does not; a known gap that passes fails the test so that the list
// stays true.

type cellKey struct {
	server, upstream, door, era, scenario string
}

type cellStatus string

const (
	statusPass cellStatus = "pass"
	statusFail cellStatus = "FAIL"
	statusNA   cellStatus = "n/a"
	statusGap  cellStatus = "gap"
)

type cellResult struct {
	status cellStatus
	reason string
}

var matrix = struct {
	mu    sync.Mutex
	cells map[cellKey]cellResult
}{cells: map[cellKey]cellResult{}}

func setCell(k cellKey, r cellResult) {
	matrix.mu.Lock()
	defer matrix.mu.Unlock()
	matrix.cells[k] = r
}

// knownGap marks cells that are expected to fail, with the reason. Empty
// fields match anything.
type knownGap struct {
	server, upstream, door, era, scenario string
	reason                                string
}

// knownGaps is empty: every failing cell is a failure. To accept one, add
// an entry whose reason says why, for example
//
//	{server: "everything", upstream: upHTTP, era: era2026, scenario: "initialize",
//		reason: "upstream HTTP errors are re-wrapped as -32001 (issue #N)"},
var knownGaps = []knownGap{}

func gapFor(k cellKey) string {
	m := func(pat, v string) bool { return pat == "" || pat == v }
	for _, g := range knownGaps {
		if m(g.server, k.server) && m(g.upstream, k.upstream) && m(g.door, k.door) && m(g.era, k.era) && m(g.scenario, k.scenario) {
			return g.reason
		}
	}
	return ""
}

// servers lists the servers under test with their scenarios.
var servers = []struct {
	name      string
	scenarios []scenario
}{
	{"everything", everythingScenarios},
	{"memory", memoryScenarios},
}

var upstreams = []string{upStdio, upHTTP, upSSE}

func TestConformance(t *testing.T) {
	t.Parallel()
	t.Run("matrix", func(t *testing.T) {
		for _, srv := range servers {
			for _, up := range upstreams {
				for _, era := range eras {
					base := target{server: srv.name, upstream: up, door: doorDirect}
					if why := base.notApplicable(); why != "" {
						for _, d := range doors {
							markAll(srv.scenarios, target{srv.name, up, d}, era, statusNA, why)
						}
						continue
					}
					t.Run(fmt.Sprintf("%s-%s/%s", srv.name, up, era), func(t *testing.T) {
						t.Parallel()
						runGroup(t, srv.scenarios, base, era)
					})
				}
			}
		}
	})
}

func markAll(scs []scenario, tgt target, era string, st cellStatus, why string) {
	for _, sc := range scs {
		setCell(cellKey{tgt.server, tgt.upstream, tgt.door, era, sc.id}, cellResult{st, why})
	}
}

// runGroup runs the scenarios directly, then through every applicable front
// door (in parallel), comparing each with the direct run.
func runGroup(t *testing.T, scs []scenario, base target, era string) {
	var baseline map[string]*obs
	t.Run(doorDirect, func(t *testing.T) {
		baseline = runSession(t, scs, base, era, nil)
	})
	for _, d := range doors[1:] {
		tgt := base
		tgt.door = d
		if why := tgt.notApplicable(); why != "" {
			markAll(scs, tgt, era, statusNA, why)
			continue
		}
		t.Run(d, func(t *testing.T) {
			t.Parallel()
			runSession(t, scs, tgt, era, baseline)
		})
	}
}

// runSession opens one session to tgt and runs the scenarios in order, each
// as a subtest. With a baseline it compares each observation with it. It
// returns the observations of the scenarios that passed.
func runSession(t *testing.T, scs []scenario, tgt target, era string, baseline map[string]*obs) map[string]*obs {
	out := map[string]*obs{}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	s, err := dial(ctx, t, tgt, era)
	cancel()
	if err != nil {
		err = fmt.Errorf("%s at %s: %w", tgt, era, err)
		for _, sc := range scs {
			t.Run(sc.id, func(t *testing.T) {
				finishCell(t, cellKey{tgt.server, tgt.upstream, tgt.door, era, sc.id}, err, nil)
			})
		}
		return out
	}
	for _, sc := range scs {
		t.Run(sc.id, func(t *testing.T) {
			k := cellKey{tgt.server, tgt.upstream, tgt.door, era, sc.id}
			if baseline != nil && baseline[sc.id] == nil {
				setCell(k, cellResult{statusNA, "the direct run of this scenario failed"})
				t.Skip("the direct run of this scenario failed; nothing to compare with")
			}
			o := &obs{}
			from := s.w.len()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			err := sc.run(ctx, s, o)
			cancel()
			if err == nil && baseline != nil {
				err = compareObs(baseline[sc.id], o, tgt.door)
			}
			if finishCell(t, k, err, func() string { return s.diagnostics(from) }) {
				out[sc.id] = o
			}
		})
	}
	return out
}

// compareObs compares a proxied observation with the direct one. The
// error's first line names what differs (and both values when short), for
// the generated table; the rest is the full diff.
func compareObs(direct, proxied *obs, door string) error {
	diff := cmp.Diff(direct.entries, proxied.entries)
	if diff == "" {
		return nil
	}
	var what []string
	for i := 0; i < max(len(direct.entries), len(proxied.entries)); i++ {
		var d, p obsEntry
		if i < len(direct.entries) {
			d = direct.entries[i]
		}
		if i < len(proxied.entries) {
			p = proxied.entries[i]
		}
		switch {
		case d == p:
			continue
		case d.Label != p.Label:
			what = append(what, fmt.Sprintf("observation %d is %q directly, %q through %s", i+1, d.Label, p.Label, door))
		case len(d.Value) <= 60 && len(p.Value) <= 60:
			what = append(what, fmt.Sprintf("%s: %s directly, %s through %s", d.Label, d.Value, p.Value, door))
		default:
			what = append(what, d.Label)
		}
	}
	return fmt.Errorf("differs from the direct run in %s\n(-direct +%s):\n%s", strings.Join(what, "; "), door, diff)
}

// finishCell records a cell's outcome and fails t unless the cell is a
// known gap. It reports whether the cell passed.
func finishCell(t *testing.T, k cellKey, err error, diagnostics func() string) bool {
	t.Helper()
	gap := gapFor(k)
	switch {
	case err == nil && gap == "":
		setCell(k, cellResult{statusPass, ""})
		return true
	case err == nil:
		setCell(k, cellResult{statusFail, "listed as a known gap but passes: remove it from knownGaps"})
		t.Errorf("known gap %q no longer fails: remove it from knownGaps", gap)
		return true
	case gap != "":
		setCell(k, cellResult{statusGap, gap})
		t.Logf("known gap (%s): %v", gap, err)
		return false
	}
	setCell(k, cellResult{statusFail, summarize(err)})
	msg := err.Error()
	if diagnostics != nil {
		msg += "\n" + diagnostics()
	}
	if tail := serveTail(k.door); tail != "" {
		msg += "\nagenthelm serve (last lines):\n" + tail
	}
	t.Error(msg)
	return false
}

// diagnostics renders what a failed scenario saw: its frames and the tail of
// the stdio child's stderr.
func (s *session) diagnostics(from int) string {
	out := "wire:\n" + s.w.dump(from)
	if tail := s.stderr.tail(15); tail != "" {
		out += "stderr of " + s.target.door + " (last lines):\n" + tail + "\n"
	}
	return out
}

func serveTail(door string) string {
	if door != doorServeHTTP && door != doorServeSSE {
		return ""
	}
	suite.mu.Lock()
	defer suite.mu.Unlock()
	for _, p := range suite.procs {
		if p.name == "agenthelm-serve" {
			return p.out.tail(15)
		}
	}
	return ""
}

var (
	addrRE     = regexp.MustCompile(`127\.0\.0\.1:\d+`)
	durationRE = regexp.MustCompile(`\b\d+(\.\d+)?(ns|µs|ms|s)\b`)
	tmpPathRE  = regexp.MustCompile(`/[^\s"']*agenthelm-conformance-[^\s"']*`)
)

// summarize turns an error into a short, run-independent line for the
// generated table: the first line, with addresses, durations and temporary
// paths replaced.
func summarize(err error) string {
	var lines []string
	for e := err; e != nil; {
		if j, ok := e.(interface{ Unwrap() []error }); ok && len(j.Unwrap()) > 0 {
			e = j.Unwrap()[0]
			continue
		}
		lines = append(lines, e.Error())
		break
	}
	s := firstLine(strings.Join(lines, "; "))
	s = addrRE.ReplaceAllString(s, "127.0.0.1:PORT")
	s = durationRE.ReplaceAllString(s, "N")
	s = tmpPathRE.ReplaceAllString(s, "TMP")
	s = uuidRE.ReplaceAllString(s, "<uuid>")
	s = strings.ReplaceAll(s, "|", `\|`)
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s
}
