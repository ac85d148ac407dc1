package jsonrpc

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Kind says what a frame is.
type Kind int

const (
	// KindRequest has a method and an id and expects a response.
	KindRequest Kind = iota + 1
	// KindNotification has a method and no id.
	KindNotification
	// KindResponse has an id and a result.
	KindResponse
	// KindErrorResponse has an id (possibly null) and an error.
	KindErrorResponse
)

func (k Kind) String() string {
	switch k {
	case KindRequest:
		return "request"
	case KindNotification:
		return "notification"
	case KindResponse:
		return "response"
	case KindErrorResponse:
		return "error response"
	}
	return "unknown"
}

// Standard JSON-RPC error codes.
const (
	CodeParseError     = -32700
	CodeInvalidRequest = -32600
	CodeMethodNotFound = -32601
	CodeInvalidParams  = -32602
	CodeInternalError  = -32603
)

// Message is one JSON-RPC frame. Raw holds the frame's exact bytes; the other
// fields are views into it for routing and must not be modified.
type Message struct {
	Raw    []byte
	Kind   Kind
	ID     json.RawMessage // exact bytes of the id; nil for notifications
	Method string          // requests and notifications
	Params json.RawMessage // nil when absent
	Result json.RawMessage // responses
	Error  *Error          // error responses
}

// IsRequest reports whether m expects a response.
func (m *Message) IsRequest() bool { return m.Kind == KindRequest }

// IsResponse reports whether m answers a request (with a result or an error).
func (m *Message) IsResponse() bool { return m.Kind == KindResponse || m.Kind == KindErrorResponse }

// IDKey returns a canonical string for m's id, usable as a map key: a string
// id and a numeric id with the same digits are different keys.
func (m *Message) IDKey() string { return IDKey(m.ID) }

// IDKey returns a canonical map key for a raw id: strings are decoded (so
// escapes do not matter) and prefixed with "s:", numbers are normalized
// exactly (1, 1.0, 1e0 and 10e-1 are one key; two different numbers never
// share one, however many digits they have) and prefixed with "n:".
func IDKey(id json.RawMessage) string {
	id = bytes.TrimSpace(id)
	if len(id) == 0 {
		return ""
	}
	if id[0] == '"' {
		var s string
		if err := json.Unmarshal(id, &s); err == nil {
			return "s:" + s
		}
		return "s:" + string(id)
	}
	if n, ok := canonicalNumber(string(id)); ok {
		return "n:" + n
	}
	return "n:" + string(id)
}

// canonicalNumber writes the JSON number s exactly, in one form per value:
// an integer of up to 21 digits in plain digits ("1000"), anything else as
// digits and a decimal exponent without trailing zeros ("15e-1" for 1.5).
func canonicalNumber(s string) (string, bool) {
	sign := ""
	if strings.HasPrefix(s, "-") {
		sign, s = "-", s[1:]
	}
	mant, expPart, hasExp := strings.Cut(strings.ToLower(s), "e")
	intPart, frac, _ := strings.Cut(mant, ".")
	if intPart == "" || strings.Trim(intPart+frac, "0123456789") != "" {
		return "", false
	}
	exp := 0
	if hasExp {
		e, err := strconv.Atoi(expPart)
		if err != nil || e > 1<<30 || e < -(1<<30) {
			return "", false
		}
		exp = e
	}
	digits := strings.TrimLeft(intPart+frac, "0")
	exp -= len(frac)
	trimmed := strings.TrimRight(digits, "0")
	exp += len(digits) - len(trimmed)
	digits = trimmed
	switch {
	case digits == "":
		return "0", true
	case exp >= 0 && len(digits)+exp <= 21:
		return sign + digits + strings.Repeat("0", exp), true
	}
	return sign + digits + "e" + strconv.Itoa(exp), true
}

// Error is a JSON-RPC error object.
type Error struct {
	Code    int             `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data,omitempty"`
}

func (e *Error) Error() string {
	return fmt.Sprintf("json-rpc error %d: %s", e.Code, e.Message)
}

