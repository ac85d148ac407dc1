package readmetest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// section is the README section whose commands the test runs.
const section = "## Two commands"

// TestReadmeTwoCommands runs what README.md's "Two commands" section says,
// on a clone of HEAD: the first command (the demo) for real, and of the
// second (`make test`) everything but the test run itself, which would run
// this test again: the Makefile must have the target, it must expand to
// `go test` with the race detector over every package, and its other steps
// (installing the npm MCP servers) run and write only into testdata/npm.
func TestReadmeTwoCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("clones the repository and runs the README's commands (a minute or two): skipped with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	// A fresh clone of the committed HEAD: what CI checks out.
	top, err := output(ctx, "..", "git", "rev-parse", "--show-toplevel")
	if err != nil {
		t.Skipf("not in a git checkout, nothing to clone: %v", err)
	}
	head, err := output(ctx, top, "git", "rev-parse", "HEAD")
	if err != nil {
		t.Fatal(err)
	}
	repo := filepath.Join(t.TempDir(), "agenthelm")
	if _, err := output(ctx, top, "git", "clone", "--quiet", "--local", "--no-hardlinks", "--no-checkout", top, repo); err != nil {
		t.Fatal(err)
	}
	if _, err := output(ctx, repo, "git", "checkout", "--quiet", "--detach", head); err != nil {
		t.Fatal(err)
	}
	t.Logf("clone of %s at %.12s in %s", top, head, repo)

	readme, err := os.ReadFile(filepath.Join(repo, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	text, cmds, err := sectionCommands(string(readme), section)
	if err != nil {
		t.Fatalf("README.md: %v", err)
	}
	if len(cmds) != 2 {
		t.Fatalf("README.md %q has %d commands in ```sh blocks, want the two it promises: %q", section, len(cmds), cmds)
	}
	checkClaims(t, repo, text)

	// The first: the demo, as is.
	start := time.Now()
	out, err := shell(ctx, repo, cmds[0])
	t.Logf("%s: %s", cmds[0], time.Since(start).Round(time.Millisecond))
	if err != nil {
		t.Fatalf("README's first command, %s: %v\n%s", cmds[0], err, out)
	}
	if !strings.Contains(out, "undone in reverse order") {
		t.Errorf("README's first command, %s, does not end with the steps undone in reverse order:\n%s", cmds[0], out)
	}

	// The second: make TARGET, dry-run, then its steps but the tests.
	words := strings.Fields(cmds[1])
	if len(words) != 2 || words[0] != "make" {
		t.Fatalf("README's second command is %q, want `make TARGET`", cmds[1])
	}
	target := words[1]
	makefile, err := os.ReadFile(filepath.Join(repo, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(target) + `\s*:`).Match(makefile) {
		t.Fatalf("Makefile has no target %q, which README.md runs", target)
	}
	dry, err := output(ctx, repo, "make", "--no-print-directory", "-n", target)
	if err != nil {
		t.Fatalf("make -n %s: %v", target, err)
	}
	var steps, goTests []string
	for _, line := range strings.Split(dry, "\n") {
		switch {
		case strings.TrimSpace(line) == "":
		case regexp.MustCompile(`(^|\s)go test\s`).MatchString(line):
			goTests = append(goTests, line)
		default:
			steps = append(steps, line)
		}
	}
	if len(goTests) != 1 || !strings.Contains(goTests[0], " -race ") || !strings.HasSuffix(strings.TrimSpace(goTests[0]), "./...") {
		t.Errorf("make -n %s runs %q, want one `go test -race ... ./...` (README: every test, with the race detector)", target, goTests)
	}
	if len(steps) == 0 || !strings.Contains(strings.Join(steps, "\n"), "npm ") {
		t.Errorf("make -n %s installs nothing with npm before the tests (README: it installs the real MCP servers):\n%s", target, dry)
	}
	for _, step := range steps {
		start := time.Now()
		out, err := shell(ctx, repo, step)
		t.Logf("%s: %s", step, time.Since(start).Round(time.Millisecond))
		if err != nil {
			t.Fatalf("make %s, step %q: %v\n%s", target, step, err, out)
		}
	}
	// "into testdata/npm only"
	status, err := output(ctx, repo, "git", "status", "--porcelain", "--ignored", "--untracked-files=all")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(status, "\n") {
		// "XY PATH": two status letters, a space, the path.
		if len(line) > 3 && !strings.HasPrefix(line[3:], "testdata/npm/") {
			t.Errorf("make %s (without its tests) changed %s, outside testdata/npm", target, line)
		}
	}
	if _, err := os.Stat(filepath.Join(repo, "testdata", "npm", "node_modules")); err != nil {
		t.Errorf("make %s installed no testdata/npm/node_modules: %v", target, err)
	}
}

// sectionCommands returns the text of the README section that starts with
// the heading, and the command lines of its ```sh blocks (comments and
// blank lines left out).
func sectionCommands(readme, heading string) (text string, cmds []string, err error) {
	_, rest, ok := strings.Cut(readme, "\n"+heading+"\n")
	if !ok {
		return "", nil, fmt.Errorf("no section %q", heading)
	}
	if i := strings.Index(rest, "\n## "); i >= 0 {
		rest = rest[:i]
	}
	inBlock := false
	for _, line := range strings.Split(rest, "\n") {
		switch {
		case !inBlock && strings.TrimSpace(line) == "```sh":
			inBlock = true
		case inBlock && strings.TrimSpace(line) == "```":
			inBlock = false
		case inBlock && strings.TrimSpace(line) != "" && !strings.HasPrefix(strings.TrimSpace(line), "#"):
			cmds = append(cmds, strings.TrimSpace(line))
		}
	}
	if inBlock {
		return "", nil, fmt.Errorf("section %q: a ```sh block is not closed", heading)
	}
	return rest, cmds, nil
}

// checkClaims checks what the section says around the commands: the Go
// version it names is go.mod's, and CI runs `make check`.
func checkClaims(t *testing.T, repo, text string) {
	t.Helper()
	gomod, err := os.ReadFile(filepath.Join(repo, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	want := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(gomod)
	got := regexp.MustCompile(`With Go (\d+\.\d+)`).FindStringSubmatch(text)
	if want == nil || got == nil || got[1] != string(want[1]) {
		t.Errorf("README.md %q names Go %v, go.mod says %s", section, got, want)
	}
	if strings.Contains(text, "`make check`") {
		ci, err := os.ReadFile(filepath.Join(repo, ".ci", "run"))
		if err != nil || !regexp.MustCompile(`(?m)^\s*make check\b`).Match(ci) {
			t.Errorf("README.md says CI runs `make check`; .ci/run does not (%v)", err)
		}
	}
}

// shell runs a line of the README (or of make -n) with sh in dir, with no
// AGENTHELM_* variables, as a newcomer's fresh shell would, and returns its
// output.
func shell(ctx context.Context, dir, line string) (string, error) {
	cmd := exec.CommandContext(ctx, "sh", "-c", line)
	cmd.Dir = dir
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AGENTHELM_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.WaitDelay = 10 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// output runs a program in dir and returns its trimmed standard output.
func output(ctx context.Context, dir, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	// A parent make (make check) passes its flags down; the README's
	// reader runs make from a shell, so drop them.
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); k != "MAKEFLAGS" && k != "MAKELEVEL" && k != "MFLAGS" {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return strings.TrimSpace(string(out)), nil
}

// TestSectionCommands: the parsing the README test relies on.
func TestSectionCommands(t *testing.T) {
	const readme = "# x\n\n## Two commands\n\nWith Go 1.26:\n\n```sh\ngo run ./cmd/x demo\n```\n\n" +
		"```sh\n# a comment\nmake test\n```\n\n## Next\n\n```sh\nnot this\n```\n"
	text, cmds, err := sectionCommands(readme, section)
	if err != nil || strings.Join(cmds, "|") != "go run ./cmd/x demo|make test" || !strings.Contains(text, "With Go 1.26") || strings.Contains(text, "not this") {
		t.Errorf("sectionCommands = %q, %q, %v", text, cmds, err)
	}
	for name, broken := range map[string]string{
		"no section":     "# x\n\n## Three commands\n",
		"unclosed block": "# x\n\n## Two commands\n\n```sh\nmake test\n",
	} {
		if _, _, err := sectionCommands(broken, section); err == nil {
			t.Errorf("sectionCommands(%s): want an error", name)
		}
	}
}
