package policy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/format"
)

func TestRunTestsShipped(t *testing.T) {
	var out bytes.Buffer
	passed, failed, err := RunTests(context.Background(), shipped, &out, TestOptions{})
	if err != nil || failed != 0 || passed == 0 {
		t.Fatalf("RunTests(%s) = %d passed, %d failed, %v\n%s", shipped, passed, failed, err, out.String())
	}
	if want := "PASS: "; !strings.Contains(out.String(), want) {
		t.Errorf("report = %q, want a PASS summary", out.String())
	}
}

func TestRunTestsReportsFailures(t *testing.T) {
	dir := policyDir(t, map[string]string{
		"authz.rego": allowPolicy,
		"data.json":  allowData,
		"authz_test.rego": allowTest + `
test_wrong if authz.decision.allow with input as {"tool": {"name": "write"}}

test_table if {
	every name, want in {"read": true, "write": false, "list": true} {
		authz.decision.allow == want with input as {"tool": {"name": name}}
	}
}

test_error if to_number("x") == 1

todo_test_later if false
`,
	})
	var out bytes.Buffer
	passed, failed, err := RunTests(context.Background(), dir, &out, TestOptions{})
	if err != nil {
		t.Fatalf("RunTests: %v", err)
	}
	if passed != 2 || failed != 3 {
		t.Errorf("RunTests = %d passed, %d failed, want 2 and 3\n%s", passed, failed, out.String())
	}
	for _, want := range []string{"test_wrong: FAIL", "test_table: FAIL", "eval_builtin_error: to_number", "PASS: 2/", "FAIL: 2/", "ERROR: 1/", "SKIPPED: 1/"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "test_read_allowed") {
		t.Errorf("non-verbose report lists passing tests:\n%s", out.String())
	}

	out.Reset()
	if _, _, err := RunTests(context.Background(), dir, &out, TestOptions{Verbose: true}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "test_read_allowed: PASS") {
		t.Errorf("verbose report lacks passing tests:\n%s", out.String())
	}
}

func TestRunTestsErrors(t *testing.T) {
	for name, files := range map[string]map[string]string{
		"no tests":      {"authz.rego": allowPolicy},
		"compile error": {"authz.rego": allowPolicy, "authz_test.rego": "package x\n\ntest_a if nope(1)\n"},
	} {
		dir := policyDir(t, files)
		passed, failed, err := RunTests(context.Background(), dir, io.Discard, TestOptions{})
		if err == nil || passed != 0 || failed != 0 {
			t.Errorf("RunTests(%s) = %d, %d, %v; want an error", name, passed, failed, err)
		}
		if name == "no tests" && !errors.Is(err, ErrNoTests) {
			t.Errorf("RunTests(no tests) = %v, want ErrNoTests", err)
		}
	}
}

// The shipped policies are examples people copy: they are formatted as
// `opa fmt` formats them.
func TestShippedPoliciesAreFormatted(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(shipped, "*.rego"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no shipped policies: %v", err)
	}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		got, err := format.Source(f, src)
		if err != nil {
			t.Fatalf("format %s: %v", f, err)
		}
		if !bytes.Equal(got, src) {
			t.Errorf("%s is not formatted as opa fmt formats it; formatted:\n%s", f, got)
		}
	}
}
