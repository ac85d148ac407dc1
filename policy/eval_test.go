package policy

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestEvalFile(t *testing.T) {
	in := NewInput(mcpCall("payments", "charge_customer", `{"customer":"cus_1","amount":750}`), compensatable, agent, sagaWith(), now)
	raw, err := json.MarshalIndent(in, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "call.json")
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}

	var out bytes.Buffer
	if err := EvalFile(context.Background(), shipped, path, false, &out); err != nil {
		t.Fatalf("EvalFile: %v", err)
	}
	for _, want := range []string{
		"verdict:          require_approval",
		"payments/charge_customer: a charge of 750 is above 500",
		"approvers:        payments-oncall",
		"approval timeout: 30m0s",
		"rules: payments.large_charge",
		`"require_approval": true`,
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("EvalFile output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "evaluation trace") || strings.Contains(out.String(), "warning") {
		t.Errorf("EvalFile without explain printed a trace or a warning:\n%s", out.String())
	}

	out.Reset()
	if err := EvalFile(context.Background(), shipped, path, true, &out); err != nil {
		t.Fatalf("EvalFile(explain): %v", err)
	}
	for _, want := range []string{"notes (trace() calls):", "evaluation trace:", "payments.rego:", "Enter data.agenthelm.authz.decision"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("EvalFile(explain) output lacks %q", want)
		}
	}
}

func TestEvalFileExplainNotesAndPrint(t *testing.T) {
	dir := policyDir(t, map[string]string{"authz.rego": `package agenthelm.authz

decision := {"allow": true} if {
	trace(sprintf("tool is %s", [input.tool.name]))
	print("agent", input.agent.id)
}
`})
	path := filepath.Join(t.TempDir(), "call.json")
	if err := os.WriteFile(path, []byte(`{"tool": {"name": "read"}, "agent": {"id": "bot"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := EvalFile(context.Background(), dir, path, true, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"warning: input version is <nil>", "verdict:          allow", "Note \"tool is read\"", "authz.rego:5: agent bot"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("EvalFile output lacks %q:\n%s", want, out.String())
		}
	}
}

// An input written by hand has steps but no saga.amounts: EvalFile adds
// them, as agenthelm does, so that the budget sees what the saga spent.
func TestEvalFileAddsAmounts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "call.json")
	call := `{
		"version": "agenthelm.policy/v1",
		"tool": {"name": "create_payment", "upstream": "payments", "has_compensator": true},
		"arguments": {"amount": 300},
		"saga": {"id": "s1", "steps": [
			{"tool": "create_payment", "upstream": "payments", "status": "succeeded", "arguments": {"amount": 500}},
			{"tool": "create_payment", "upstream": "payments", "status": "pending", "arguments": {"amount": "400"}},
			{"tool": "create_payment", "upstream": "payments", "status": "failed", "arguments": {"amount": 5000}}
		]}
	}`
	if err := os.WriteFile(path, []byte(call), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := EvalFile(context.Background(), shipped, path, false, &out); err != nil {
		t.Fatal(err)
	}
	if want := "saga s1 would spend 1200 in total, above 1000"; !strings.Contains(out.String(), want) {
		t.Errorf("EvalFile output lacks %q:\n%s", want, out.String())
	}
}

func TestEvalFileErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"tool":`), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, args := range map[string][2]string{
		"missing input": {shipped, filepath.Join(dir, "missing.json")},
		"invalid input": {shipped, bad},
		"broken policy": {policyDir(t, map[string]string{"authz.rego": "package agenthelm.authz\n\ndecision :=\n"}), bad},
	} {
		if err := EvalFile(context.Background(), args[0], args[1], false, &bytes.Buffer{}); err == nil {
			t.Errorf("EvalFile(%s) succeeded, want an error", name)
		}
	}
}
