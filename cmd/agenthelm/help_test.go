package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

// commands returns every command a user can reach, root first, without
// the ones cobra adds itself (help, completion) or hidden ones.
func commands() []*cobra.Command {
	var all []*cobra.Command
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		all = append(all, c)
		for _, sub := range c.Commands() {
			if !sub.Hidden {
				walk(sub)
			}
		}
	}
	walk(newRootCmd(strings.NewReader(""), &bytes.Buffer{}, &bytes.Buffer{}))
	return all
}

// TestHelpEveryCommand: every command has a one-line description and
// examples that use it, and `--help` shows them.
func TestHelpEveryCommand(t *testing.T) {
	var missing []string
	for _, c := range commands() {
		path := c.CommandPath()
		var lacks []string
		if strings.TrimSpace(c.Short) == "" {
			lacks = append(lacks, "Short")
		}
		if strings.TrimSpace(c.Example) == "" {
			lacks = append(lacks, "Example")
		} else if c.HasParent() && !strings.Contains(c.Example, path) {
			t.Errorf("%s: no example runs %q:\n%s", path, path, c.Example)
		}
		if len(lacks) > 0 {
			missing = append(missing, path+" (no "+strings.Join(lacks, ", no ")+")")
			continue
		}

		// What the user sees.
		var stdout bytes.Buffer
		args := append(strings.Fields(path)[1:], "--help")
		if err := run(context.Background(), args, strings.NewReader(""), &stdout, &bytes.Buffer{}); err != nil {
			t.Errorf("agenthelm %s: %v", strings.Join(args, " "), err)
			continue
		}
		firstExample := strings.TrimSpace(strings.SplitN(c.Example, "\n", 2)[0])
		if out := stdout.String(); !strings.Contains(out, "Examples:") || !strings.Contains(out, firstExample) {
			t.Errorf("agenthelm %s does not show the examples:\n%s", strings.Join(args, " "), out)
		}
	}
	if len(missing) > 0 {
		t.Errorf("commands without help text or examples (set Short and Example on the cobra.Command):\n  %s", strings.Join(missing, "\n  "))
	}
}

// TestCompletionScripts: `agenthelm completion SHELL` prints a script for
// bash, zsh, fish and PowerShell that completes through the binary itself
// (`agenthelm __complete ...`), so it never goes stale; the scripts parse
// in the shells installed here.
func TestCompletionScripts(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
		var stdout, stderr bytes.Buffer
		if err := run(context.Background(), []string{"completion", shell}, strings.NewReader(""), &stdout, &stderr); err != nil {
			t.Errorf("completion %s: %v\n%s", shell, err, stderr.String())
			continue
		}
		script := stdout.String()
		if !strings.Contains(script, "agenthelm") || !strings.Contains(script, "__complete") {
			t.Errorf("completion %s: the script does not complete agenthelm through `agenthelm __complete`:\n%.400s", shell, script)
		}
		check := map[string][]string{"bash": {"bash", "-n"}, "zsh": {"zsh", "-n"}, "fish": {"fish", "--no-execute"}}[shell]
		if check == nil {
			continue
		}
		bin, err := exec.LookPath(check[0])
		if err != nil {
			t.Logf("%s not installed: the %s script's syntax is not checked", shell, shell)
			continue
		}
		f := filepath.Join(t.TempDir(), "agenthelm."+shell)
		if err := os.WriteFile(f, stdout.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(bin, append(check[1:], f)...).CombinedOutput(); err != nil {
			t.Errorf("%s %s: the completion script does not parse: %v\n%s", check[0], strings.Join(check[1:], " "), err, out)
		}
	}
}

// TestCompletionCandidates: what the scripts ask the binary for: every
// subcommand at each level, and flags.
func TestCompletionCandidates(t *testing.T) {
	complete := func(words ...string) []string {
		t.Helper()
		var stdout bytes.Buffer
		if err := run(context.Background(), append([]string{"__complete"}, words...), strings.NewReader(""), &stdout, &bytes.Buffer{}); err != nil {
			t.Fatalf("__complete %q: %v", words, err)
		}
		var got []string
		for _, line := range strings.Split(stdout.String(), "\n") {
			if line != "" && !strings.HasPrefix(line, ":") { // ":4" is the directive
				name, _, _ := strings.Cut(line, "\t")
				got = append(got, name)
			}
		}
		return got
	}
	for _, c := range commands() {
		if !c.HasAvailableSubCommands() {
			continue
		}
		words := append(strings.Fields(c.CommandPath())[1:], "")
		got := complete(words...)
		for _, sub := range c.Commands() {
			if sub.IsAvailableCommand() && !slices.Contains(got, sub.Name()) {
				t.Errorf("agenthelm %s<TAB> offers %v, without %s", strings.Join(words, " "), got, sub.Name())
			}
		}
	}
	if got := complete("demo", "--jo"); !slices.Contains(got, "--journal") {
		t.Errorf("agenthelm demo --jo<TAB> offers %v, want --journal", got)
	}
}

// checkBashCompletion completes command lines in a real bash with the
// bash-completion package, as a user's TAB would, against the built binary
// bin.
func checkBashCompletion(t *testing.T, bin string) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash not installed")
	}
	var lib string
	for _, f := range []string{"/usr/share/bash-completion/bash_completion", "/etc/bash_completion"} {
		if _, err := os.Stat(f); err == nil {
			lib = f
			break
		}
	}
	if lib == "" {
		t.Skip("the bash-completion package is not installed (cobra's bash script needs it)")
	}
	for _, tt := range []struct {
		line string
		want []string
	}{
		{"agenthelm sa", []string{"sagas"}},
		{"agenthelm sagas r", []string{"resolve", "retry", "rollback"}},
		{"agenthelm demo --jo", []string{"--journal"}},
	} {
		script := `source "$1"; source <(agenthelm completion bash)
read -r -a COMP_WORDS <<<"$2"; [[ "$2" == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); COMP_LINE="$2"; COMP_POINT=${#COMP_LINE}
__start_agenthelm agenthelm "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[@]}"`
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		cmd := exec.CommandContext(ctx, bash, "--norc", "--noprofile", "-c", script, "bash", lib, tt.line)
		cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(bin)+string(os.PathListSeparator)+os.Getenv("PATH"))
		out, err := cmd.Output()
		cancel()
		if err != nil {
			t.Errorf("bash completion of %q: %v\n%s", tt.line, err, out)
			continue
		}
		got := strings.Fields(string(out))
		slices.Sort(got)
		if !slices.Equal(got, tt.want) {
			t.Errorf("bash completion of %q = %v, want %v", tt.line, got, tt.want)
		}
	}
}
