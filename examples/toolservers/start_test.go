package toolservers_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/agenthelm/agenthelm/examples/toolservers"
	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// start serves the example server called name and connects the official
// go-sdk client to it. Both end with the test.
func start(t *testing.T, name string, opts toolservers.Options) (*toolservers.Running, *mcp.ClientSession) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := toolservers.Start(ctx, name, opts)
	if err != nil {
		t.Fatalf("Start(%q): %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := r.Close(ctx); err != nil {
			t.Errorf("Close(%q): %v", name, err)
		}
	})
	client := mcp.NewClient(&mcp.Implementation{Name: "toolservers-test", Version: "0"}, nil)
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: r.URL()}, nil)
	if err != nil {
		t.Fatalf("connect to %s at %s: %v", name, r.URL(), err)
	}
	t.Cleanup(func() { _ = cs.Close() })
	return r, cs
}

// call calls a tool and fails the test on a protocol error (not on a tool
// error: isError results are returned).
func call(t *testing.T, cs *mcp.ClientSession, tool string, args map[string]any, key string) *mcp.CallToolResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p := &mcp.CallToolParams{Name: tool, Arguments: args}
	if key != "" {
		p.Meta = mcp.Meta{toolservers.IdempotencyKeyMeta: key}
	}
	res, err := cs.CallTool(ctx, p)
	if err != nil {
		t.Fatalf("CallTool(%s %v): %v", tool, args, err)
	}
	return res
}

// text returns a result's first text content.
func text(t *testing.T, res *mcp.CallToolResult) string {
	t.Helper()
	if len(res.Content) == 0 {
		t.Fatalf("result has no content: %+v", res)
	}
	tc, ok := res.Content[0].(*mcp.TextContent)
	if !ok {
		t.Fatalf("result content is %T, want text", res.Content[0])
	}
	return tc.Text
}

// ok checks that res is a success whose structuredContent and JSON text
// agree, and decodes it into v.
func ok(t *testing.T, tool string, res *mcp.CallToolResult, v any) {
	t.Helper()
	if res.IsError {
		t.Fatalf("%s: isError result: %s", tool, text(t, res))
	}
	sc, err := json.Marshal(res.StructuredContent)
	if err != nil {
		t.Fatal(err)
	}
	var fromText, fromStructured any
	if err := json.Unmarshal([]byte(text(t, res)), &fromText); err != nil {
		t.Fatalf("%s: text content is not JSON: %v", tool, err)
	}
	_ = json.Unmarshal(sc, &fromStructured)
	if d := cmp.Diff(fromStructured, fromText); d != "" {
		t.Errorf("%s: structuredContent and text differ (-structured +text):\n%s", tool, d)
	}
	if err := json.Unmarshal(sc, v); err != nil {
		t.Fatalf("%s: decode structuredContent %s: %v", tool, sc, err)
	}
}

// toolError checks that res is an isError result containing want.
func toolError(t *testing.T, tool string, res *mcp.CallToolResult, want string) {
	t.Helper()
	if !res.IsError {
		t.Fatalf("%s: got success %s, want an error result containing %q", tool, text(t, res), want)
	}
	if got := text(t, res); !strings.Contains(got, want) {
		t.Errorf("%s: error %q, want it to contain %q", tool, got, want)
	}
}

func TestToolsAndAnnotations(t *testing.T) {
	type hints struct {
		ReadOnly, Destructive, Idempotent, OpenWorld bool
	}
	want := map[string]map[string]hints{
		"hotel": {
			"book_hotel":           {},
			"cancel_hotel_booking": {Destructive: true, Idempotent: true},
			"list_bookings":        {ReadOnly: true, Idempotent: true},
		},
		"payments": {
			"charge_customer": {},
			"refund_customer": {Destructive: true, Idempotent: true},
			"list_charges":    {ReadOnly: true, Idempotent: true},
		},
		"email": {
			"send_email": {OpenWorld: true},
		},
	}
	for _, name := range toolservers.Names {
		t.Run(name, func(t *testing.T) {
			_, cs := start(t, name, toolservers.Options{})
			res, err := cs.ListTools(context.Background(), nil)
			if err != nil {
				t.Fatalf("ListTools: %v", err)
			}
			got := map[string]hints{}
			for _, tool := range res.Tools {
				a := tool.Annotations
				if a == nil || a.DestructiveHint == nil || a.OpenWorldHint == nil {
					t.Errorf("%s: annotations incomplete: %+v", tool.Name, a)
					continue
				}
				got[tool.Name] = hints{a.ReadOnlyHint, *a.DestructiveHint, a.IdempotentHint, *a.OpenWorldHint}
				if tool.OutputSchema == nil {
					t.Errorf("%s: no output schema", tool.Name)
				}
			}
			if d := cmp.Diff(want[name], got); d != "" {
				t.Errorf("tools/list of %s (-want +got):\n%s", name, d)
			}
		})
	}
}

