package traces

import (
	"testing"
	"time"

	"github.com/agenthelm/agenthelm/saga"
	"github.com/google/go-cmp/cmp"
)

// row is the part of a record the table tests compare.
type row struct {
	ID, Kind, Upstream, Tool, Status, Outcome, Error, CompTool, CompStatus string
	Attempts                                                               int
	Started, Finished                                                      time.Time
	DurationMS                                                             *float64
}

func rows(recs []Record) []row {
	var out []row
	for _, r := range recs {
		out = append(out, row{r.ID, r.Kind, r.Upstream, r.ToolName, r.Status, r.Outcome, r.Error, r.CompTool, r.CompStatus,
			r.CompAttempts, r.Started, r.Finished, r.DurationMS})
	}
	return out
}

func TestFold(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 8, 15, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	h, err := Fold("s1", refundStory(t0))
	if err != nil {
		t.Fatal(err)
	}
	want := []row{
		{"s1#1", KindCall, "hotel", "book_hotel", StatusSuccess, "succeeded", "", "cancel_hotel_booking", "compensated", 1, at(1), at(4), ms(3)},
		{"s1#1.undo", KindCompensation, "hotel", "cancel_hotel_booking", StatusSuccess, "compensated", "", "cancel_hotel_booking", "compensated", 1, at(1040), at(1042), ms(2)},
		{"s1#2", KindCall, "payments", "charge_customer", StatusSuccess, "succeeded", "", "refund_customer", "compensated", 2, at(10), at(12), ms(2)},
		{"s1#2.undo", KindCompensation, "payments", "refund_customer", StatusSuccess, "compensated", "", "refund_customer", "compensated", 2, at(25), at(1033), ms(1008)},
		{"s1#3", KindCall, "email", "send_email", StatusFailed, "tool_error", "mailbox unavailable", "", "", 0, at(20), at(23), ms(3)},
	}
	if d := cmp.Diff(want, rows(h.Records)); d != "" {
		t.Errorf("Fold(refund story) records (-want +got):\n%s", d)
	}
	for _, r := range h.Records {
		if r.SagaStatus != "compensated" {
			t.Errorf("%s: saga_status = %q, want compensated", r.ID, r.SagaStatus)
		}
	}
	if got := string(h.Records[0].Arguments); got != `{"guest":"Ada","nights":2}` {
		t.Errorf("arguments of step 1 = %s", got)
	}
	var gate [][3]string
	for _, r := range h.Records {
		gate = append(gate, [3]string{r.Decision, r.Approval, r.Approver})
	}
	wantGate := [][3]string{{"allow", "", ""}, {}, {"require_approval", "approved", "alice"}, {}, {"allow", "", ""}}
	if d := cmp.Diff(wantGate, gate); d != "" {
		t.Errorf("Fold(refund story) decisions and approvals (-want +got):\n%s", d)
	}
	wantAttempts := []Attempt{{N: 1, Started: at(25), Finished: at(27), Error: "payments down"}, {N: 2, Started: at(1030), Finished: at(1033), OK: true}}
	if d := cmp.Diff(wantAttempts, h.Attempts(2)); d != "" {
		t.Errorf("Attempts(2) (-want +got):\n%s", d)
	}
	if got := h.Attempts(3); len(got) != 0 {
		t.Errorf("Attempts(3) = %v, want none", got)
	}
}

// TestFromSagaStatuses maps every step outcome to its record status.
func TestFromSagaStatuses(t *testing.T) {
	for _, tc := range []struct {
		outcome saga.StepStatus
		want    string
	}{
		{saga.Succeeded, StatusSuccess},
		{saga.ToolError, StatusFailed},
		{saga.ProtocolError, StatusFailed},
		{saga.HTTPStatus, StatusFailed},
		{saga.Timeout, StatusFailed},
		{saga.InDoubt, StatusFailed},
		{saga.NotSent, StatusFailed},
		{saga.Cancelled, StatusFailed},
		{saga.Denied, StatusDenied},
		{saga.InFlight, StatusRunning},
		{"from_the_future", "from_the_future"},
	} {
		s := &saga.Saga{ID: "s", Status: saga.Open, Steps: []*saga.Step{{N: 1, Intent: saga.Intent{Tool: "t"}, Status: tc.outcome}}}
		recs := FromSaga(s)
		if len(recs) != 1 || recs[0].Status != tc.want || recs[0].Outcome != string(tc.outcome) {
			t.Errorf("FromSaga(step %s) = %+v, want one record with status %s", tc.outcome, recs, tc.want)
		}
		if recs[0].DurationMS != nil {
			t.Errorf("FromSaga(step %s): duration %v for a step with no times", tc.outcome, *recs[0].DurationMS)
		}
	}
}

