package policy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown"
	"github.com/open-policy-agent/opa/v1/topdown/lineage"
	"github.com/open-policy-agent/opa/v1/topdown/print"
	"github.com/open-policy-agent/opa/v1/util"
)

// EvalFile evaluates the policy directory dir for the input document in the
// JSON file inputPath (an input as documented in docs/POLICY.md, for
// example one copied from the journal) and writes the decision to w in a
// readable form. With explain it also writes the notes of trace() calls
// and OPA's evaluation trace with file:line locations. print() output goes
// to w. The decision is computed exactly as Decide computes it, fail-closed
// rules included; time.now_ns() is the input's time.unix. It returns an
// error only if the policy or the input cannot be loaded.
func EvalFile(ctx context.Context, dir, inputPath string, explain bool, w io.Writer) error {
	snap, err := readDir(dir)
	if err != nil {
		return err
	}
	rev, err := build(ctx, snap, compileOptions{printHook: printWriter{w}})
	if err != nil {
		return fmt.Errorf("load policy %s: %w", dir, err)
	}
	raw, err := os.ReadFile(inputPath)
	if err != nil {
		return fmt.Errorf("read input: %w", err)
	}
	var doc any
	if err := util.UnmarshalJSON(raw, &doc); err != nil {
		return fmt.Errorf("read input %s: %w", inputPath, err)
	}
	val, err := ast.InterfaceToValue(doc)
	if err != nil {
		return fmt.Errorf("read input %s: %w", inputPath, err)
	}
	addAmounts(val)
	if obj, ok := doc.(map[string]any); !ok {
		fmt.Fprintf(w, "warning: the input is not an object\n")
	} else if v := obj["version"]; v != InputVersion {
		fmt.Fprintf(w, "warning: input version is %v, this agenthelm writes %q\n", v, InputVersion)
	}

	var at time.Time
	if obj, ok := doc.(map[string]any); ok {
		if t, ok := obj["time"].(map[string]any); ok {
			if n, ok := t["unix"].(json.Number); ok {
				if s, err := n.Int64(); err == nil && s != 0 {
					at = time.Unix(s, 0)
				}
			}
		}
	}
	var opts []rego.EvalOption
	var buf *topdown.BufferTracer
	if explain {
		// Show every rule evaluated, including those a revision otherwise
		// evaluates once when it is built (see static.go).
		rev.static, rev.tools = nil, nil
		buf = topdown.NewBufferTracer()
		opts = append(opts, rego.EvalQueryTracer(buf))
	}
	d := rev.evalValue(ctx, val, at, time.Now(), opts...)
	writeDecision(w, d)

	if explain {
		notes := lineage.Notes(*buf)
		fmt.Fprintln(w, "\nnotes (trace() calls):")
		if len(notes) == 0 {
			fmt.Fprintln(w, "  (none: call trace(\"...\") in a rule body to add one)")
		} else {
			topdown.PrettyTraceWithLocation(indent(w), notes)
		}
		fmt.Fprintln(w, "\nevaluation trace:")
		topdown.PrettyTraceWithLocation(indent(w), lineage.Full(*buf))
	}
	return nil
}

// addAmounts adds saga.amounts, computed from saga.steps, to an input
// document that has steps but no amounts (one written by hand, say), as
// agenthelm computes them for the inputs it builds.
func addAmounts(input ast.Value) {
	in, ok := input.(ast.Object)
	if !ok {
		return
	}
	saga, ok := valueAt(in, "saga").(ast.Object)
	if !ok || saga.Get(keyTerms["amounts"]) != nil {
		return
	}
	steps, ok := valueAt(saga, "steps").(*ast.Array)
	if !ok {
		return
	}
	summaries := make([]StepSummary, steps.Len())
	amounts := make([][]stepAmount, steps.Len())
	for i := range steps.Len() {
		step, ok := steps.Elem(i).Value.(ast.Object)
		if !ok {
			continue
		}
		str := func(key string) string {
			s, _ := valueAt(step, key).(ast.String)
			return string(s)
		}
		summaries[i] = StepSummary{Tool: str("tool"), Upstream: str("upstream"), Status: str("status")}
		if args := valueAt(step, "arguments"); args != nil {
			amounts[i] = amountsOf(args)
		}
	}
	saga.Insert(keyTerms["amounts"], ast.NewTerm(amountsValue(groupAmounts(summaries, amounts), nil)))
}

// valueAt is the value of obj at key, nil if it has none.
func valueAt(obj ast.Object, key string) ast.Value {
	if t := obj.Get(ast.StringTerm(key)); t != nil {
		return t.Value
	}
	return nil
}

// writeDecision prints a decision for people.
func writeDecision(w io.Writer, d Decision) {
	fmt.Fprintf(w, "verdict:          %s\n", d.Verdict())
	fmt.Fprintf(w, "reasons:\n")
	for _, r := range d.Reasons {
		fmt.Fprintf(w, "  - %s\n", r)
	}
	if len(d.Approvers) > 0 {
		fmt.Fprintf(w, "approvers:        %s\n", strings.Join(d.Approvers, ", "))
	}
	if d.ApprovalTimeout > 0 {
		fmt.Fprintf(w, "approval timeout: %s\n", d.ApprovalTimeout)
	}
	if len(d.Labels) > 0 {
		fmt.Fprintf(w, "labels:\n")
		keys := make([]string, 0, len(d.Labels))
		for k := range d.Labels {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			fmt.Fprintf(w, "  %s: %s\n", k, d.Labels[k])
		}
	}
	if d.Err != nil {
		fmt.Fprintf(w, "error:            %v\n", d.Err)
	}
	fmt.Fprintf(w, "revision:         %s\n", d.Revision)
	fmt.Fprintf(w, "duration:         %s\n", d.Duration)
	if d.Raw != nil {
		var pretty bytes.Buffer
		if json.Indent(&pretty, d.Raw, "", "  ") == nil {
			fmt.Fprintf(w, "decision object:\n%s\n", pretty.String())
		}
	}
}

// indent prefixes every line written through it with two spaces.
func indent(w io.Writer) io.Writer { return &indentWriter{w: w, bol: true} }

type indentWriter struct {
	w   io.Writer
	bol bool
}

func (iw *indentWriter) Write(p []byte) (int, error) {
	var out []byte
	for _, c := range p {
		if iw.bol {
			out = append(out, ' ', ' ')
		}
		out = append(out, c)
		iw.bol = c == '\n'
	}
	if _, err := iw.w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// printWriter sends print() output to a writer, with its location.
type printWriter struct{ w io.Writer }

func (p printWriter) Print(pctx print.Context, msg string) error {
	if pctx.Location != nil {
		_, err := fmt.Fprintf(p.w, "print %s:%d: %s\n", pctx.Location.File, pctx.Location.Row, msg)
		return err
	}
	_, err := fmt.Fprintf(p.w, "print: %s\n", msg)
	return err
}
