package compensators

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/agenthelm/agenthelm/internal/testservers"
)

// TestDocExamples compiles every jq expression in the YAML examples of
// docs/COMPENSATORS.md.
func TestDocExamples(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(testservers.Root(), "docs", "COMPENSATORS.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	var exprs []string
	for _, m := range regexp.MustCompile(`args: '([^']*)'`).FindAllStringSubmatch(doc, -1) {
		exprs = append(exprs, m[1])
	}
	// Block scalars: "args: |" and the lines indented deeper than it.
	lines := strings.Split(doc, "\n")
	for i, l := range lines {
		if !strings.HasSuffix(l, "args: |") {
			continue
		}
		indent := len(l) - len(strings.TrimLeft(l, " "))
		var body []string
		for _, next := range lines[i+1:] {
			if len(next)-len(strings.TrimLeft(next, " ")) <= indent || strings.HasPrefix(next, "```") {
				break
			}
			body = append(body, next)
		}
		exprs = append(exprs, strings.Join(body, "\n"))
	}
	if len(exprs) < 6 {
		t.Fatalf("found %d expressions in the doc, want at least 6", len(exprs))
	}
	for _, e := range exprs {
		if _, err := compileJQ(e); err != nil {
			t.Errorf("docs/COMPENSATORS.md: %q: %v", e, err)
		}
	}
}
