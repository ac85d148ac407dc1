package approvals

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// hookServer is a webhook receiver on 127.0.0.1 that keeps what it got.
type hookServer struct {
	*httptest.Server
	mu     sync.Mutex
	bodies [][]byte
	heads  []http.Header
	status int
	answer string
}

func newHookServer(t *testing.T) *hookServer {
	t.Helper()
	h := &hookServer{status: http.StatusOK, answer: "ok"}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		if r.Method == http.MethodPost {
			h.bodies = append(h.bodies, b)
			h.heads = append(h.heads, r.Header.Clone())
		}
		status, answer := h.status, h.answer
		h.mu.Unlock()
		w.WriteHeader(status)
		io.WriteString(w, answer)
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hookServer) received() [][]byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([][]byte(nil), h.bodies...)
}

// secretURL is the server's URL with a token in its path, as a Slack
// webhook URL has.
func (h *hookServer) secretURL() string { return h.URL + "/services/T000/B000/s3cr3t-t0ken" }

func webhookRequest() Request {
	return Request{
		ID: "ap-0123456789abcdef", Saga: "s-20261127-1", Step: 3, Upstream: "payments", Tool: "charge_customer",
		Arguments:  json.RawMessage(`{"customer":"cus_<b>ana</b>","amount":1840,"currency":"EUR"}`),
		ArgsDigest: "sha256:feed", Reasons: []string{"charges over 1000 need finance & a second look"},
		Approvers: []string{"finance"}, Agent: "booking-agent",
		History:    []Step{{N: 1, Upstream: "hotel", Tool: "book_hotel", Status: "succeeded", Args: json.RawMessage(`{"nights":3}`)}},
		DecisionID: "0193-dec", Created: time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC),
		Expires: time.Date(2026, 11, 27, 8, 15, 0, 0, time.UTC),
	}
}

func TestWebhookGeneric(t *testing.T) {
	h := newHookServer(t)
	req := webhookRequest()
	if err := NewWebhook(h.secretURL(), FormatGeneric, nil, nil).Notify(context.Background(), req); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	got := h.received()
	if len(got) != 1 {
		t.Fatalf("the receiver got %d POSTs, want 1", len(got))
	}
	h.mu.Lock()
	ct := h.heads[0].Get("Content-Type")
	h.mu.Unlock()
	if ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	var ev WebhookEvent
	if err := json.Unmarshal(got[0], &ev); err != nil {
		t.Fatalf("body is not JSON: %v\n%s", err, got[0])
	}
	want := WebhookEvent{
		Event:    "approval_requested",
		Summary:  "payments/charge_customer waits for approval ap-0123456789abcdef: charges over 1000 need finance & a second look",
		Approval: req,
		Page:     "/approvals#ap-0123456789abcdef",
		API:      Commands{Approve: "POST /v1/approvals/ap-0123456789abcdef/approve", Deny: "POST /v1/approvals/ap-0123456789abcdef/deny"},
		Commands: Commands{
			Approve: "agenthelm approvals approve ap-0123456789abcdef --reason '...'",
			Deny:    "agenthelm approvals deny ap-0123456789abcdef --reason '...'",
		},
	}
	if diff := cmp.Diff(want, ev); diff != "" {
		t.Errorf("generic body (-want +got):\n%s", diff)
	}
}

func TestWebhookSlack(t *testing.T) {
	h := newHookServer(t)
	req := webhookRequest()
	if err := NewWebhook(h.secretURL(), FormatSlack, nil, nil).Notify(context.Background(), req); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	var msg struct {
		Text   string `json:"text"`
		Blocks []struct {
			Type string `json:"type"`
			Text *struct {
				Type string `json:"type"`
				Text string `json:"text"`
			} `json:"text"`
			Elements []struct {
				Type string `json:"type"`
				Text string `json:"text"`
			} `json:"elements"`
		} `json:"blocks"`
	}
	got := h.received()
	if len(got) != 1 {
		t.Fatalf("the receiver got %d POSTs, want 1", len(got))
	}
	if err := json.Unmarshal(got[0], &msg); err != nil {
		t.Fatalf("body: %v\n%s", err, got[0])
	}
	if !strings.Contains(msg.Text, "payments/charge_customer waits for approval ap-0123456789abcdef") {
		t.Errorf("text = %q", msg.Text)
	}
	var types []string
	for _, b := range msg.Blocks {
		types = append(types, b.Type)
	}
	if diff := cmp.Diff([]string{"header", "section", "section", "context"}, types); diff != "" {
		t.Fatalf("block types (-want +got):\n%s", diff)
	}
	if msg.Blocks[0].Text.Type != "plain_text" || msg.Blocks[0].Text.Text != "Approval needed: payments/charge_customer" {
		t.Errorf("header = %+v", msg.Blocks[0].Text)
	}
	facts := msg.Blocks[1].Text.Text
	for _, want := range []string{"finance &amp; a second look", "`s-20261127-1` step 3", "booking-agent", "2026-11-27T08:15:00Z", "sha256:feed"} {
		if !strings.Contains(facts, want) {
			t.Errorf("facts section lacks %q:\n%s", want, facts)
		}
	}
	args := msg.Blocks[2].Text.Text
	if !strings.Contains(args, "\"customer\": \"cus_&lt;b&gt;ana&lt;/b&gt;\",\n  \"amount\": 1840") {
		t.Errorf("arguments are not escaped and pretty-printed:\n%s", args)
	}
	if ctx := msg.Blocks[3].Elements[0].Text; !strings.Contains(ctx, "agenthelm approvals approve ap-0123456789abcdef") ||
		!strings.Contains(ctx, "agenthelm approvals deny ap-0123456789abcdef") || !strings.Contains(ctx, "/approvals") {
		t.Errorf("context block = %q, want the approve and deny commands and the page", ctx)
	}
}

