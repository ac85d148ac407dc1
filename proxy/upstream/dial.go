package upstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
)

// Transport names accepted in Spec.Transport.
const (
	TransportStdio      = "stdio"
	TransportStreamable = "streamable-http"
	TransportSSE        = "sse"
)

const defaultMaxFrameBytes = 16 << 20

// Spec says how to reach one upstream.
type Spec struct {
	// Name is the configured upstream name, used in errors and logs.
	Name string
	// Command is the argv of a stdio server.
	Command []string
	// Env holds extra environment for a stdio server, added to os.Environ().
	Env map[string]string
	// Dir is a stdio server's working directory ("" = agenthelm's).
	Dir string
	// URL is the endpoint of an HTTP server: the MCP endpoint for
	// streamable HTTP, the SSE endpoint for legacy HTTP+SSE.
	URL string
	// Transport is "stdio", "streamable-http" or "sse" (legacy HTTP+SSE).
	// Empty means stdio when Command is set, streamable HTTP when URL is.
	Transport string
	// Headers are static headers sent on every HTTP request (such as an
	// upstream API key from configuration). Their values are never logged.
	Headers map[string]string
	// HTTPClient is used for HTTP upstreams; nil means a default client.
	// Redirects to another origin are refused either way.
	HTTPClient *http.Client
	// MaxFrameBytes bounds one frame (or SSE event) from the server; larger
	// ones are dropped with a log line. 0 means 16 MiB.
	MaxFrameBytes int
	// ToolHeaders, shared by the connections to one streamable HTTP
	// upstream, learns which arguments its tools mirror into Mcp-Param-*
	// headers; nil gives each connection its own.
	ToolHeaders *ToolHeaders
}

// Dial connects to an upstream. For stdio it starts the process; ctx only
// bounds start-up (for legacy SSE, the wait for the endpoint event), never
// the connection's life. Streamable HTTP does no I/O until the first Send.
// log gets the attribute upstream=Name.
func Dial(ctx context.Context, spec Spec, h Handler, log *slog.Logger) (Conn, error) {
	if h == nil {
		return nil, fmt.Errorf("dial upstream %q: nil handler", spec.Name)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("upstream", spec.Name)
	if spec.MaxFrameBytes <= 0 {
		spec.MaxFrameBytes = defaultMaxFrameBytes
	}
	transport := spec.Transport
	if transport == "" {
		switch {
		case len(spec.Command) > 0:
			transport = TransportStdio
		case spec.URL != "":
			transport = TransportStreamable
		}
	}
	switch transport {
	case TransportStdio:
		if len(spec.Command) == 0 || spec.Command[0] == "" {
			return nil, fmt.Errorf("dial upstream %q: stdio transport needs a command", spec.Name)
		}
		return dialStdio(ctx, spec, h, log)
	case TransportStreamable, TransportSSE:
		u, err := parseHTTPURL(spec.URL)
		if err != nil {
			return nil, fmt.Errorf("dial upstream %q: %w", spec.Name, err)
		}
		if transport == TransportSSE {
			return dialSSE(ctx, spec, u, h, log)
		}
		return dialStreamable(spec, u, h, log), nil
	case "":
		return nil, fmt.Errorf("dial upstream %q: neither a command nor a URL", spec.Name)
	default:
		return nil, fmt.Errorf("dial upstream %q: unknown transport %q (want stdio, streamable-http or sse)", spec.Name, spec.Transport)
	}
}

func parseHTTPURL(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, errors.New("HTTP transport needs a URL")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("parse URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("URL %q: want an absolute http or https URL", safeURL(u))
	}
	return u, nil
}
