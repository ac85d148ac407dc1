package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestBuiltBinary builds agenthelm once and uses it as a user would: the
// demo, and shell completion in a real bash.
func TestBuiltBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the agenthelm binary: skipped with -short")
	}
	bin := filepath.Join(t.TempDir(), "agenthelm")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Run("demo", func(t *testing.T) { testDemoBinary(t, bin) })
	t.Run("bash completion", func(t *testing.T) { checkBashCompletion(t, bin) })
}

// testDemoBinary runs `agenthelm demo` in an empty working directory, with
// no AGENTHELM_* variables. The story must end as scripted, nothing may be
// left behind, and with --journal the journal itself, read back by
// `agenthelm sagas`, must show the saga compensated and what each
// compensation got from the tool servers.
func testDemoBinary(t *testing.T, bin string) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// agenthelm runs it in a directory of its own, with a TMPDIR of its own,
	// so that anything left behind shows.
	work, tmp := t.TempDir(), t.TempDir()
	env := []string{"TMPDIR=" + tmp}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AGENTHELM_") && !strings.HasPrefix(kv, "TMPDIR=") {
			env = append(env, kv)
		}
	}
	agenthelm := func(args ...string) (string, error) {
		t.Helper()
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Dir, cmd.Env = work, env
		var stderr strings.Builder
		cmd.Stderr = &stderr
		cmd.WaitDelay = 5 * time.Second
		out, err := cmd.Output()
		if err != nil {
			return string(out), fmt.Errorf("agenthelm %s: %w\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out, stderr.String())
		}
		return string(out), nil
	}

	// The demo as the README runs it.
	out, err := agenthelm("demo", "--no-color")
	if err != nil {
		t.Fatal(err)
	}
	checkDemoStory(t, out)
	for _, dir := range []string{work, tmp} {
		if left, _ := os.ReadDir(dir); len(left) > 0 {
			t.Errorf("demo left %d entries in %s (first %s), want none", len(left), dir, left[0].Name())
		}
	}

	// With --journal the journal stays, for the sagas commands.
	journalDir := filepath.Join(work, "demo-journal")
	out, err = agenthelm("demo", "--no-color", "--journal", journalDir, "--approve-after", "100ms")
	if err != nil {
		t.Fatal(err)
	}
	checkDemoStory(t, out)
	if !strings.Contains(out, journalDir+" (kept)") {
		t.Errorf("demo --journal does not say the journal is kept in %s:\n%s", journalDir, out)
	}
	if _, err := agenthelm("demo", "--journal", journalDir); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("demo --journal on a used journal = %v, want a refusal saying it is not empty", err)
	}

	env = append(env, "AGENTHELM_DATA_DIR="+journalDir)
	out, err = agenthelm("sagas", "list", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var heads []struct {
		Saga, Status string
		Steps        int
	}
	if err := json.Unmarshal([]byte(out), &heads); err != nil {
		t.Fatalf("sagas list --json: %v\n%s", err, out)
	}
	if len(heads) != 1 || heads[0].Status != "compensated" || heads[0].Steps != 3 {
		t.Fatalf("sagas list --json = %+v, want one compensated saga of 3 steps", heads)
	}

	out, err = agenthelm("sagas", "show", heads[0].Saga, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var sg struct {
		Status string `json:"status"`
		Steps  []struct {
			N        int    `json:"n"`
			Upstream string `json:"upstream"`
			Tool     string `json:"tool"`
			Status   string `json:"status"`
			Comp     *struct {
				Status   string `json:"status"`
				Attempts int    `json:"attempts"`
				Result   struct {
					StructuredContent map[string]any `json:"structuredContent"`
				} `json:"result"`
			} `json:"comp"`
		} `json:"steps"`
	}
	if err := json.Unmarshal([]byte(out), &sg); err != nil {
		t.Fatalf("sagas show --json: %v\n%s", err, out)
	}
	// One line per step: the call, its outcome, and its compensation with
	// the state the tool server reported after undoing it.
	var got []string
	for _, s := range sg.Steps {
		line := fmt.Sprintf("%d %s/%s %s", s.N, s.Upstream, s.Tool, s.Status)
		if c := s.Comp; c != nil && c.Status != "" {
			line += fmt.Sprintf(", undo %s after %d attempt(s): %v", c.Status, c.Attempts, c.Result.StructuredContent["status"])
		}
		got = append(got, line)
	}
	want := []string{
		"1 hotel/book_hotel succeeded, undo compensated after 1 attempt(s): cancelled",
		"2 payments/charge_customer succeeded, undo compensated after 1 attempt(s): refunded",
		"3 email/send_email tool_error",
	}
	if sg.Status != "compensated" {
		t.Errorf("sagas show: status %q, want compensated", sg.Status)
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("sagas show %s: steps (-want +got):\n%s\n%s", heads[0].Saga, d, out)
	}
}

// checkDemoStory checks the demo's output for its outcome: the calls, the
// unwinding newest step first, and the tool servers' state afterwards.
func checkDemoStory(t *testing.T, out string) {
	t.Helper()
	pos := 0
	for _, want := range []string{
		"← ok: {\"booking_id\":\"bk_0001\"",
		"approved by the demo's auto-approver",
		"← ok: {\"charge_id\":\"ch_0001\"",
		"← error: mailbox unavailable",
		"compensate  step 2: payments/refund_customer, attempt 1",
		"compensated step 2:",
		"compensate  step 1: hotel/cancel_hotel_booking, attempt 1",
		"compensated step 1:",
		"saga compensated",
		"the tool servers after the run",
		"bk_0001  Ana Lima, Hotel Lisboa Centro, 3 nights: cancelled",
		"ch_0001  EUR 1,840.00 for cus_ana_lima: refunded (re_0001)",
		"email     0 sent, 1 failed",
		"2 steps undone in reverse order",
	} {
		i := strings.Index(out[pos:], want)
		if i < 0 {
			t.Errorf("demo output lacks %q after byte %d:\n%s", want, pos, out)
			return
		}
		pos += i + len(want)
	}
	if strings.Contains(out, "\x1b[") {
		t.Error("demo --no-color printed ANSI escapes")
	}
}
