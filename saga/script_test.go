package saga

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the expected output in testdata/*.txt")

// TestScripts runs the scenario scripts in testdata. Each script is a list
// of commands that build a saga from events; the commands plan, run and
// state print what the state machine decided, and the lines after ----
// are what they must print. With -update the expectations are rewritten
// (review the diff).
func TestScripts(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.txt")
	if len(files) == 0 {
		t.Fatal("no scripts in testdata")
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) { runScript(t, file) })
	}
}

type scriptEnv struct {
	s   *Saga
	now time.Time
	pol Policy
}

func runScript(t *testing.T, file string) {
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	env := &scriptEnv{s: New("s1"), now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	var out []string // the rewritten file
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		out = append(out, line)
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		got, err := env.do(trimmed)
		if err != nil {
			got = []string{"error: " + err.Error()}
		}
		if i+1 >= len(lines) || lines[i+1] != "----" {
			if len(got) > 0 {
				t.Errorf("%s:%d: %q printed %q but has no ---- block", file, i+1, trimmed, got)
			}
			continue
		}
		// Expected output: after ----, up to a blank line or the end.
		j := i + 2
		var want []string
		for ; j < len(lines) && lines[j] != ""; j++ {
			want = append(want, lines[j])
		}
		if !*update && strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s:%d: %s\n got:\n  %s\nwant:\n  %s", file, i+1, trimmed, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
		}
		out = append(out, "----")
		out = append(out, got...)
		i = j - 1
	}
	if *update {
		if err := os.WriteFile(file, []byte(strings.Join(out, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// do runs one command and returns what it prints.
func (e *scriptEnv) do(line string) ([]string, error) {
	f := strings.Fields(line)
	cmd, args := f[0], f[1:]
	kv := map[string]string{}
	var pos []string
	for _, a := range args {
		if k, v, ok := strings.Cut(a, "="); ok {
			kv[k] = v
		} else {
			pos = append(pos, a)
		}
	}
	has := func(flag string) bool {
		for _, p := range pos {
			if p == flag {
				return true
			}
		}
		return false
	}
	stepN := 0
	if len(pos) > 0 {
		stepN, _ = strconv.Atoi(pos[0])
	}
	ev := Event{Time: e.now, Step: stepN}
	switch cmd {
	case "time":
		d, err := time.ParseDuration(strings.TrimPrefix(pos[0], "+"))
		if err != nil {
			return nil, err
		}
		e.now = e.now.Add(d)
		return nil, nil
	case "policy":
		e.pol.MaxAttempts, _ = strconv.Atoi(kv["max"])
		e.pol.ContinuePastFailure = has("continue")
		return nil, nil
	case "open":
		ev.Kind, ev.Scope = EvOpened, kv["scope"]
	case "intent":
		in := &Intent{Upstream: kv["upstream"], Tool: kv["tool"], ReadOnly: has("read_only"),
			Irreversible: has("irreversible"), ErrorsMayLeaveEffects: has("errors_leave_effects"),
			IdempotencyKey: IdempotencyKey(e.s.ID, stepN, "forward")}
		if c := kv["comp"]; c != "" {
			in.Compensator = &Compensator{Upstream: in.Upstream, Tool: c, Args: ".args", NeedsResult: has("needs_result")}
		}
		ev.Kind, ev.Intent = EvIntent, in
	case "outcome":
		ev.Kind, ev.Status = EvOutcome, pos[1]
	case "commit":
		ev.Kind = EvCommitted
	case "abort":
		ev.Kind, ev.Reason = EvAborted, kv["reason"]
		ev.Step, _ = strconv.Atoi(kv["step"])
	case "comp_started":
		ev.Kind = EvCompStarted
		ev.Attempt, _ = strconv.Atoi(kv["attempt"])
	case "comp_finished":
		ev.Kind = EvCompFinished
		ev.Attempt, _ = strconv.Atoi(kv["attempt"])
		switch pos[1] {
		case "ok":
			ev.OK = true
		case "failed":
			ev.Error = "boom"
			if n := kv["next"]; n != "" {
				d, _ := time.ParseDuration(strings.TrimPrefix(n, "+"))
				ev.NextAttempt = e.now.Add(d)
			}
		default:
			ev.Status = pos[1]
		}
	case "resolve":
		ev.Kind, ev.By = EvResolved, "operator:test"
	case "retry":
		ev.Kind, ev.By = EvRetry, "operator:test"
	case "status":
		ev.Kind, ev.Status = EvStatus, pos[0]
	case "plan":
		return formatActions(e.s.Plan(e.pol, e.now)), nil
	case "state":
		return e.state(), nil
	case "run":
		return e.run(kv), nil
	default:
		return nil, fmt.Errorf("unknown command %q", cmd)
	}
	return nil, e.s.Apply(ev)
}

// run plays the driver: it follows Plan, compensating successfully except
// for the steps listed in fail=, whose attempts fail; waits advance the
// clock. It prints each action and the final status.
func (e *scriptEnv) run(kv map[string]string) []string {
	fail := map[int]bool{}
	for _, s := range strings.Split(kv["fail"], ",") {
		if n, err := strconv.Atoi(s); err == nil {
			fail[n] = true
		}
	}
	var out []string
	for range 100 {
		acts := e.s.Plan(e.pol, e.now)
		if len(acts) == 0 {
			break
		}
		a := acts[0]
		out = append(out, formatActions(acts)...)
		var err error
		switch a.Kind {
		case ActWait:
			e.now = a.At
		case ActCompensate:
			err = e.s.Apply(Event{Kind: EvCompStarted, Time: e.now, Step: a.Step, Attempt: a.Attempt})
			fin := Event{Kind: EvCompFinished, Time: e.now, Step: a.Step, Attempt: a.Attempt, OK: !fail[a.Step]}
			if fail[a.Step] {
				fin.Error, fin.NextAttempt = "boom", e.now.Add(e.pol.Backoff(a.Attempt))
			}
			if err == nil {
				err = e.s.Apply(fin)
			}
		case ActMarkNeedsHuman, ActMarkIrreversible, ActSkip:
			st := map[ActionKind]CompStatus{ActMarkNeedsHuman: CompNeedsHuman, ActMarkIrreversible: CompIrreversible, ActSkip: CompSkipped}[a.Kind]
			err = e.s.Apply(Event{Kind: EvCompFinished, Time: e.now, Step: a.Step, Status: string(st)})
		case ActSetStatus:
			err = e.s.Apply(Event{Kind: EvStatus, Time: e.now, Status: string(a.Status)})
		}
		if err != nil {
			return append(out, "error: "+err.Error())
		}
	}
	return append(out, "=> "+string(e.s.Status))
}

func formatActions(acts []Action) []string {
	if len(acts) == 0 {
		return []string{"(nothing)"}
	}
	var out []string
	for _, a := range acts {
		s := string(a.Kind)
		if a.Step != 0 {
			s += fmt.Sprintf(" step=%d", a.Step)
		}
		if a.Attempt != 0 {
			s += fmt.Sprintf(" attempt=%d", a.Attempt)
		}
		if !a.At.IsZero() {
			s += " at=" + a.At.Format("15:04:05")
		}
		if a.Status != "" {
			s += " status=" + string(a.Status)
		}
		out = append(out, s)
	}
	return out
}

func (e *scriptEnv) state() []string {
	out := []string{fmt.Sprintf("saga %s status=%s", e.s.ID, e.s.Status)}
	for _, st := range e.s.Steps {
		line := fmt.Sprintf("  step %d %s %s", st.N, st.Tool, st.Status)
		if st.Comp.Status != "" {
			line += fmt.Sprintf(" comp=%s attempts=%d", st.Comp.Status, st.Comp.Attempts)
		}
		out = append(out, line)
	}
	return out
}
