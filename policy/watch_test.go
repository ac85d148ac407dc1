package policy

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func removeAll(t testing.TB, dir, name string) {
	t.Helper()
	if err := os.RemoveAll(filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}

// watching starts Watch on e and returns once its watches are in place.
// The test waits for Watch to return.
func watching(t *testing.T, e *Engine) {
	t.Helper()
	ready := make(chan struct{})
	e.testWatched = func() { close(ready) }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Watch(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Watch: %v", err)
		}
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Watch returned early: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("Watch did not start")
	}
}

// waitStatus polls Status until cond holds, for at most 10 seconds.
func waitStatus(t *testing.T, e *Engine, what string, cond func(Status) bool) Status {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := e.Status()
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: Status = %+v", what, st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestWatchReloadsOnChange(t *testing.T) {
	dir := policyDir(t, map[string]string{"authz.rego": allowPolicy, "data.json": allowData})
	e := newEngine(t, Options{Dir: dir, Debounce: 20 * time.Millisecond})
	old := e.Status().Revision
	watching(t, e)

	// A good edit is picked up.
	writeFiles(t, dir, map[string]string{"data.json": `{"agenthelm": {"allowed": ["read", "list"]}}`})
	st := waitStatus(t, e, "the edit to be active", func(st Status) bool { return st.Revision != old })
	if st.LastError != "" {
		t.Errorf("Status = %+v, want no error", st)
	}
	if got := verdictFor(t, e, "list"); got != VerdictAllow {
		t.Errorf("Decide(list) = %s after the edit, want allow", got)
	}

	// A broken edit is reported and the good revision keeps deciding.
	writeFiles(t, dir, map[string]string{"authz.rego": "package agenthelm.authz\n\ndecision := {\n"})
	bad := waitStatus(t, e, "the broken edit to be rejected", func(st Status) bool { return st.LastError != "" })
	if bad.Revision != st.Revision || !strings.Contains(bad.LastError, "rego_parse_error") {
		t.Errorf("Status after a broken edit = %+v, want revision %s and a parse error", bad, st.Revision)
	}
	if got := verdictFor(t, e, "list"); got != VerdictAllow {
		t.Errorf("Decide(list) = %s after the broken edit, want allow", got)
	}

	// Fixing it clears the error. A new subdirectory with data counts too.
	writeFiles(t, dir, map[string]string{"authz.rego": allowPolicy + "\n# fixed\n"})
	fixed := waitStatus(t, e, "the fix", func(st Status) bool { return st.LastError == "" && st.Revision != bad.Revision })
	writeFiles(t, dir, map[string]string{"teams/data.json": `{"owner": "payments"}`})
	waitStatus(t, e, "the new directory's data", func(st Status) bool {
		return st.Revision != fixed.Revision && strings.Contains(strings.Join(st.Files, ","), "teams/data.json")
	})
}

func TestWatchDebouncesBursts(t *testing.T) {
	dir := policyDir(t, map[string]string{"authz.rego": allowPolicy, "data.json": allowData})
	var log reloadLog
	e := newEngine(t, Options{Dir: dir, Debounce: 500 * time.Millisecond, OnReload: log.record})
	watching(t, e)

	// An editor saving a file in several writes: one reload, of the last content.
	var final string
	for i := range 5 {
		final = `{"agenthelm": {"allowed": ["read", "v` + string(rune('0'+i)) + `"]}}`
		writeFiles(t, dir, map[string]string{"data.json": final})
	}
	waitStatus(t, e, "the reload", func(Status) bool { return log.calls() > 0 })
	if got := verdictFor(t, e, "v4"); got != VerdictAllow {
		t.Errorf("Decide(v4) = %s, want allow from the last write", got)
	}
	if n := log.calls(); n != 1 {
		t.Errorf("OnReload called %d times for one burst of writes, want 1", n)
	}
}
