package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzParse checks that Parse never panics, that every error it returns
// is a non-empty message on every line, and that what it accepts survives
// a Marshal and Parse round trip unchanged.
func FuzzParse(f *testing.F) {
	example, err := os.ReadFile(filepath.Join("testdata", "agenthelm.example.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		"",
		briefExample,
		string(example),
		"listen: {mcp: 0.0.0.0:7070}\n",
		"upstreams:\n  m:\n    command: [x]\n    tools:\n      t: {compensate: {tool: u, args: '{a: [.b}'}}\n",
		"a: &x {b: 1}\nc: *x\n",
		"upstreams:\n  a: &u {command: [x]}\n  b: {<<: *u, cwd: /}\n",
		"limits: {max_body_bytes: 1.5MiB, call_timeout: 1h}\n",
		"routes:\n  - {upstream: p, method: GET, path: /x, tool: y}\n",
		"saga: {unwind_on: [timeout]}\n---\nlog: {}\n",
		"%YAML 1.2\n---\nlog: !!map {level: debug}\n",
		"approvals: {webhook: {url: '${HOOK}'}}\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, "fuzz.yaml")
		if err != nil {
			if c != nil {
				t.Fatalf("Parse returned a Config with error %v", err)
			}
			msg := err.Error()
			if msg == "" {
				t.Fatal("empty error message")
			}
			for _, line := range strings.Split(msg, "\n") {
				if strings.TrimSpace(line) == "" {
					t.Fatalf("error with an empty line: %q", msg)
				}
			}
			return
		}
		if c == nil {
			t.Fatal("Parse returned neither a Config nor an error")
		}
		out, err := c.Marshal()
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		c2, err := Parse(out, "marshalled.yaml")
		if err != nil {
			t.Fatalf("Parse(Marshal()) = %v\ninput:\n%s\nmarshalled:\n%s", err, data, out)
		}
		if diff := cmp.Diff(c, c2, cmpConfig); diff != "" {
			t.Fatalf("round trip changed the Config (-first +second):\n%s\ninput:\n%s\nmarshalled:\n%s", diff, data, out)
		}
	})
}
