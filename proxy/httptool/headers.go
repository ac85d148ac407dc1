package httptool

import (
	"bytes"
	"net/http"
	"net/textproto"
	"strings"

	"github.com/valyala/fasthttp"
)

// Header names as fasthttp writes them: it puts received header names in
// canonical form (Content-Type, Te), so comparisons are exact.
const (
	hdrSaga           = "X-Agenthelm-Saga" // X-AgentHelm-Saga in canonical form
	hdrRollback       = "X-Agenthelm-Rollback"
	hdrIdempotencyKey = "Idempotency-Key"
	hdrContentType    = "Content-Type"
	hdrTraceparent    = "Traceparent"
	hdrTracestate     = "Tracestate"
	hdrBaggage        = "Baggage"
)

// hopByHop are headers that describe one connection, not the message
// (RFC 9110 section 7.6.1); with every Proxy-* header and those a
// Connection header names, they are never passed on, in either direction.
var hopByHop = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Te": true, "Trailer": true,
	"Transfer-Encoding": true, "Upgrade": true,
}

// notForwarded are request headers an agent sends that never reach the
// upstream: credentials (agents do not pass theirs through; upstreams.X.headers
// carries the API's), headers the proxy sets itself, and agenthelm's own.
var notForwarded = map[string]bool{
	"Authorization": true, "Cookie": true,
	"Host": true, "Content-Length": true, "Expect": true,
	hdrSaga: true,
}

// notRelayed are response headers the proxy does not copy to the agent:
// fasthttp sets Content-Length from the body it writes.
var notRelayed = map[string]bool{"Content-Length": true}

// connectionNamed returns the canonical names a message's Connection
// headers list (RFC 9110 section 7.6.1), or nil.
func connectionNamed(values [][]byte) map[string]bool {
	var named map[string]bool
	for _, v := range values {
		for tok := range strings.SplitSeq(string(v), ",") {
			if tok = strings.TrimSpace(tok); tok != "" {
				if named == nil {
					named = map[string]bool{}
				}
				named[textproto.CanonicalMIMEHeaderKey(tok)] = true
			}
		}
	}
	return named
}

// isHopByHop reports whether header k is connection-specific.
func isHopByHop(k []byte, named map[string]bool) bool {
	return hopByHop[string(k)] || bytes.HasPrefix(k, []byte("Proxy-")) || named[string(k)]
}

// copyRequestHeaders copies the agent's headers to the upstream request,
// leaving out hop-by-hop headers, credentials, and the names in skip.
func copyRequestHeaders(dst, src *fasthttp.RequestHeader, skip map[string]bool) {
	named := connectionNamed(src.PeekAll("Connection"))
	for k, v := range src.All() {
		if isHopByHop(k, named) || notForwarded[string(k)] || skip[string(k)] {
			continue
		}
		dst.AddBytesKV(k, v)
	}
}

// copyResponseHeaders copies the upstream's response headers to the
// agent's response, leaving out hop-by-hop headers.
func copyResponseHeaders(dst, src *fasthttp.ResponseHeader) {
	named := connectionNamed(src.PeekAll("Connection"))
	for k, v := range src.All() {
		if isHopByHop(k, named) || notRelayed[string(k)] {
			continue
		}
		dst.AddBytesKV(k, v)
	}
}

// selectHeaders returns the named request headers that are present, by
// canonical name (the form toolcall.Transport.Headers uses).
func selectHeaders(h *fasthttp.RequestHeader, names []string) map[string]string {
	var out map[string]string
	for _, name := range names {
		if v := h.Peek(name); len(v) > 0 {
			if out == nil {
				out = make(map[string]string, len(names))
			}
			out[http.CanonicalHeaderKey(name)] = string(v)
		}
	}
	return out
}

// responseHeaders returns the response headers journaled in a call's
// result: all but hop-by-hop ones, Set-Cookie (a credential) and those
// that only describe this transfer. Repeated headers are joined with ", ".
func responseHeaders(h *fasthttp.ResponseHeader) map[string]string {
	named := connectionNamed(h.PeekAll("Connection"))
	out := map[string]string{}
	for k, v := range h.All() {
		if isHopByHop(k, named) || resultSkips[string(k)] {
			continue
		}
		name := string(k)
		if prev, ok := out[name]; ok {
			out[name] = prev + ", " + string(v)
		} else {
			out[name] = string(v)
		}
	}
	return out
}

var resultSkips = map[string]bool{"Set-Cookie": true, "Content-Length": true, "Date": true, "Server": true}
