package traces

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/agenthelm/agenthelm/journal"
	"github.com/agenthelm/agenthelm/saga"
)

// refundStory is the demo's saga as events: a hotel booking and a payment
// succeed, the receipt email fails, the saga unwinds, and the refund
// succeeds on its second attempt.
func refundStory(t0 time.Time) []saga.Event {
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	raw := func(s string) json.RawMessage { return json.RawMessage(s) }
	return []saga.Event{
		{Kind: saga.EvOpened, Time: at(0), Scope: "agent"},
		{Kind: saga.EvNote, Time: at(1), Step: 1, Note: raw(`{"type":"decision","id":"d1","verdict":"allow","duration_us":41}`)},
		{Kind: saga.EvIntent, Time: at(1), Step: 1, Intent: &saga.Intent{Upstream: "hotel", Tool: "book_hotel",
			Args: raw(`{"guest":"Ada","nights":2}`), IdempotencyKey: "ah-1",
			Compensator: &saga.Compensator{Tool: "cancel_hotel_booking", Args: "{booking_id: .result.structuredContent.booking_id}", NeedsResult: true}}},
		{Kind: saga.EvOutcome, Time: at(4), Step: 1, Status: string(saga.Succeeded), Result: raw(`{"structuredContent":{"booking_id":"bk_0001"}}`)},
		{Kind: saga.EvNote, Time: at(5), Step: 2, Note: raw(`{"type":"decision","id":"d2","verdict":"require_approval","reasons":["charges need a person"]}`)},
		{Kind: saga.EvNote, Time: at(5), Step: 2, Note: raw(`{"type":"approval_requested","id":"ap-1","request":{"id":"ap-1","expires":"2026-11-27T08:30:00Z"}}`)},
		{Kind: saga.EvNote, Time: at(9), Step: 2, Note: raw(`{"type":"approval_decided","id":"ap-1","decision":{"approved":true,"by":"alice","at":"2026-11-27T08:15:00.009Z"}}`)},
		{Kind: saga.EvIntent, Time: at(10), Step: 2, Intent: &saga.Intent{Upstream: "payments", Tool: "charge_customer",
			Args: raw(`{"amount":120}`), IdempotencyKey: "ah-2",
			Compensator: &saga.Compensator{Tool: "refund_customer", Args: "{charge_id: .result.structuredContent.charge_id}"}}},
		{Kind: saga.EvOutcome, Time: at(12), Step: 2, Status: string(saga.Succeeded), Result: raw(`{"structuredContent":{"charge_id":"ch_0001"}}`)},
		{Kind: saga.EvNote, Time: at(19), Step: 3, Note: raw(`{"type":"decision","id":"d3","verdict":"allow","dry_run":true}`)},
		{Kind: saga.EvIntent, Time: at(20), Step: 3, Intent: &saga.Intent{Upstream: "email", Tool: "send_email",
			Args: raw(`{"to":"ada@bounce.example"}`), IdempotencyKey: "ah-3", Irreversible: true}},
		{Kind: saga.EvOutcome, Time: at(23), Step: 3, Status: string(saga.ToolError),
			Result: raw(`{"content":[{"type":"text","text":"mailbox unavailable"}],"isError":true}`)},
		{Kind: saga.EvAborted, Time: at(24), Step: 3, Reason: "step 3 email/send_email failed: tool_error", By: "engine"},
		{Kind: saga.EvCompStarted, Time: at(25), Step: 2, Attempt: 1},
		{Kind: saga.EvCompFinished, Time: at(27), Step: 2, Attempt: 1, Error: "payments down", NextAttempt: at(1027)},
		{Kind: saga.EvCompStarted, Time: at(1030), Step: 2, Attempt: 2},
		{Kind: saga.EvCompFinished, Time: at(1033), Step: 2, Attempt: 2, OK: true, Result: raw(`{"structuredContent":{"refund_id":"rf_0001"}}`)},
		{Kind: saga.EvCompStarted, Time: at(1040), Step: 1, Attempt: 1},
		{Kind: saga.EvCompFinished, Time: at(1042), Step: 1, Attempt: 1, OK: true},
		{Kind: saga.EvStatus, Time: at(1043), Status: string(saga.Compensated)},
	}
}

// committedStory is a saga of one read-only call that committed.
func committedStory(t0 time.Time) []saga.Event {
	return []saga.Event{
		{Kind: saga.EvOpened, Time: t0, Scope: "agent"},
		{Kind: saga.EvIntent, Time: t0.Add(time.Millisecond), Step: 1, Intent: &saga.Intent{Upstream: "hotel", Tool: "list_bookings", ReadOnly: true}},
		{Kind: saga.EvOutcome, Time: t0.Add(3 * time.Millisecond), Step: 1, Status: string(saga.Succeeded), Result: json.RawMessage(`{}`)},
		{Kind: saga.EvCommitted, Time: t0.Add(time.Second)},
	}
}

// appendSaga journals a saga's events with the head the engine would
// write.
func appendSaga(t *testing.T, j *journal.Journal, id string, evs []saga.Event) {
	t.Helper()
	s := saga.New(id)
	batch := journal.Batch{Saga: id}
	for _, ev := range evs {
		if err := s.Apply(ev); err != nil {
			t.Fatal(err)
		}
		body, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		batch.Events = append(batch.Events, journal.Event{Kind: string(ev.Kind), Time: ev.Time, Body: body})
	}
	h := journal.Head{Saga: id, Status: string(s.Status), Scope: s.Scope, Created: s.Created, Updated: s.Updated,
		Steps: len(s.Steps), Terminal: s.Status.Terminal()}
	for _, st := range s.Steps {
		h.Tools = append(h.Tools, st.Tool)
		h.Upstreams = append(h.Upstreams, st.Upstream)
	}
	batch.Head = &h
	if _, err := j.Append(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
}

func openJournal(t *testing.T) *journal.Journal {
	t.Helper()
	ctx := context.Background()
	j, err := journal.Open(ctx, journal.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = j.Close(ctx) })
	return j
}

func ms(f float64) *float64 { return &f }
