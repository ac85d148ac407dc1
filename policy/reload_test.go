package policy

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
)

// A small policy with a test, so that TestOnReload has something to run.
const (
	allowPolicy = `package agenthelm.authz

default decision := {"allow": false, "reasons": ["not allowed"]}

decision := {"allow": true} if input.tool.name in data.agenthelm.allowed
`
	allowData = `{"agenthelm": {"allowed": ["read"]}}`
	allowTest = `package agenthelm.authz_test

import data.agenthelm.authz

test_read_allowed if authz.decision.allow with input as {"tool": {"name": "read"}}

test_write_denied if not authz.decision.allow with input as {"tool": {"name": "write"}}
`
)

type reloadLog struct {
	mu   sync.Mutex
	revs []string
	errs []error
}

func (l *reloadLog) record(rev string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.revs = append(l.revs, rev)
	l.errs = append(l.errs, err)
}

func (l *reloadLog) calls() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.revs)
}

func verdictFor(t *testing.T, e *Engine, tool string) string {
	t.Helper()
	d := e.Decide(context.Background(), NewInput(mcpCall("u", tool, `{}`), pivot, agent, sagaWith(), now))
	if d.Err != nil {
		t.Fatalf("Decide(%s): %v", tool, d.Err)
	}
	return d.Verdict()
}

func TestReloadRejectsBrokenEdits(t *testing.T) {
	dir := policyDir(t, map[string]string{"authz.rego": allowPolicy, "data.json": allowData, "authz_test.rego": allowTest})
	var log reloadLog
	e := newEngine(t, Options{Dir: dir, TestOnReload: true, OnReload: log.record})
	good := e.Status()
	if got := verdictFor(t, e, "read"); got != VerdictAllow {
		t.Fatalf("Decide(read) = %s, want allow", got)
	}

	tests := []struct {
		name  string
		files map[string]string
		want  []string // substrings of the error
		is    error
	}{
		{"syntax error", map[string]string{"authz.rego": strings.Replace(allowPolicy, "if input", "if input ==", 1)},
			[]string{"authz.rego:5:", "rego_parse_error"}, nil},
		{"compile error", map[string]string{"authz.rego": allowPolicy + "\nbad if count(1, 2)\n"},
			[]string{"authz.rego:7:", "rego_type_error"}, nil},
		{"failing test", map[string]string{"data.json": `{"agenthelm": {"allowed": ["write"]}}`},
			[]string{"test_read_allowed: FAIL", "test_write_denied: FAIL", "FAIL: 2/2"}, ErrTestsFailed},
		{"broken test file", map[string]string{"authz_test.rego": allowTest + "\ntest_x if {\n"},
			[]string{"authz_test.rego:", "rego_parse_error"}, nil},
		{"data conflict", map[string]string{"agenthelm/data.json": `{"allowed": ["x"]}`},
			[]string{"conflicting values at data.agenthelm.allowed"}, nil},
		{"no decision", map[string]string{"authz.rego": "package agenthelm.authz\n\nallow := true\n"},
			[]string{"no rule `decision`"}, ErrNoDecisionRule},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Cleanup(func() {
				// Restore the good files; the engine goes back to its revision.
				writeFiles(t, dir, map[string]string{"authz.rego": allowPolicy, "data.json": allowData, "authz_test.rego": allowTest})
				removeAll(t, dir, "agenthelm")
				if err := e.Reload(context.Background()); err != nil {
					t.Fatalf("Reload(good files): %v", err)
				}
			})
			before := log.calls()
			writeFiles(t, dir, tt.files)
			err := e.Reload(context.Background())
			if err == nil {
				t.Fatalf("Reload(%s) succeeded, want an error", tt.name)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Reload(%s) error = %v\nwant it to contain %q", tt.name, err, w)
				}
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("Reload(%s) error = %v, want errors.Is %v", tt.name, err, tt.is)
			}

			// The previous revision keeps deciding, and Status says why.
			st := e.Status()
			if st.Revision != good.Revision || st.LastError != err.Error() || st.LastErrorAt.IsZero() {
				t.Errorf("Status after Reload(%s) = %+v, want revision %s and the error", tt.name, st, good.Revision)
			}
			if got := verdictFor(t, e, "read"); got != VerdictAllow {
				t.Errorf("Decide(read) after Reload(%s) = %s, want allow from the previous revision", tt.name, got)
			}

			// OnReload heard about it once; a second Reload of the same files
			// repeats the error without calling it again.
			if log.calls() != before+1 || log.revs[before] != good.Revision || log.errs[before] == nil {
				t.Errorf("OnReload after Reload(%s): calls %d -> %d, last (%v, %v)", tt.name, before, log.calls(), log.revs, log.errs)
			}
			if err2 := e.Reload(context.Background()); err2 == nil || err2.Error() != err.Error() || log.calls() != before+1 {
				t.Errorf("second Reload(%s) = %v (OnReload calls %d), want the same error and no call", tt.name, err2, log.calls())
			}
		})
	}
	if st := e.Status(); st.LastError != "" || st.Revision != good.Revision {
		t.Errorf("Status after restoring the files = %+v, want the good revision and no error", st)
	}
}

