package jsonrpc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Marshal encodes v as compact JSON without HTML escaping, so that strings
// such as "<b>" reach the other side as they were written.
func Marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

type wireRequest struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id,omitempty"`
	Method  string          `json:"method"`
	Params  json.RawMessage `json:"params,omitempty"`
}

type wireResponse struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Result  json.RawMessage `json:"result,omitempty"`
	Error   *Error          `json:"error,omitempty"`
}

// NewRequest builds a request frame. id must be a JSON string or number.
func NewRequest(id json.RawMessage, method string, params json.RawMessage) *Message {
	raw, err := Marshal(wireRequest{JSONRPC: "2.0", ID: id, Method: method, Params: params})
	if err != nil {
		panic(fmt.Sprintf("jsonrpc: encode request: %v", err)) // only invalid raw JSON can get here
	}
	return &Message{Raw: raw, Kind: KindRequest, ID: id, Method: method, Params: params}
}

// NewNotification builds a notification frame.
func NewNotification(method string, params json.RawMessage) *Message {
	raw, err := Marshal(wireRequest{JSONRPC: "2.0", Method: method, Params: params})
	if err != nil {
		panic(fmt.Sprintf("jsonrpc: encode notification: %v", err))
	}
	return &Message{Raw: raw, Kind: KindNotification, Method: method, Params: params}
}

// NewResponse builds a success response frame.
func NewResponse(id json.RawMessage, result json.RawMessage) *Message {
	if len(result) == 0 {
		result = json.RawMessage("{}")
	}
	raw, err := Marshal(wireResponse{JSONRPC: "2.0", ID: id, Result: result})
	if err != nil {
		panic(fmt.Sprintf("jsonrpc: encode response: %v", err))
	}
	return &Message{Raw: raw, Kind: KindResponse, ID: id, Result: result}
}

// NewErrorResponse builds an error response frame. A nil id is written as
// null, as JSON-RPC requires when the request's id could not be read, and
// the Message's ID is then null too, as Parse would give it.
func NewErrorResponse(id json.RawMessage, e *Error) *Message {
	wid := id
	if wid == nil {
		wid = json.RawMessage("null")
	}
	raw, err := Marshal(wireResponse{JSONRPC: "2.0", ID: wid, Error: e})
	if err != nil {
		panic(fmt.Sprintf("jsonrpc: encode error response: %v", err))
	}
	return &Message{Raw: raw, Kind: KindErrorResponse, ID: wid, Error: e}
}

// WithID returns a copy of m whose id is replaced by id. Only the id's bytes
// change; everything else in the frame stays exactly as it was.
func WithID(m *Message, id json.RawMessage) (*Message, error) {
	start, end, err := memberSpan(m.Raw, "id")
	if err != nil {
		return nil, err
	}
	raw := make([]byte, 0, len(m.Raw)-(end-start)+len(id))
	raw = append(raw, m.Raw[:start]...)
	raw = append(raw, id...)
	raw = append(raw, m.Raw[end:]...)
	out, perr := Parse(raw)
	if perr != nil {
		return nil, perr
	}
	return out, nil
}

// ErrAmbiguousMember: an object has a member twice, or also under a name
// that differs only in case. JSON.parse keeps the last of equal names and
// Go's encoding/json also matches names case-insensitively, so readers
// would disagree about its value.
var ErrAmbiguousMember = errors.New("ambiguous member: the name appears more than once, or in another case")

// member is a top-level member of a JSON object and the span of its value.
type member struct {
	name       string
	start, end int
}

// members lists the top-level members of the JSON object in raw, which
// must be exactly one object.
func members(raw []byte) ([]member, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("not a JSON object")
	}
	var out []member
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, _ := tok.(string)
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			return nil, err
		}
		end := int(dec.InputOffset())
		out = append(out, member{name: key, start: end - len(val), end: end})
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON object")
	}
	return out, nil
}

// memberSpan finds the byte span of the value of a top-level member of the
// JSON object in raw. It fails with ErrAmbiguousMember when another member's
// name equals name case-insensitively.
func memberSpan(raw []byte, name string) (start, end int, err error) {
	ms, err := members(raw)
	if err != nil {
		return 0, 0, err
	}
	return findMember(ms, name)
}

func findMember(ms []member, name string) (start, end int, err error) {
	found := -1
	for i, m := range ms {
		if !strings.EqualFold(m.name, name) {
			continue
		}
		if found >= 0 || m.name != name {
			return 0, 0, fmt.Errorf("member %q: %w", name, ErrAmbiguousMember)
		}
		found = i
	}
	if found < 0 {
		return 0, 0, fmt.Errorf("no member %q", name)
	}
	return ms[found].start, ms[found].end, nil
}

