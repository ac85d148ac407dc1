package approvals

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

// Webhook body formats (NewWebhook).
const (
	// FormatGeneric is a JSON object describing the request (WebhookEvent).
	FormatGeneric = "generic"
	// FormatSlack is a Slack incoming-webhook message: {"text", "blocks"}.
	FormatSlack = "slack"
)

// WebhookTimeout bounds one notification: Hold waits at most this long for
// the webhook before the call starts waiting for its decision.
const WebhookTimeout = 5 * time.Second

// PagePath is where the admin listener serves the approvals page.
const PagePath = "/approvals"

// WebhookEvent is the body of a generic webhook notification.
type WebhookEvent struct {
	// Event is always "approval_requested".
	Event string `json:"event"`
	// Summary is one line for people.
	Summary string `json:"summary"`
	// Approval is the held call with everything an approver needs.
	Approval Request `json:"approval"`
	// Page is the approvals page's path on agenthelm's admin listener
	// (the listener's address is the receiver's to know).
	Page string `json:"page"`
	// API names the admin API requests that decide (body {"by", "reason"}).
	API Commands `json:"api"`
	// Commands are the CLI commands that decide.
	Commands Commands `json:"commands"`
}

// Commands is a pair of ways to approve and to deny.
type Commands struct {
	Approve string `json:"approve"`
	Deny    string `json:"deny"`
}

// NewWebhook returns a Notifier that POSTs each new request to url, as
// JSON in format (FormatGeneric, or FormatSlack; empty means generic).
// client nil means a client that does not follow redirects. Each POST is
// bounded by WebhookTimeout; an answer other than 2xx is an error. url may
// carry a secret (a Slack webhook URL is one): only its host ever appears
// in logs and errors. log nil discards.
func NewWebhook(url, format string, client *http.Client, log *slog.Logger) Notifier {
	if client == nil {
		client = &http.Client{
			Timeout: WebhookTimeout,
			// A webhook that redirects would send the call's arguments
			// somewhere nobody configured.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &webhook{url: url, host: hostOf(url), slack: format == FormatSlack, client: client, log: log}
}

type webhook struct {
	url    string
	host   string // what may be logged
	slack  bool
	client *http.Client
	log    *slog.Logger
}

var _ Notifier = (*webhook)(nil)

// Notify posts r. Errors name the webhook's host only.
func (w *webhook) Notify(ctx context.Context, r Request) error {
	var body any = genericBody(r)
	if w.slack {
		body = slackBody(r)
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // the arguments as the agent sent them, not \u003c
	if err := enc.Encode(body); err != nil {
		return fmt.Errorf("webhook %s: %w", w.host, err)
	}
	ctx, cancel := context.WithTimeout(ctx, WebhookTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, &b)
	if err != nil {
		return fmt.Errorf("webhook %s: %w", w.host, redact(err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "agenthelm-webhook")
	start := time.Now()
	resp, err := w.client.Do(req)
	if err != nil {
		return fmt.Errorf("webhook %s: %w", w.host, redact(err))
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 != 2 {
		text := strings.TrimSpace(strings.ToValidUTF8(string(msg), "?"))
		if text != "" {
			text = ": " + clip(text, 200)
		}
		return fmt.Errorf("webhook %s answered %s%s", w.host, resp.Status, text)
	}
	w.log.Debug("approval webhook delivered", "approval", r.ID, "host", w.host, "status", resp.StatusCode, "took", time.Since(start))
	return nil
}

// hostOf is the part of a webhook URL that may be shown.
func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(invalid URL)"
	}
	return u.Host
}

// redact drops the URL (which may hold a token) from an HTTP client error.
func redact(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func summary(r Request) string {
	s := fmt.Sprintf("%s/%s waits for approval %s", r.Upstream, r.Tool, r.ID)
	if len(r.Reasons) > 0 {
		s += ": " + strings.Join(r.Reasons, "; ")
	}
	return s
}

func commands(id string) Commands {
	return Commands{
		Approve: "agenthelm approvals approve " + id + " --reason '...'",
		Deny:    "agenthelm approvals deny " + id + " --reason '...'",
	}
}

func genericBody(r Request) WebhookEvent {
	if r.Arguments == nil {
		r.Arguments = json.RawMessage("{}")
	}
	return WebhookEvent{
		Event:    "approval_requested",
		Summary:  summary(r),
		Approval: r,
		Page:     PagePath + "#" + r.ID,
		API:      Commands{Approve: "POST /v1/approvals/" + r.ID + "/approve", Deny: "POST /v1/approvals/" + r.ID + "/deny"},
		Commands: commands(r.ID),
	}
}

// Slack's limits: a header's text 150 characters, a section's 3000.
const (
	slackHeaderMax  = 150
	slackSectionMax = 3000
)

// slackBody is a Slack incoming-webhook message (Block Kit).
func slackBody(r Request) map[string]any {
	text := func(s string) map[string]any { return map[string]any{"type": "mrkdwn", "text": s} }
	section := func(s string) map[string]any {
		return map[string]any{"type": "section", "text": text(clip(s, slackSectionMax))}
	}
	var facts strings.Builder
	why := "(no reason given)"
	if len(r.Reasons) > 0 {
		why = strings.Join(r.Reasons, "; ")
	}
	fmt.Fprintf(&facts, "*Why:* %s\n", slackEscape(why))
	fmt.Fprintf(&facts, "*Saga:* `%s` step %d\n", slackEscape(r.Saga), r.Step)
	if r.Agent != "" {
		fmt.Fprintf(&facts, "*Agent:* %s\n", slackEscape(r.Agent))
	}
	if len(r.Approvers) > 0 {
		fmt.Fprintf(&facts, "*Approvers:* %s\n", slackEscape(strings.Join(r.Approvers, ", ")))
	}
	fmt.Fprintf(&facts, "*Expires:* %s (denied if nobody decides)\n", r.Expires.UTC().Format(time.RFC3339))
	fmt.Fprintf(&facts, "*Argument digest:* `%s`", slackEscape(r.ArgsDigest))

	args := prettyJSON(r.Arguments)
	const fence = "*Arguments:*\n```\n"
	room := slackSectionMax - len(fence) - len("\n```") - len("\n… (truncated)")
	if a := slackEscape(args); len(a) > room {
		args = clip(a, room) + "\n… (truncated)"
	} else {
		args = a
	}
	c := commands(r.ID)
	return map[string]any{
		"text": summary(r),
		"blocks": []any{
			map[string]any{"type": "header", "text": map[string]any{"type": "plain_text",
				"text": clip("Approval needed: "+r.Upstream+"/"+r.Tool, slackHeaderMax)}},
			section(facts.String()),
			section(fence + args + "\n```"),
			map[string]any{"type": "context", "elements": []any{text(clip(fmt.Sprintf(
				"Approve: `%s`\nDeny: `%s`\nor use the approvals page (%s) on agenthelm's admin listener",
				slackEscape(c.Approve), slackEscape(c.Deny), PagePath), slackSectionMax))}},
		},
	}
}

// slackEscape escapes the three characters Slack's mrkdwn treats as markup.
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// prettyJSON indents JSON, or returns it as it is if it is not JSON.
func prettyJSON(raw json.RawMessage) string {
	if len(raw) == 0 {
		return "{}"
	}
	var b bytes.Buffer
	if json.Indent(&b, raw, "", "  ") != nil {
		return string(raw)
	}
	return b.String()
}

// clip shortens s to at most n bytes, on a rune boundary, ending in "…".
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
