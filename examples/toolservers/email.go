package toolservers

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

// BounceDomain is the mail domain whose mailboxes are always unavailable:
// send_email to anyone@bounce.example fails.
const BounceDomain = "bounce.example"

// ErrMailboxUnavailable starts the text of send_email's error result.
const ErrMailboxUnavailable = "mailbox unavailable"

// Message is one delivered email.
type Message struct {
	ID      string `json:"message_id"`
	To      string `json:"to"`
	Subject string `json:"subject"`
	Body    string `json:"body"`
	Status  string `json:"status"` // always "sent"
}

// Email is the email server: send_email, which cannot be undone.
type Email struct {
	mu       sync.Mutex
	failSend bool
	sent     []Message
	attempts int
	ledger   ledger
	srv      *server.MCPServer
}

// NewEmail returns an email server that has sent nothing. With failSend,
// every send fails; otherwise only sends to BounceDomain do.
func NewEmail(failSend bool) *Email {
	e := &Email{failSend: failSend}
	s := server.NewMCPServer("example-email", version,
		server.WithToolCapabilities(false),
		server.WithInstructions("Sends email. A sent email cannot be recalled."),
		server.WithRecovery(),
	)
	s.AddTool(mcp.NewTool("send_email",
		mcp.WithDescription("Send an email. It cannot be recalled once sent."),
		mcp.WithString("to", mcp.Required(), mcp.Description("recipient address")),
		mcp.WithString("subject", mcp.Required()),
		mcp.WithString("body", mcp.Required()),
		mcp.WithOutputSchema[Message](),
		annotations("Send an email", false, false, false, true),
	), mutating(&e.mu, &e.ledger, "send_email", e.send))
	e.srv = s
	return e
}

// Name returns "email".
func (e *Email) Name() string { return "email" }

// MCPServer returns the MCP server exposing send_email.
func (e *Email) MCPServer() *server.MCPServer { return e.srv }

// SetFailSend switches the failure of every send on or off.
func (e *Email) SetFailSend(fail bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.failSend = fail
}

// Sent returns the emails delivered so far, in order. Failed sends are not
// in it.
func (e *Email) Sent() []Message {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.sent)
}

// Attempts returns how many times send_email ran (replays of an
// idempotency key not counted), failures included.
func (e *Email) Attempts() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.attempts
}

// send runs with e.mu held.
func (e *Email) send(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	var args struct {
		To      string `json:"to"`
		Subject string `json:"subject"`
		Body    string `json:"body"`
	}
	if err := req.BindArguments(&args); err != nil {
		return mcp.NewToolResultErrorf("invalid arguments: %v", err), nil
	}
	at := strings.LastIndex(args.To, "@")
	if at <= 0 || at == len(args.To)-1 {
		return mcp.NewToolResultErrorf("invalid arguments: %q is not an email address", args.To), nil
	}
	e.attempts++
	if e.failSend || strings.EqualFold(args.To[at+1:], BounceDomain) {
		return mcp.NewToolResultErrorf("%s: %s (550 5.1.1 no such mailbox)", ErrMailboxUnavailable, args.To), nil
	}
	m := Message{
		ID:      fmt.Sprintf("msg_%04d", len(e.sent)+1),
		To:      args.To,
		Subject: args.Subject,
		Body:    args.Body,
		Status:  "sent",
	}
	e.sent = append(e.sent, m)
	return structured(m), nil
}