// Lookup returns the raw value of a top-level member of a JSON object: nil
// and no error when it is absent, ErrAmbiguousMember when it is present
// twice or also under a name that differs only in case (servers disagree on
// which one counts), and another error when obj is not one JSON object.
func Lookup(obj json.RawMessage, name string) (json.RawMessage, error) {
	vals, err := LookupAll(obj, name)
	if err != nil {
		return nil, err
	}
	return vals[0], nil
}

// LookupAll is Lookup for several members, reading obj once: vals[i] is
// the value of names[i], nil when absent.
func LookupAll(obj json.RawMessage, names ...string) (vals []json.RawMessage, err error) {
	vals = make([]json.RawMessage, len(names))
	if len(bytes.TrimSpace(obj)) == 0 || isNull(obj) {
		return vals, nil
	}
	ms, err := members(obj)
	if err != nil {
		return nil, err
	}
	for i, name := range names {
		start, end, err := findMember(ms, name)
		if errors.Is(err, ErrAmbiguousMember) {
			return nil, err
		}
		if err == nil {
			vals[i] = obj[start:end]
		}
	}
	return vals, nil
}

// Member returns the raw value of a top-level member of a JSON object, or
// nil. It returns nil as well when the member is ambiguous: present twice,
// or also under a name that differs only in case.
func Member(obj json.RawMessage, name string) json.RawMessage {
	if len(obj) == 0 {
		return nil
	}
	start, end, err := memberSpan(obj, name)
	if err != nil {
		return nil
	}
	return obj[start:end]
}

// StringMember returns the string value of a top-level member of a JSON
// object, or "" when it is absent, ambiguous or not a string.
func StringMember(obj json.RawMessage, name string) string {
	raw := Member(obj, name)
	if len(raw) == 0 || raw[0] != '"' {
		return ""
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return ""
	}
	return s
}

// SetMember returns a copy of the JSON object obj with member name set to
// value. An existing member's value is replaced in place; a new member is
// appended. obj may be nil or empty, meaning {}. It fails when obj is not
// one JSON object, or when the member is ambiguous (see Member).
func SetMember(obj json.RawMessage, name string, value json.RawMessage) (json.RawMessage, error) {
	obj = bytes.TrimSpace(obj)
	if len(obj) == 0 || isNull(obj) {
		obj = json.RawMessage("{}")
	}
	ms, err := members(obj)
	if err != nil {
		return nil, err
	}
	start, end, err := findMember(ms, name)
	if err == nil {
		out := make([]byte, 0, len(obj)+len(value))
		out = append(out, obj[:start]...)
		out = append(out, value...)
		return append(out, obj[end:]...), nil
	}
	if errors.Is(err, ErrAmbiguousMember) {
		return nil, err
	}
	key, _ := Marshal(name)
	body := bytes.TrimSpace(obj[1 : len(obj)-1])
	out := make([]byte, 0, len(obj)+len(key)+len(value)+2)
	out = append(out, '{')
	out = append(out, body...)
	if len(body) > 0 {
		out = append(out, ',')
	}
	out = append(out, key...)
	out = append(out, ':')
	out = append(out, value...)
	return append(out, '}'), nil
}

// DeleteMembers returns a copy of the JSON object obj without the named
// top-level members (absent ones are ignored). The other members keep
// their values byte for byte, in order. It fails when obj is not one JSON
// object, or when a named member is ambiguous (see Member): removing one
// of two spellings would leave the other for a server to read.
func DeleteMembers(obj json.RawMessage, names ...string) (json.RawMessage, error) {
	ms, err := members(bytes.TrimSpace(obj))
	if err != nil {
		return nil, err
	}
	drop := make([]bool, len(ms))
	for _, name := range names {
		if _, _, err := findMember(ms, name); errors.Is(err, ErrAmbiguousMember) {
			return nil, err
		}
		for i, m := range ms {
			if m.name == name {
				drop[i] = true
			}
		}
	}
	trimmed := bytes.TrimSpace(obj)
	out := make([]byte, 0, len(trimmed))
	out = append(out, '{')
	for i, m := range ms {
		if drop[i] {
			continue
		}
		if len(out) > 1 {
			out = append(out, ',')
		}
		key, _ := Marshal(m.name)
		out = append(out, key...)
		out = append(out, ':')
		out = append(out, trimmed[m.start:m.end]...)
	}
	return append(out, '}'), nil
}
