//go:build opacli

package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestOPACLI builds OPA's own CLI from the OPA module version in go.mod
// and runs `opa test` on the shipped policies: they are standard Rego, not
// a dialect only agenthelm reads. On the shipped policies and on small
// passing, failing and broken directories, `agenthelm policy test` agrees
// with it: the same count of passing tests and the same exit status.
//
// It needs the Go module proxy (OPA's CLI has dependencies agenthelm does
// not), so it runs behind the opacli build tag: make opa-test.
func TestOPACLI(t *testing.T) {
	opa := buildOPA(t)
	dirs := policyFixtures(t)
	dirs["shipped"] = filepath.Join("..", "..", "policies")
	pass := regexp.MustCompile(`(?m)^PASS: (\d+)/(\d+)$`)
	for _, name := range []string{"shipped", "good", "failing", "broken"} {
		dir := dirs[name]
		cmd := exec.Command(opa, "test", dir)
		out, err := cmd.CombinedOutput()
		opaCode := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			opaCode = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("opa test %s: %v", dir, err)
		}
		t.Logf("opa test %s: exit status %d\n%s", dir, opaCode, out)

		ours, err := runCLI("policy", "test", dir)
		code := 0
		if err != nil {
			code = 1
			if c, ok := exitCode(err); ok {
				code = c
			}
		}
		if code != opaCode {
			t.Errorf("%s: agenthelm policy test exits with %d, opa test with %d\n%s", name, code, opaCode, ours)
		}
		if name == "shipped" && opaCode != 0 {
			t.Errorf("opa test fails on the shipped policies:\n%s", out)
		}
		if m, o := pass.FindStringSubmatch(ours), pass.FindStringSubmatch(string(out)); (m == nil) != (o == nil) || m != nil && m[0] != o[0] {
			t.Errorf("%s: agenthelm reports %q, opa %q", name, m, o)
		}
	}
}

// buildOPA installs the opa command of the OPA module version that go.mod
// requires into a temporary directory. `go install pkg@version` builds it
// with OPA's own go.mod, so agenthelm's go.mod and go.sum are not touched.
func buildOPA(t *testing.T) string {
	t.Helper()
	v, err := exec.Command("go", "list", "-m", "-f", "{{.Version}}", "github.com/open-policy-agent/opa").Output()
	if err != nil {
		t.Fatalf("go list -m github.com/open-policy-agent/opa: %v", err)
	}
	bin := t.TempDir()
	cmd := exec.Command("go", "install", "github.com/open-policy-agent/opa@"+strings.TrimSpace(string(v)))
	cmd.Env = append(os.Environ(), "GOBIN="+bin)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build opa %s: %v\n%s", v, err, out)
	}
	return filepath.Join(bin, "opa")
}