// TestFromSagaCompensations: a compensation row exists only for a
// compensation that was tried.
func TestFromSagaCompensations(t *testing.T) {
	comp := &saga.Compensator{Tool: "undo", Upstream: "other"}
	for _, tc := range []struct {
		name     string
		comp     saga.Comp
		wantRows int
		want     string
	}{
		{"not unwound", saga.Comp{}, 1, ""},
		{"irreversible", saga.Comp{Status: saga.CompIrreversible}, 1, ""},
		{"needs human, never tried", saga.Comp{Status: saga.CompNeedsHuman}, 1, ""},
		{"running", saga.Comp{Status: saga.CompRunning, Attempts: 1}, 2, StatusRunning},
		{"failed, will retry", saga.Comp{Status: saga.CompFailed, Attempts: 3, LastError: "down"}, 2, StatusFailed},
		{"skipped after failures", saga.Comp{Status: saga.CompSkipped, Attempts: 8}, 2, StatusFailed},
		{"compensated", saga.Comp{Status: saga.CompDone, Attempts: 1}, 2, StatusSuccess},
	} {
		s := &saga.Saga{ID: "s", Status: saga.Aborting, Steps: []*saga.Step{{N: 1, Intent: saga.Intent{Upstream: "up", Tool: "t", Compensator: comp}, Status: saga.Succeeded, Comp: tc.comp}}}
		recs := FromSaga(s)
		if len(recs) != tc.wantRows {
			t.Errorf("FromSaga(%s) = %d records, want %d", tc.name, len(recs), tc.wantRows)
			continue
		}
		if recs[0].CompStatus != string(tc.comp.Status) || recs[0].CompTool != "undo" {
			t.Errorf("FromSaga(%s) call row compensation = %q %q", tc.name, recs[0].CompTool, recs[0].CompStatus)
		}
		if tc.wantRows == 2 {
			c := recs[1]
			if c.Status != tc.want || c.ToolName != "undo" || c.Upstream != "other" || c.Kind != KindCompensation || c.Error != tc.comp.LastError {
				t.Errorf("FromSaga(%s) compensation row = %+v, want status %s on other/undo", tc.name, c, tc.want)
			}
		}
	}
}

func TestParseID(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		step     int
		ok       bool
	}{
		{"s-1#2", "s-1", 2, true},
		{"s-1#12.undo", "s-1", 12, true},
		{"a#b#3", "a#b", 3, true},
		{"s-1", "s-1", 0, false},
		{"a#b", "a#b", 0, false},
		{"a#0", "a#0", 0, false},
		{"#3", "#3", 0, false},
	} {
		got, step, ok := ParseID(tc.in)
		if got != tc.want || step != tc.step || ok != tc.ok {
			t.Errorf("ParseID(%q) = %q, %d, %v; want %q, %d, %v", tc.in, got, step, ok, tc.want, tc.step, tc.ok)
		}
	}
}

// TestFoldRetry: after an operator's retry, a compensation record covers
// the new attempts only; a compensation that had succeeded keeps its times.
func TestFoldRetry(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	comp := &saga.Compensator{Tool: "undo"}
	evs := []saga.Event{
		{Kind: saga.EvOpened, Time: at(0)},
		{Kind: saga.EvIntent, Time: at(1), Step: 1, Intent: &saga.Intent{Upstream: "u", Tool: "a", Compensator: comp}},
		{Kind: saga.EvOutcome, Time: at(2), Step: 1, Status: "succeeded"},
		{Kind: saga.EvIntent, Time: at(3), Step: 2, Intent: &saga.Intent{Upstream: "u", Tool: "b", Compensator: comp}},
		{Kind: saga.EvOutcome, Time: at(4), Step: 2, Status: "succeeded"},
		{Kind: saga.EvAborted, Time: at(5), Reason: "operator"},
		{Kind: saga.EvCompStarted, Time: at(6), Step: 2, Attempt: 1},
		{Kind: saga.EvCompFinished, Time: at(7), Step: 2, Attempt: 1, OK: true},
		{Kind: saga.EvCompStarted, Time: at(8), Step: 1, Attempt: 1},
		{Kind: saga.EvCompFinished, Time: at(9), Step: 1, Attempt: 1, Error: "down"},
		{Kind: saga.EvStatus, Time: at(10), Status: "stuck"},
		{Kind: saga.EvRetry, Time: at(100), By: "operator:bob"},
		{Kind: saga.EvCompStarted, Time: at(101), Step: 1, Attempt: 1},
		{Kind: saga.EvCompFinished, Time: at(103), Step: 1, Attempt: 1, OK: true},
		{Kind: saga.EvStatus, Time: at(104), Status: "compensated"},
	}
	h, err := Fold("s", evs)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][2]time.Time{}
	for _, r := range h.Records {
		if r.Kind == KindCompensation {
			got[r.ID] = [2]time.Time{r.Started, r.Finished}
		}
	}
	want := map[string][2]time.Time{"s#1.undo": {at(101), at(103)}, "s#2.undo": {at(6), at(7)}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("compensation times after a retry (-want +got):\n%s", d)
	}
	if n := len(h.Attempts(1)); n != 2 {
		t.Errorf("Attempts(1) = %d attempts, want 2 (one before the retry, one after)", n)
	}
}

func TestNoteOutcome(t *testing.T) {
	for raw, want := range map[string]string{
		`{"type":"approval_decided","decision":{"approved":true,"by":"a"}}`:  ApprovalApproved,
		`{"type":"approval_decided","decision":{"approved":false,"by":"a"}}`: ApprovalRejected,
		`{"type":"approval_decided","decision":{"expired":true}}`:            ApprovalExpired,
	} {
		n, ok := ParseNote([]byte(raw))
		if !ok || n.Type != NoteApprovalDecided || n.Outcome() != want {
			t.Errorf("ParseNote(%s).Outcome() = %q (%v), want %q", raw, n.Outcome(), ok, want)
		}
	}
	if n, ok := ParseNote([]byte(`"text"`)); ok || n.Type != "" {
		t.Errorf("ParseNote(a string) = %+v, %v", n, ok)
	}
	if n, _ := ParseNote([]byte(`{"type":"approval_decided"}`)); n.Type != "" {
		t.Errorf("ParseNote(approval_decided without a decision) kept its type %q", n.Type)
	}
}