func TestReloadActivatesGoodEdit(t *testing.T) {
	dir := policyDir(t, map[string]string{"authz.rego": allowPolicy, "data.json": allowData, "authz_test.rego": allowTest})
	var log reloadLog
	e := newEngine(t, Options{Dir: dir, TestOnReload: true, OnReload: log.record})
	old := e.Status()

	// Unchanged files: nothing to do.
	if err := e.Reload(context.Background()); err != nil || log.calls() != 0 {
		t.Fatalf("Reload(unchanged) = %v with %d OnReload calls, want nil and none", err, log.calls())
	}

	writeFiles(t, dir, map[string]string{
		"data.json":       `{"agenthelm": {"allowed": ["read", "list"]}}`,
		"authz_test.rego": allowTest + "\ntest_list_allowed if authz.decision.allow with input as {\"tool\": {\"name\": \"list\"}}\n",
	})
	if err := e.Reload(context.Background()); err != nil {
		t.Fatalf("Reload(good edit): %v", err)
	}
	st := e.Status()
	if st.Revision == old.Revision || st.LastError != "" || !st.LoadedAt.After(old.LoadedAt) {
		t.Errorf("Status after a good edit = %+v, want a new revision (old %s)", st, old.Revision)
	}
	if log.calls() != 1 || log.revs[0] != st.Revision || log.errs[0] != nil {
		t.Errorf("OnReload calls = %v %v, want one with %s", log.revs, log.errs, st.Revision)
	}
	if got := verdictFor(t, e, "list"); got != VerdictAllow {
		t.Errorf("Decide(list) = %s, want allow from the new revision", got)
	}

	// Editing only a test changes no decision: same revision.
	writeFiles(t, dir, map[string]string{"authz_test.rego": allowTest})
	if err := e.Reload(context.Background()); err != nil || e.Status().Revision != st.Revision {
		t.Errorf("Reload(test edit) = %v, revision %s; want no error and revision %s", err, e.Status().Revision, st.Revision)
	}
}

func TestLoadErrorsRejectARevision(t *testing.T) {
	policy := allowPolicy + `
load_errors contains "data.agenthelm.allowed must be a list" if not is_array(data.agenthelm.allowed)

load_errors contains "data.agenthelm.allowed must not be empty" if count(data.agenthelm.allowed) == 0
`
	dir := policyDir(t, map[string]string{"authz.rego": policy, "data.json": `{"agenthelm": {"allowed": []}}`})
	_, err := New(context.Background(), Options{Dir: dir})
	if !errors.Is(err, ErrLoadErrors) || !strings.Contains(err.Error(), "data.agenthelm.allowed must not be empty") {
		t.Fatalf("New(empty list) = %v, want a load error naming the setting", err)
	}

	writeFiles(t, dir, map[string]string{"data.json": allowData})
	e := newEngine(t, Options{Dir: dir})
	writeFiles(t, dir, map[string]string{"data.json": `{"agenthelm": {"allowed": "read"}}`})
	if err := e.Reload(context.Background()); !errors.Is(err, ErrLoadErrors) || !strings.Contains(err.Error(), "must be a list") {
		t.Fatalf("Reload(allowed as string) = %v, want a load error", err)
	}
	if got := verdictFor(t, e, "read"); got != VerdictAllow {
		t.Errorf("Decide(read) = %s, want allow from the previous revision", got)
	}
}