// TestWebhookSlackLongArguments keeps every section within Slack's 3000
// characters.
func TestWebhookSlackLongArguments(t *testing.T) {
	req := webhookRequest()
	req.Arguments = json.RawMessage(`{"body":"` + strings.Repeat("é<", 4000) + `"}`)
	body := slackBody(req)
	for i, b := range body["blocks"].([]any) {
		blk := b.(map[string]any)
		if txt, ok := blk["text"].(map[string]any); ok {
			s := txt["text"].(string)
			if n := len([]rune(s)); n > slackSectionMax {
				t.Errorf("block %d has %d characters, over Slack's %d", i, n, slackSectionMax)
			}
			if i == 2 && (!strings.HasSuffix(s, "… (truncated)\n```") || !strings.Contains(s, "é&lt;")) {
				t.Errorf("arguments block does not end in a truncation note: ...%s", s[len(s)-40:])
			}
		}
	}
}

// TestWebhookErrorsHideTheURL: a failing webhook's errors and logs name
// its host, never the token in its path.
func TestWebhookErrorsHideTheURL(t *testing.T) {
	h := newHookServer(t)
	h.status, h.answer = http.StatusInternalServerError, "invalid_payload"
	var logs syncBuf
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	err := NewWebhook(h.secretURL(), FormatSlack, nil, log).Notify(context.Background(), webhookRequest())
	host := strings.TrimPrefix(h.URL, "http://")
	if err == nil || !strings.Contains(err.Error(), "webhook "+host+" answered 500 Internal Server Error: invalid_payload") {
		t.Errorf("Notify to a failing receiver = %v", err)
	}

	closed := newHookServer(t)
	url := closed.secretURL()
	closed.Close()
	err2 := NewWebhook(url, FormatGeneric, nil, log).Notify(context.Background(), webhookRequest())
	if err2 == nil {
		t.Error("Notify to a closed port succeeded")
	}

	// Through the broker, which logs the failure.
	b := New(Options{Notifier: NewWebhook(url, FormatGeneric, nil, log), Logger: log})
	r := webhookRequest()
	r.Expires = time.Now().Add(-time.Second)
	if _, err := b.Hold(context.Background(), r, nil); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{errString(err), errString(err2), logs.String()} {
		if strings.Contains(s, "s3cr3t") || strings.Contains(s, "/services/") {
			t.Errorf("the webhook URL's path leaked: %s", s)
		}
	}
	if !strings.Contains(logs.String(), "approval notification failed") || !strings.Contains(logs.String(), strings.TrimPrefix(closed.URL, "http://")) {
		t.Errorf("log lacks the failure with the host:\n%s", logs.String())
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestWebhookBounded: Notify gives up on a receiver that does not answer
// when its context ends, and sets its own deadline of WebhookTimeout.
func TestWebhookBounded(t *testing.T) {
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer hang.Close()
	defer close(release)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := NewWebhook(hang.URL+"/secret", FormatGeneric, nil, nil).Notify(ctx, webhookRequest())
	if !errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "secret") {
		t.Errorf("Notify to a silent receiver = %v, want a deadline error without the path", err)
	}

	var deadline time.Time
	var ok bool
	spy := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		deadline, ok = r.Context().Deadline()
		return &http.Response{StatusCode: http.StatusNoContent, Status: "204 No Content", Body: http.NoBody}, nil
	})}
	before := time.Now()
	if err := NewWebhook("http://127.0.0.1:1/x", FormatGeneric, spy, nil).Notify(context.Background(), webhookRequest()); err != nil {
		t.Fatal(err)
	}
	if !ok || deadline.After(before.Add(WebhookTimeout).Add(time.Second)) {
		t.Errorf("request deadline = %v (set: %v), want at most WebhookTimeout (%s) away", deadline, ok, WebhookTimeout)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestWebhookNoRedirects: the call's arguments go only where configured.
func TestWebhookNoRedirects(t *testing.T) {
	elsewhere := newHookServer(t)
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL, http.StatusTemporaryRedirect)
	}))
	defer redirector.Close()
	err := NewWebhook(redirector.URL, FormatGeneric, nil, nil).Notify(context.Background(), webhookRequest())
	if err == nil || !strings.Contains(err.Error(), "307") {
		t.Errorf("Notify to a redirecting receiver = %v, want an error naming the 307", err)
	}
	if n := len(elsewhere.received()); n != 0 {
		t.Errorf("the redirect target got %d POSTs, want none", n)
	}
}

// TestBrokerNotifiesWebhook: a held call reaches the receiver while it
// waits.
func TestBrokerNotifiesWebhook(t *testing.T) {
	h := newHookServer(t)
	b := New(Options{Notifier: NewWebhook(h.URL, "", nil, nil)})
	r := webhookRequest()
	r.Expires = time.Now().Add(time.Hour)
	res := hold(t, context.Background(), b, r, nil)
	got := h.received()
	for len(got) == 0 { // Hold notifies after the request is registered
		time.Sleep(time.Millisecond)
		got = h.received()
	}
	if len(got) != 1 || !strings.Contains(string(got[0]), `"id":"ap-0123456789abcdef"`) {
		t.Fatalf("receiver got %q, want the request", got)
	}
	if _, err := b.Decide(r.ID, true, "alice", ""); err != nil {
		t.Fatal(err)
	}
	if d := <-res; !d.d.Approved {
		t.Errorf("Hold = %+v", d)
	}
}
