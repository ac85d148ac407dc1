package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/agenthelm/agenthelm/internal/buildinfo"
	"github.com/agenthelm/agenthelm/proxy/jsonrpc"
	"github.com/agenthelm/agenthelm/proxy/upstream"
	"github.com/agenthelm/agenthelm/toolcall"
)

// Invoke sends a request of agenthelm's own to an upstream: a capture or a
// compensation. It uses the agent session sessionID while that session
// lives (a stdio upstream's state lives in that session's process), and
// otherwise the upstream's operator session, which agenthelm opens itself
// (after a restart, or once the agent is gone).
func (p *Proxy) Invoke(ctx context.Context, upstreamName, sessionID, method string, params json.RawMessage) (toolcall.Result, error) {
	if s := p.session(sessionID); s != nil && s.upstream == upstreamName {
		res, err := s.Call(ctx, method, params)
		if !errors.Is(err, errSessionFinished) {
			return res, err
		}
	}
	s, err := p.operatorSession(ctx, upstreamName)
	if err != nil {
		return toolcall.Result{}, fmt.Errorf("%w: %w", toolcall.ErrNotSent, err)
	}
	return s.Call(ctx, method, params)
}

// operatorSession returns agenthelm's own session with an upstream,
// opening it (initialize handshake included) on first use.
func (p *Proxy) operatorSession(ctx context.Context, upstreamName string) (*Session, error) {
	if _, ok := p.spec(upstreamName); !ok {
		return nil, p.unknownUpstream(upstreamName)
	}
	p.opMu.Lock()
	defer p.opMu.Unlock()
	p.mu.Lock()
	s := p.operators[upstreamName]
	closed := p.closed
	p.mu.Unlock()
	if closed {
		return nil, errProxyClosed
	}
	if s != nil {
		return s, nil
	}
	s = newSession(p, "operator-"+upstreamName, upstreamName, "operator", false)
	if err := s.dial(ctx); err != nil {
		return nil, err
	}
	params, _ := jsonrpc.Marshal(map[string]any{
		"protocolVersion": "2025-11-25",
		"capabilities":    map[string]any{},
		"clientInfo":      operatorClient(),
	})
	res, err := s.Call(ctx, "initialize", params)
	switch {
	case err == nil && res.Error != nil && !s.isLegacySSE():
		// A server of the 2026-07-28 revision may have dropped the
		// handshake (and a session with it): talk to it as its own
		// clients do, one self-describing request at a time.
		s.log.Info("upstream refused initialize: agenthelm's own requests go to it statelessly (2026-07-28)",
			"upstream", upstreamName, "err", res.Error.Message)
		s.mu.Lock()
		s.stateless = true
		s.mu.Unlock()
	case err == nil && res.Error != nil:
		err = res.Error
	}
	if err != nil {
		_ = s.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("initialize operator session with upstream %q: %w", upstreamName, err)
	}
	if !s.stateless {
		if err := s.conn.Send(ctx, jsonrpc.NewNotification("notifications/initialized", nil), s.sendOptions(nil, nil)); err != nil {
			_ = s.Close(context.WithoutCancel(ctx))
			return nil, fmt.Errorf("initialize operator session with upstream %q: %w", upstreamName, err)
		}
	}
	s.onClose = p.forget
	p.mu.Lock()
	p.operators[upstreamName] = s
	p.mu.Unlock()
	s.log.Info("operator session opened")
	return s, nil
}

// InvokeSpec is Invoke for an upstream the configuration no longer names
// but the journal recorded (rule 29): it is reached as spec says, with the
// values of the environment variables envNames read from agenthelm's own
// environment (values are never journaled). A configured upstream of that
// name wins over spec.
func (p *Proxy) InvokeSpec(ctx context.Context, spec upstream.Spec, envNames []string, method string, params json.RawMessage) (toolcall.Result, error) {
	if _, ok := p.spec(spec.Name); !ok {
		for _, n := range envNames {
			if v, ok := os.LookupEnv(n); ok {
				if spec.Env == nil {
					spec.Env = map[string]string{}
				}
				spec.Env[n] = v
			}
		}
		p.mu.Lock()
		p.launched[spec.Name] = spec
		p.mu.Unlock()
		p.log.Warn("upstream not in the configuration: reaching it as the journal recorded", "upstream", spec.Name, "transport", spec.Transport)
	}
	return p.Invoke(ctx, spec.Name, "", method, params)
}

// operatorClient is how agenthelm's own requests describe their client.
func operatorClient() map[string]any {
	return map[string]any{"name": "agenthelm", "version": buildinfo.Get().Version}
}

// isLegacySSE reports whether the session's upstream is reached over the
// legacy HTTP+SSE transport, which predates stateless requests.
func (s *Session) isLegacySSE() bool {
	spec, ok := s.p.spec(s.upstream)
	return ok && spec.Transport == "sse"
}

// statelessMeta adds to params the _meta a 2026-07-28 request describes
// its client with, keeping the _meta members params already has (an
// idempotency key, a trace context).
func statelessMeta(params json.RawMessage) (json.RawMessage, error) {
	if len(params) == 0 || string(params) == "null" {
		params = json.RawMessage(`{}`)
	}
	meta := jsonrpc.Member(params, "_meta")
	if meta == nil {
		meta = json.RawMessage(`{}`)
	}
	add := map[string]any{
		"io.modelcontextprotocol/protocolVersion":    modernVersion,
		"io.modelcontextprotocol/clientInfo":         operatorClient(),
		"io.modelcontextprotocol/clientCapabilities": map[string]any{},
	}
	for k, v := range add {
		raw, err := jsonrpc.Marshal(v)
		if err != nil {
			return nil, err
		}
		if meta, err = jsonrpc.SetMember(meta, k, raw); err != nil {
			return nil, err
		}
	}
	return jsonrpc.SetMember(params, "_meta", meta)
}
