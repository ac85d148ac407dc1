package upstream

import (
	"encoding/base64"
	"net/http"
	"strings"

	"github.com/agenthelm/agenthelm/proxy/jsonrpc"
)

// MCP header names and the _meta key a stateless (2026-07-28) request
// carries its protocol version in.
const (
	headerProtocolVersion = "Mcp-Protocol-Version"
	headerSessionID       = "Mcp-Session-Id"
	headerMethod          = "Mcp-Method"
	headerName            = "Mcp-Name"
	headerLastEventID     = "Last-Event-Id"
	metaProtocolVersion   = "io.modelcontextprotocol/protocolVersion"

	// versionStandardHeaders is the first revision that requires Mcp-Method
	// and Mcp-Name on every POST (SEP-2243). Revisions are dates, so they
	// compare as strings.
	versionStandardHeaders = "2026-07-28"
)

// metaProtocolVersionOf returns params._meta["io.modelcontextprotocol/protocolVersion"]
// of a request, or "".
func metaProtocolVersionOf(msg *jsonrpc.Message) string {
	if msg.Kind != jsonrpc.KindRequest {
		return ""
	}
	return jsonrpc.StringMember(jsonrpc.Member(msg.Params, "_meta"), metaProtocolVersion)
}

// setMCPHeaders sets MCP-Protocol-Version and, from 2026-07-28 on, the
// standard headers mirrored from the body, and reports whether the request
// is of that era (its Mcp-Param-* headers are then the caller's to set:
// see ToolHeaders). The body is the source of truth: a server rejects a
// request whose headers disagree with it, so values taken from the frame
// replace whatever the agent's headers said.
//
// negotiated is the version from the session's initialize result ("" for
// none).
func setMCPHeaders(h http.Header, msg *jsonrpc.Message, negotiated string) (mirrored bool) {
	version := metaProtocolVersionOf(msg)
	if version == "" {
		version = h.Get(headerProtocolVersion)
	}
	if version == "" {
		version = negotiated
	}
	if version != "" && msg.Method != "initialize" {
		h.Set(headerProtocolVersion, version)
	}
	if version < versionStandardHeaders || msg.Method == "" {
		return false
	}
	h.Set(headerMethod, msg.Method)
	if name := mirroredName(msg); name != "" {
		h.Set(headerName, encodeHeaderValue(name))
	} else {
		h.Del(headerName)
	}
	return true
}

// mirroredName is the body's value that Mcp-Name carries: the tool or
// prompt name, or the resource URI ("" for other methods).
func mirroredName(msg *jsonrpc.Message) string {
	switch msg.Method {
	case "tools/call", "prompts/get":
		return jsonrpc.StringMember(msg.Params, "name")
	case "resources/read", "resources/subscribe", "resources/unsubscribe":
		return jsonrpc.StringMember(msg.Params, "uri")
	}
	return ""
}

// encodeHeaderValue applies the 2026-07-28 value encoding: a value that is
// not plain visible ASCII, has surrounding spaces, or looks like the
// sentinel itself travels as =?base64?...?=.
func encodeHeaderValue(v string) string {
	safe := v == strings.TrimSpace(v) && !(strings.HasPrefix(v, "=?base64?") && strings.HasSuffix(v, "?="))
	for i := 0; safe && i < len(v); i++ {
		c := v[i]
		safe = c == ' ' || c == '\t' || (c >= 0x21 && c <= 0x7e)
	}
	if safe {
		return v
	}
	return "=?base64?" + base64.StdEncoding.EncodeToString([]byte(v)) + "?="
}