// Errorf builds an Error with a formatted message.
func Errorf(code int, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// envelope is the wire shape Parse decodes into. Pointer and raw fields let
// it tell "absent" from "null".
type envelope struct {
	JSONRPC *string         `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Method  *string         `json:"method"`
	Params  json.RawMessage `json:"params"`
	Result  json.RawMessage `json:"result"`
	Error   json.RawMessage `json:"error"`
}

// Parse reads one frame. It returns a ParseError for bytes that are not JSON
// and an InvalidRequest error for JSON that is not a single JSON-RPC 2.0
// message (batches included: MCP removed them in 2025-06-18). On error, the
// returned Message is nil except when the id could be read, in which case it
// carries only that id so the caller can address its error response.
func Parse(raw []byte) (*Message, *Error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return nil, Errorf(CodeParseError, "parse error: empty message")
	}
	if !json.Valid(raw) {
		return nil, Errorf(CodeParseError, "parse error: not valid JSON")
	}
	switch raw[0] {
	case '{':
	case '[':
		return nil, Errorf(CodeInvalidRequest, "invalid request: JSON-RPC batches are not supported")
	default:
		return nil, Errorf(CodeInvalidRequest, "invalid request: a message must be a JSON object")
	}
	ms, err := members(raw)
	if err == nil {
		err = checkEnvelopeNames(ms)
	}
	if err != nil {
		return nil, Errorf(CodeInvalidRequest, "invalid request: %v", err)
	}
	var env envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		return nil, Errorf(CodeInvalidRequest, "invalid request: %v", err)
	}
	idOnly := func() *Message {
		if validID(env.ID) {
			return &Message{ID: env.ID}
		}
		return nil
	}
	if env.JSONRPC == nil || *env.JSONRPC != "2.0" {
		return idOnly(), Errorf(CodeInvalidRequest, `invalid request: "jsonrpc" must be "2.0"`)
	}
	hasID := env.ID != nil && !isNull(env.ID)
	if hasID && !validID(env.ID) {
		return nil, Errorf(CodeInvalidRequest, "invalid request: id must be a string or a number")
	}
	m := &Message{Raw: raw, ID: env.ID, Params: nullToNil(env.Params)}
	if env.Params != nil && !isNull(env.Params) && env.Params[0] != '{' && env.Params[0] != '[' {
		return idOnly(), Errorf(CodeInvalidRequest, "invalid request: params must be an object or an array")
	}
	switch {
	case env.Method != nil:
		if env.Result != nil || env.Error != nil {
			return idOnly(), Errorf(CodeInvalidRequest, "invalid request: a message with a method cannot carry a result or an error")
		}
		if *env.Method == "" {
			return idOnly(), Errorf(CodeInvalidRequest, "invalid request: method must not be empty")
		}
		m.Method = *env.Method
		if env.ID == nil {
			m.Kind = KindNotification
		} else if !hasID {
			return nil, Errorf(CodeInvalidRequest, "invalid request: id must not be null")
		} else {
			m.Kind = KindRequest
		}
	case env.Result != nil && env.Error != nil:
		return idOnly(), Errorf(CodeInvalidRequest, "invalid request: a response cannot carry both a result and an error")
	case env.Result != nil:
		if !hasID {
			return nil, Errorf(CodeInvalidRequest, "invalid request: a response needs an id")
		}
		m.Kind = KindResponse
		m.Result = env.Result
	case env.Error != nil:
		if env.ID == nil {
			return nil, Errorf(CodeInvalidRequest, "invalid request: a response needs an id (null when unknown)")
		}
		var e Error
		if err := json.Unmarshal(env.Error, &e); err != nil || isNull(env.Error) {
			return idOnly(), Errorf(CodeInvalidRequest, "invalid request: error must be an object with a code and a message")
		}
		m.Kind = KindErrorResponse
		m.Error = &e
	default:
		return idOnly(), Errorf(CodeInvalidRequest, "invalid request: a message needs a method, a result or an error")
	}
	return m, nil
}

// envelopeMembers are the members Parse routes on. Readers differ on which
// of two equal names wins, and Go's encoding/json matches names
// case-insensitively, so Parse refuses a frame that has one of them twice
// or in another case: the proxy must read the message the server will.
var envelopeMembers = []string{"jsonrpc", "id", "method", "params", "result", "error"}

// checkEnvelopeNames reports an envelope member that appears more than once
// or in another case (JSON-RPC member names are case-sensitive).
func checkEnvelopeNames(ms []member) error {
	for _, name := range envelopeMembers {
		n := 0
		for _, m := range ms {
			if !strings.EqualFold(m.name, name) {
				continue
			}
			if m.name != name {
				return fmt.Errorf("member %q must be written %q", m.name, name)
			}
			if n++; n > 1 {
				return fmt.Errorf("member %q appears more than once", name)
			}
		}
	}
	return nil
}

func isNull(b json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(b), []byte("null")) }

func nullToNil(b json.RawMessage) json.RawMessage {
	if b == nil || isNull(b) {
		return nil
	}
	return b
}

func validID(id json.RawMessage) bool {
	id = bytes.TrimSpace(id)
	if len(id) == 0 {
		return false
	}
	return id[0] == '"' || id[0] == '-' || (id[0] >= '0' && id[0] <= '9')
}
