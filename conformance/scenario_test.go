package conformance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// A scenario drives one feature through a session and records what the
// server answered in an observation. The harness runs it directly and
// through each front door and requires identical observations; the scenario
// itself checks what must hold on every path (for example, progress
// notifications arrive in order before the result).
type scenario struct {
	id    string // subtest name
	title string // row in docs/CONFORMANCE.md
	run   func(ctx context.Context, s *session, o *obs) error
}

// obs is a scenario's observation: labelled, normalised JSON values.
type obs struct {
	entries []obsEntry
}

type obsEntry struct {
	Label string
	Value string
}

func (o *obs) add(label string, raw []byte) {
	o.entries = append(o.entries, obsEntry{Label: label, Value: normalize(raw)})
}

func (o *obs) addValue(label string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		b = []byte(fmt.Sprintf("%q", err.Error()))
	}
	o.add(label, b)
}

// response records the server's answer to the last client request for
// method: its result, or its error object.
func (o *obs) response(s *session, label, method string) (*frame, error) {
	req, resp := s.w.lastCall(method)
	switch {
	case req == nil:
		return nil, fmt.Errorf("%s: no %s request on the wire", label, method)
	case resp == nil:
		return nil, fmt.Errorf("%s: no JSON-RPC response to %s on the wire", label, method)
	case resp.err != nil:
		o.addValue(label, map[string]any{"error": resp.err})
	default:
		o.add(label, resp.result)
	}
	return resp, nil
}

// callTool calls a tool and records the raw response under label.
func (o *obs) callTool(ctx context.Context, s *session, label, name string, args any) (*mcp.CallToolResult, error) {
	res, err := s.cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		return nil, fmt.Errorf("tools/call %s: %w", name, err)
	}
	if _, err := o.response(s, label, "tools/call"); err != nil {
		return nil, err
	}
	return res, nil
}

// resultText joins the text content of a tool result.
func resultText(res *mcp.CallToolResult) string {
	var parts []string
	for _, c := range res.Content {
		if t, ok := c.(*mcp.TextContent); ok {
			parts = append(parts, t.Text)
		}
	}
	return strings.Join(parts, "\n")
}

// checks collects failed expectations.
type checks []error

func (c *checks) expect(ok bool, format string, args ...any) {
	if !ok {
		*c = append(*c, fmt.Errorf(format, args...))
	}
}

func (c checks) err() error { return errors.Join(c...) }

// Scenarios shared by both servers.

func scInitialize(ctx context.Context, s *session, o *obs) error {
	var c checks
	init := s.cs.InitializeResult()
	c.expect(init.ProtocolVersion == era2025,
		"negotiated protocol %q, want %q (the npm servers speak up to 2025-11-25; a 2026-07-28 client must fall back)",
		init.ProtocolVersion, era2025)
	if _, err := o.response(s, "initialize", "initialize"); err != nil {
		return err
	}
	discover, answer := s.w.lastCall("server/discover")
	switch {
	case s.era == era2026 && discover == nil:
		c.expect(false, "the 2026-07-28 client did not probe with server/discover")
	case s.era == era2026:
		// The probe must fail in a way the client falls back from. Its exact
		// code is compared with the direct run.
		outcome := "no JSON-RPC response"
		if answer != nil && answer.err != nil {
			outcome = fmt.Sprintf("JSON-RPC error %d", answer.err.Code)
		} else if answer != nil {
			outcome = "a result"
		}
		o.addValue("server/discover outcome", outcome)
		if answer != nil && answer.err == nil {
			c.expect(false, "server/discover succeeded against a 2025-11-25 server: %s", answer.raw)
		}
	default:
		c.expect(discover == nil, "a 2025-11-25 client sent server/discover")
	}
	if err := s.cs.Ping(ctx, nil); err != nil {
		return errors.Join(c.err(), fmt.Errorf("ping: %w", err))
	}
	if _, err := o.response(s, "ping", "ping"); err != nil {
		return err
	}
	return c.err()
}

func scUnknownMethod(ctx context.Context, s *session, o *obs) error {
	_, err := mcp.CallCustomMethod[*mcp.PingParams, *mcp.ListToolsResult](ctx, s.cs, unknownMethod, &mcp.PingParams{})
	if err == nil {
		return fmt.Errorf("%s succeeded", unknownMethod)
	}
	resp, rerr := o.response(s, unknownMethod, unknownMethod)
	if rerr != nil {
		return fmt.Errorf("%w (client error: %v)", rerr, err)
	}
	if resp.err == nil {
		return fmt.Errorf("%s: got a result, want a JSON-RPC error", unknownMethod)
	}
	if s.target.door == doorDirect && resp.err.Code != -32601 {
		return fmt.Errorf("%s: code %d, want -32601 (method not found)", unknownMethod, resp.err.Code)
	}
	// The session must survive an unknown method.
	if err := s.cs.Ping(ctx, nil); err != nil {
		return fmt.Errorf("ping after %s: %w", unknownMethod, err)
	}
	return nil
}

func scUnknownTool(ctx context.Context, s *session, o *obs) error {
	_, err := s.cs.CallTool(ctx, &mcp.CallToolParams{Name: "no-such-tool", Arguments: map[string]any{}})
	resp, rerr := o.response(s, "tools/call no-such-tool", "tools/call")
	if rerr != nil {
		return fmt.Errorf("%w (client error: %v)", rerr, err)
	}
	// Spec: a JSON-RPC error; older SDKs answer isError. Either is fine here;
	// the direct run decides which one the proxy must reproduce.
	if resp.err == nil {
		var r struct {
			IsError bool `json:"isError"`
		}
		_ = json.Unmarshal(resp.result, &r)
		if !r.IsError {
			return fmt.Errorf("calling an unknown tool succeeded: %s", resp.result)
		}
	}
	return nil
}

// listToolsUntil lists tools and records the list. server-everything
// registers the tools that need client capabilities (sampling, elicitation,
// roots) only after notifications/initialized, so the list is re-read until
// the wanted tools appear (bounded) before it is recorded.
func listToolsUntil(ctx context.Context, s *session, o *obs, want ...string) error {
	var names []string
	for attempt := 0; ; attempt++ {
		res, err := s.cs.ListTools(ctx, nil)
		if err != nil {
			return fmt.Errorf("tools/list: %w", err)
		}
		names = names[:0]
		have := map[string]bool{}
		for _, t := range res.Tools {
			names = append(names, t.Name)
			have[t.Name] = true
		}
		missing := false
		for _, w := range want {
			missing = missing || !have[w]
		}
		if !missing {
			break
		}
		if attempt == 50 || ctx.Err() != nil {
			return fmt.Errorf("tools/list = %v, want it to include %v", names, want)
		}
		sleepCtx(ctx, 100*time.Millisecond)
	}
	_, err := o.response(s, "tools/list", "tools/list")
	return err
}