func TestHotelBookCancelList(t *testing.T) {
	r, cs := start(t, "hotel", toolservers.Options{})
	hotel := r.Server.(*toolservers.Hotel)

	var b toolservers.Booking
	ok(t, "book_hotel", call(t, cs, "book_hotel", map[string]any{"guest": "Ana Lima", "hotel": "Lisboa Centro", "nights": 3}, ""), &b)
	want := toolservers.Booking{ID: "bk_0001", Guest: "Ana Lima", Hotel: "Lisboa Centro", Nights: 3, Status: toolservers.BookingConfirmed}
	if b != want {
		t.Errorf("book_hotel = %+v, want %+v", b, want)
	}

	var c toolservers.Booking
	ok(t, "cancel_hotel_booking", call(t, cs, "cancel_hotel_booking", map[string]any{"booking_id": b.ID}, ""), &c)
	want.Status = toolservers.BookingCancelled
	if c != want {
		t.Errorf("cancel_hotel_booking = %+v, want %+v", c, want)
	}
	// Cancelling again is harmless: the compensation may be retried.
	ok(t, "cancel_hotel_booking", call(t, cs, "cancel_hotel_booking", map[string]any{"booking_id": b.ID}, ""), &c)
	if c != want {
		t.Errorf("second cancel_hotel_booking = %+v, want %+v", c, want)
	}
	toolError(t, "cancel_hotel_booking", call(t, cs, "cancel_hotel_booking", map[string]any{"booking_id": "bk_9999"}, ""), `no booking "bk_9999"`)

	var list struct{ Bookings []toolservers.Booking }
	ok(t, "list_bookings", call(t, cs, "list_bookings", nil, ""), &list)
	if d := cmp.Diff([]toolservers.Booking{want}, list.Bookings); d != "" {
		t.Errorf("list_bookings (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]toolservers.Booking{want}, hotel.Bookings()); d != "" {
		t.Errorf("Bookings() (-want +got):\n%s", d)
	}
}

func TestPaymentsChargeRefundList(t *testing.T) {
	r, cs := start(t, "payments", toolservers.Options{})
	payments := r.Server.(*toolservers.Payments)

	var ch toolservers.Charge
	ok(t, "charge_customer", call(t, cs, "charge_customer", map[string]any{"customer": "cus_ana", "amount": 1840.5, "currency": "eur"}, ""), &ch)
	want := toolservers.Charge{ID: "ch_0001", Customer: "cus_ana", Amount: 1840.5, Currency: "EUR", Status: toolservers.ChargeCaptured}
	if ch != want {
		t.Errorf("charge_customer = %+v, want %+v", ch, want)
	}

	var re toolservers.Charge
	ok(t, "refund_customer", call(t, cs, "refund_customer", map[string]any{"charge_id": ch.ID}, ""), &re)
	want.Status, want.RefundID = toolservers.ChargeRefunded, "re_0001"
	if re != want {
		t.Errorf("refund_customer = %+v, want %+v", re, want)
	}
	ok(t, "refund_customer", call(t, cs, "refund_customer", map[string]any{"charge_id": ch.ID}, ""), &re)
	if re != want {
		t.Errorf("second refund_customer = %+v, want %+v (one refund only)", re, want)
	}
	toolError(t, "refund_customer", call(t, cs, "refund_customer", map[string]any{"charge_id": "ch_9999"}, ""), `no charge "ch_9999"`)

	var list struct{ Charges []toolservers.Charge }
	ok(t, "list_charges", call(t, cs, "list_charges", nil, ""), &list)
	if d := cmp.Diff([]toolservers.Charge{want}, list.Charges); d != "" {
		t.Errorf("list_charges (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]toolservers.Charge{want}, payments.Charges()); d != "" {
		t.Errorf("Charges() (-want +got):\n%s", d)
	}
}

func TestEmptyLists(t *testing.T) {
	for server, tool := range map[string]string{"hotel": "list_bookings", "payments": "list_charges"} {
		_, cs := start(t, server, toolservers.Options{})
		res := call(t, cs, tool, nil, "")
		if got := text(t, res); strings.Contains(got, "null") {
			t.Errorf("%s with nothing in it = %s, want an empty list", tool, got)
		}
	}
}

func TestEmailSendAndFailure(t *testing.T) {
	r, cs := start(t, "email", toolservers.Options{})
	email := r.Server.(*toolservers.Email)
	msg := func(to string) map[string]any {
		return map[string]any{"to": to, "subject": "Your booking", "body": "See you soon."}
	}

	var m toolservers.Message
	ok(t, "send_email", call(t, cs, "send_email", msg("ana@example.com"), ""), &m)
	if m.ID != "msg_0001" || m.To != "ana@example.com" || m.Status != "sent" {
		t.Errorf("send_email = %+v", m)
	}
	toolError(t, "send_email", call(t, cs, "send_email", msg("ana@bounce.example"), ""), "mailbox unavailable: ana@bounce.example")
	toolError(t, "send_email", call(t, cs, "send_email", msg("ANA@Bounce.Example"), ""), toolservers.ErrMailboxUnavailable)
	email.SetFailSend(true)
	toolError(t, "send_email", call(t, cs, "send_email", msg("bob@example.com"), ""), toolservers.ErrMailboxUnavailable)
	email.SetFailSend(false)

	if got := len(email.Sent()); got != 1 {
		t.Errorf("Sent() has %d messages, want 1 (failed sends are not delivered)", got)
	}
	if got := email.Attempts(); got != 4 {
		t.Errorf("Attempts() = %d, want 4", got)
	}
}

func TestEmailFailSendOption(t *testing.T) {
	r, cs := start(t, "email", toolservers.Options{FailSend: true})
	toolError(t, "send_email", call(t, cs, "send_email", map[string]any{"to": "ana@example.com", "subject": "s", "body": "b"}, ""), "mailbox unavailable")
	if got := r.Server.(*toolservers.Email).Sent(); len(got) != 0 {
		t.Errorf("Sent() = %+v, want nothing", got)
	}
}

func TestInvalidArguments(t *testing.T) {
	tests := []struct {
		server, tool string
		args         map[string]any
		want         string
	}{
		{"hotel", "book_hotel", map[string]any{"hotel": "H", "nights": 1}, "guest is required"},
		{"hotel", "book_hotel", map[string]any{"guest": "G", "hotel": "H", "nights": 0}, "nights must be 1 to 30"},
		{"hotel", "book_hotel", map[string]any{"guest": "G", "hotel": "H", "nights": 2.5}, "invalid arguments"},
		{"hotel", "cancel_hotel_booking", map[string]any{}, `"booking_id" not found`},
		{"payments", "charge_customer", map[string]any{"customer": "c", "amount": -5, "currency": "EUR"}, "amount must be positive"},
		{"payments", "charge_customer", map[string]any{"customer": "c", "amount": 1.001, "currency": "EUR"}, "more than 2 decimals"},
		{"payments", "charge_customer", map[string]any{"customer": "c", "amount": 10, "currency": "euro"}, "ISO 4217"},
		{"email", "send_email", map[string]any{"to": "nobody", "subject": "s", "body": "b"}, "not an email address"},
	}
	sessions := map[string]*mcp.ClientSession{}
	for _, name := range toolservers.Names {
		_, sessions[name] = start(t, name, toolservers.Options{})
	}
	for _, tt := range tests {
		toolError(t, tt.tool, call(t, sessions[tt.server], tt.tool, tt.args, ""), tt.want)
	}
}

func TestStartUnknownServer(t *testing.T) {
	if _, err := toolservers.Start(context.Background(), "orders", toolservers.Options{}); err == nil ||
		!strings.Contains(err.Error(), "hotel, payments, email") {
		t.Errorf(`Start("orders") = %v, want an error naming the known servers`, err)
	}
}

func TestCloseIsIdempotent(t *testing.T) {
	r, err := toolservers.Start(context.Background(), "hotel", toolservers.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := r.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := r.Close(ctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
