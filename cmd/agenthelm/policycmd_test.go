package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// policyFixtures writes small policy directories: one whose tests pass,
// one with a failing test, one that does not parse, one without tests.
func policyFixtures(t *testing.T) map[string]string {
	t.Helper()
	const policy = "package agenthelm.authz\n\ndefault decision := {\"allow\": false, \"reasons\": [\"nothing is allowed\"]}\n\n" +
		"decision := {\"allow\": false, \"require_approval\": true, \"reasons\": [\"look first\"], \"approval_timeout\": \"5m\"} if input.tool.name == \"charge_customer\"\n"
	files := map[string]map[string]string{
		"good": {"authz.rego": policy, "authz_test.rego": "package agenthelm.authz_test\n\nimport data.agenthelm.authz\n\n" +
			"test_denies if not authz.decision.allow\n" +
			"test_holds_charges if authz.decision.require_approval with input as {\"tool\": {\"name\": \"charge_customer\"}}\n"},
		"failing": {"authz.rego": policy, "authz_test.rego": "package agenthelm.authz_test\n\nimport data.agenthelm.authz\n\n" +
			"test_allows if authz.decision.allow\ntest_denies if not authz.decision.allow\n"},
		"broken":  {"authz.rego": "package agenthelm.authz\n\ndecision := {\"allow\": true\n"},
		"notests": {"authz.rego": policy},
	}
	root := t.TempDir()
	dirs := map[string]string{}
	for name, fs := range files {
		dir := filepath.Join(root, name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for f, body := range fs {
			if err := os.WriteFile(filepath.Join(dir, f), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		dirs[name] = dir
	}
	return dirs
}

func runCLI(args ...string) (string, error) {
	var out bytes.Buffer
	err := run(context.Background(), args, strings.NewReader(""), &out, &out)
	return out.String(), err
}

// TestPolicyTestShippedPolicies runs the shipped policies' Rego tests as
// CI does.
func TestPolicyTestShippedPolicies(t *testing.T) {
	out, err := runCLI("policy", "test", filepath.Join("..", "..", "policies"))
	if err != nil {
		t.Fatalf("policy test policies/: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`^PASS: (\d+)/(\d+)\n$`).FindStringSubmatch(out)
	if m == nil || m[1] != m[2] || m[1] == "0" {
		t.Errorf("policy test policies/ printed %q, want PASS: n/n and nothing else", out)
	}
	// Verbose runs trace every step: under the race detector on a busy
	// machine a test can take longer than opa test's 5 s default.
	out, err = runCLI("policy", "test", "-v", "--timeout", "2m", filepath.Join("..", "..", "policies"))
	if err != nil || !strings.Contains(out, "data.agenthelm.authz_test.") || !strings.Contains(out, ": PASS (") {
		t.Errorf("policy test -v = %v:\n%s", err, out)
	}
}

// TestPolicyTestExitStatus: the report and exit status are opa test's.
func TestPolicyTestExitStatus(t *testing.T) {
	dirs := policyFixtures(t)
	for _, tc := range []struct {
		dir      string
		code     int // 0 ok, 2 tests failed, 1 other errors
		contains string
	}{
		{"good", 0, "PASS: 2/2"},
		{"failing", 2, "FAIL: 1/2"},
		{"broken", 1, "rego_parse_error"},
		{"notests", 1, "no policy tests found"},
	} {
		out, err := runCLI("policy", "test", dirs[tc.dir])
		code := 0
		if err != nil {
			code = 1
			if c, ok := exitCode(err); ok {
				code = c
			}
			out += err.Error()
		}
		if code != tc.code || !strings.Contains(out, tc.contains) {
			t.Errorf("policy test %s: exit status %d, want %d; output lacks %q?\n%s", tc.dir, code, tc.code, tc.contains, out)
		}
	}

	// Without DIR: the configured policy directory.
	cfg := filepath.Join(t.TempDir(), "agenthelm.yaml")
	if err := os.WriteFile(cfg, []byte("policy: {dir: "+dirs["failing"]+"}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := runCLI("policy", "test", "--config", cfg); err != (exitError{2}) {
		t.Errorf("policy test with policy.dir of failing tests = %v, want exit status 2", err)
	}
}

func TestPolicyEval(t *testing.T) {
	dirs := policyFixtures(t)
	input := filepath.Join(t.TempDir(), "call.json")
	if err := os.WriteFile(input, []byte(`{"version": "agenthelm.policy/v1", "tool": {"name": "charge_customer", "upstream": "payments"},
		"arguments": {"amount": 5}, "time": {"unix": 1795000000}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := runCLI("policy", "eval", "--input", input, "--dir", dirs["good"])
	if err != nil || !strings.Contains(out, "verdict:          require_approval") || !strings.Contains(out, "  - look first") ||
		!strings.Contains(out, "approval timeout: 5m0s") {
		t.Errorf("policy eval = %v:\n%s", err, out)
	}
	out, err = runCLI("policy", "eval", "--input", input, "--dir", dirs["good"], "--explain")
	if err != nil || !strings.Contains(out, "evaluation trace:") || !strings.Contains(out, "authz.rego:") {
		t.Errorf("policy eval --explain = %v:\n%s", err, out)
	}
	if _, err := runCLI("policy", "eval", "--dir", dirs["good"]); err == nil || !strings.Contains(err.Error(), `"input" not set`) {
		t.Errorf("policy eval without --input = %v", err)
	}
	if _, err := runCLI("policy", "eval", "--input", input, "--dir", dirs["broken"]); err == nil || !strings.Contains(err.Error(), "rego_parse_error") {
		t.Errorf("policy eval on a broken policy = %v", err)
	}
}

// TestPolicyStatusOffline: with no sidecar, status loads the directory.
func TestPolicyStatusOffline(t *testing.T) {
	dirs := policyFixtures(t)
	out, err := runCLI("policy", "status", "--dir", dirs["good"])
	if err != nil || !regexp.MustCompile(`revision    [0-9a-f]{16}\n`).MatchString(out) || !strings.Contains(out, "files       authz.rego\n") ||
		!strings.Contains(out, "last reload ok") {
		t.Errorf("policy status --dir good = %v:\n%s", err, out)
	}
	if _, err := runCLI("policy", "status", "--dir", dirs["broken"]); err == nil || !strings.Contains(err.Error(), "does not load") || !strings.Contains(err.Error(), "authz.rego:4") {
		t.Errorf("policy status --dir broken = %v", err)
	}
	cfg := filepath.Join(t.TempDir(), "agenthelm.yaml")
	if err := os.WriteFile(cfg, []byte("listen: {admin: 127.0.0.1:1}\npolicy: {dir: "+dirs["good"]+", mode: dry-run}\njournal: {dir: "+t.TempDir()+"}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = runCLI("policy", "status", "--config", cfg)
	if err != nil || !strings.Contains(out, "no sidecar is running") || !strings.Contains(out, "mode        dry-run") {
		t.Errorf("policy status with no sidecar = %v:\n%s", err, out)
	}
}
