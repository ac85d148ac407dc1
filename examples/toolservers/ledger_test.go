package toolservers_test

import (
	"testing"

	"github.com/agenthelm/agenthelm/examples/toolservers"
	"github.com/google/go-cmp/cmp"
)

// The same idempotency key twice gives the same result and one effect:
// what agenthelm relies on to make forward retries and compensations
// exactly-once.
func TestIdempotencyKeyReplays(t *testing.T) {
	hotelRun, hotel := start(t, "hotel", toolservers.Options{})
	payRun, pay := start(t, "payments", toolservers.Options{})
	emailRun, email := start(t, "email", toolservers.Options{})

	book := map[string]any{"guest": "Ana Lima", "hotel": "Lisboa Centro", "nights": 3}
	var b1, b2 toolservers.Booking
	ok(t, "book_hotel", call(t, hotel, "book_hotel", book, "saga1/step1"), &b1)
	ok(t, "book_hotel", call(t, hotel, "book_hotel", book, "saga1/step1"), &b2)
	if b1 != b2 {
		t.Errorf("book_hotel replay = %+v, want %+v", b2, b1)
	}
	cancel := map[string]any{"booking_id": b1.ID}
	ok(t, "cancel_hotel_booking", call(t, hotel, "cancel_hotel_booking", cancel, "saga1/step1/undo"), &b2)
	ok(t, "cancel_hotel_booking", call(t, hotel, "cancel_hotel_booking", cancel, "saga1/step1/undo"), &b2)
	if got := hotelRun.Server.(*toolservers.Hotel).Bookings(); len(got) != 1 || got[0].Status != toolservers.BookingCancelled {
		t.Errorf("after replays, Bookings() = %+v, want one cancelled booking", got)
	}

	charge := map[string]any{"customer": "cus_ana", "amount": 1840.5, "currency": "EUR"}
	var c1, c2 toolservers.Charge
	ok(t, "charge_customer", call(t, pay, "charge_customer", charge, "saga1/step2"), &c1)
	ok(t, "charge_customer", call(t, pay, "charge_customer", charge, "saga1/step2"), &c2)
	if c1 != c2 {
		t.Errorf("charge_customer replay = %+v, want %+v", c2, c1)
	}
	ok(t, "refund_customer", call(t, pay, "refund_customer", map[string]any{"charge_id": c1.ID}, "saga1/step2/undo"), &c2)
	ok(t, "refund_customer", call(t, pay, "refund_customer", map[string]any{"charge_id": c1.ID}, "saga1/step2/undo"), &c2)
	want := []toolservers.Charge{{ID: "ch_0001", Customer: "cus_ana", Amount: 1840.5, Currency: "EUR", Status: toolservers.ChargeRefunded, RefundID: "re_0001"}}
	if d := cmp.Diff(want, payRun.Server.(*toolservers.Payments).Charges()); d != "" {
		t.Errorf("after replays, Charges() (-want +got):\n%s", d)
	}

	msg := map[string]any{"to": "ana@example.com", "subject": "Receipt", "body": "Thanks."}
	var m1, m2 toolservers.Message
	ok(t, "send_email", call(t, email, "send_email", msg, "saga1/step3"), &m1)
	ok(t, "send_email", call(t, email, "send_email", msg, "saga1/step3"), &m2)
	if m1 != m2 {
		t.Errorf("send_email replay = %+v, want %+v", m2, m1)
	}
	if got := emailRun.Server.(*toolservers.Email).Sent(); len(got) != 1 {
		t.Errorf("after a replay, Sent() = %+v, want one message", got)
	}
}

func TestNoKeyMeansNewEffect(t *testing.T) {
	r, hotel := start(t, "hotel", toolservers.Options{})
	book := map[string]any{"guest": "Ana Lima", "hotel": "Lisboa Centro", "nights": 3}
	var b toolservers.Booking
	ok(t, "book_hotel", call(t, hotel, "book_hotel", book, ""), &b)
	ok(t, "book_hotel", call(t, hotel, "book_hotel", book, ""), &b)
	ok(t, "book_hotel", call(t, hotel, "book_hotel", book, "k1"), &b)
	ok(t, "book_hotel", call(t, hotel, "book_hotel", book, "k2"), &b)
	if got := len(r.Server.(*toolservers.Hotel).Bookings()); got != 4 {
		t.Errorf("4 calls without a key or with distinct keys made %d bookings, want 4", got)
	}
}

func TestIdempotencyKeyReusedForDifferentCall(t *testing.T) {
	r, hotel := start(t, "hotel", toolservers.Options{})
	var b toolservers.Booking
	ok(t, "book_hotel", call(t, hotel, "book_hotel", map[string]any{"guest": "Ana", "hotel": "H", "nights": 3}, "k"), &b)
	toolError(t, "book_hotel", call(t, hotel, "book_hotel", map[string]any{"guest": "Ana", "hotel": "H", "nights": 4}, "k"),
		`idempotency key "k" was already used for a different call`)
	toolError(t, "cancel_hotel_booking", call(t, hotel, "cancel_hotel_booking", map[string]any{"booking_id": b.ID}, "k"),
		"already used for a different call (book_hotel")
	if got := r.Server.(*toolservers.Hotel).Bookings(); len(got) != 1 || got[0].Status != toolservers.BookingConfirmed {
		t.Errorf("Bookings() = %+v, want the one confirmed booking", got)
	}
}

// A tool error has no effect, so it is not remembered: a retry with the
// same key runs again.
func TestFailedCallIsNotRemembered(t *testing.T) {
	r, email := start(t, "email", toolservers.Options{FailSend: true})
	e := r.Server.(*toolservers.Email)
	msg := map[string]any{"to": "ana@example.com", "subject": "Receipt", "body": "Thanks."}
	toolError(t, "send_email", call(t, email, "send_email", msg, "k"), toolservers.ErrMailboxUnavailable)
	e.SetFailSend(false)
	var m toolservers.Message
	ok(t, "send_email", call(t, email, "send_email", msg, "k"), &m)
	ok(t, "send_email", call(t, email, "send_email", msg, "k"), &m)
	if got := len(e.Sent()); got != 1 {
		t.Errorf("Sent() has %d messages, want 1", got)
	}
	if got := e.Attempts(); got != 2 {
		t.Errorf("Attempts() = %d, want 2 (the failure and the first success; the replay does not run)", got)
	}
}
