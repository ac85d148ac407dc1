package telemetry

import (
	"encoding/json"
	"testing"

	"github.com/agenthelm/agenthelm/config"
)

func mustRedactor(t testing.TB, keys []string, paths ...string) *Redactor {
	t.Helper()
	cfg := config.Redaction{Keys: keys}
	for _, p := range paths {
		e, err := config.CompileExpr(p)
		if err != nil {
			t.Fatalf("CompileExpr(%q): %v", p, err)
		}
		cfg.Paths = append(cfg.Paths, e)
	}
	r, err := NewRedactor(cfg)
	if err != nil {
		t.Fatalf("NewRedactor: %v", err)
	}
	return r
}

func TestRedactorJSON(t *testing.T) {
	r := DefaultRedactor()
	tests := []struct {
		name, in, want string
	}{
		{"no secrets keep every byte", `{ "b":1,  "a" : [1, 2.50, "x"] }`, `{ "b":1,  "a" : [1, 2.50, "x"] }`},
		{"top-level key", `{"user":"bob","password":"hunter2"}`, `{"user":"bob","password":"[REDACTED]"}`},
		{"case-insensitive", `{"PassWord":"x","Token":"y"}`, `{"PassWord":"[REDACTED]","Token":"[REDACTED]"}`},
		{"separators ignored", `{"apiKey":"k1","API-KEY":"k2","Api_Key":"k3","api_keys":"kept"}`,
			`{"apiKey":"[REDACTED]","API-KEY":"[REDACTED]","Api_Key":"[REDACTED]","api_keys":"kept"}`},
		{"nested at any depth", `{"a":{"b":[{"secret":{"x":1}},{"ok":"authorization"}]}}`,
			`{"a":{"b":[{"secret":"[REDACTED]"},{"ok":"authorization"}]}}`},
		{"non-string values", `{"token":12345,"secret":null,"password":true}`,
			`{"token":"[REDACTED]","secret":"[REDACTED]","password":"[REDACTED]"}`},
		{"escaped key", `{"pass\u0077ord":"x"}`, `{"pass\u0077ord":"[REDACTED]"}`},
		{"card number string", `{"pan":"4111111111111111","n":"4111111111111112"}`,
			`{"pan":"[REDACTED]","n":"4111111111111112"}`},
		{"card number grouped", `{"c":"4111 1111 1111 1111","d":"3782-822463-10005"}`,
			`{"c":"[REDACTED]","d":"[REDACTED]"}`},
		{"card number inside text", `{"note":"pay with 5555555555554444 today"}`,
			`{"note":"pay with [REDACTED] today"}`},
		{"card-like number literal is kept", `{"id":4111111111111111}`, `{"id":4111111111111111}`},
		{"too long digit run is not a card", `{"id":"41111111111111110000"}`, `{"id":"41111111111111110000"}`},
		{"array root", `[{"token":"a"},"4111111111111111"]`, `[{"token":"[REDACTED]"},"[REDACTED]"]`},
		{"string with escapes around card", `{"m":"\"4111111111111111\"\n"}`, `{"m":"\"[REDACTED]\"\n"}`},
		{"scalar root", `"hello"`, `"hello"`},
		{"whitespace before value", "{\"token\" :\n  \"abc\" }", "{\"token\" :\n  \"[REDACTED]\" }"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(r.JSON(json.RawMessage(tt.in)))
			if got != tt.want {
				t.Errorf("JSON(%s) = %s, want %s", tt.in, got, tt.want)
			}
			if !json.Valid([]byte(got)) {
				t.Errorf("JSON(%s) = %s: not valid JSON", tt.in, got)
			}
		})
	}
}

func TestRedactorJSONReturnsInputWhenClean(t *testing.T) {
	in := json.RawMessage(`{"a":1}`)
	out := DefaultRedactor().JSON(in)
	if &out[0] != &in[0] {
		t.Errorf("JSON of a clean document copied it")
	}
}

func TestRedactorPaths(t *testing.T) {
	r := mustRedactor(t, []string{"password"},
		".args.card.number",
		".args.items[].ssn # a comment",
		".result.content[0].text",
		".args.absent.deeper",
		".args | tostring", // not a path expression: selects nothing
		".request.body.card",
		".response.body.token",
	)
	tests := []struct {
		name, member, in, want string
	}{
		{"path under args", "args", `{"card":{"number":"x","exp":"12/30"}}`, `{"card":{"number":"[REDACTED]","exp":"12/30"}}`},
		{"iterating path", "args", `{"items":[{"ssn":"1"},{"ssn":"2","k":3}]}`, `{"items":[{"ssn":"[REDACTED]"},{"ssn":"[REDACTED]","k":3}]}`},
		{"absent member is not created", "args", `{"card":{}}`, `{"card":{}}`},
		{"paths of another member do not apply", "result", `{"card":{"number":"x"}}`, `{"card":{"number":"x"}}`},
		{"result path", "result", `{"content":[{"type":"text","text":"s3cr3t"},{"text":"b"}]}`,
			`{"content":[{"type":"text","text":"[REDACTED]"},{"text":"b"}]}`},
		{"HTTP request path", "request", `{"method":"POST","body":{"card":"4","amount":5}}`, `{"method":"POST","body":{"card":"[REDACTED]","amount":5}}`},
		{"HTTP response path masks the body and its text copy", "response",
			`{"content":[{"type":"text","text":"{\"token\":\"t0k\",\"id\":7}"}],"structuredContent":{"status":201,"headers":{},"body":{"token":"t0k","id":7}},"isError":false}`,
			`{"content":[{"type":"text","text":"[REDACTED]"}],"structuredContent":{"status":201,"headers":{},"body":{"token":"[REDACTED]","id":7}},"isError":false}`},
		{"HTTP response without the path is untouched", "response",
			`{"content":[{"type":"text","text":"ok"}],"structuredContent":{"status":200,"body":"ok"}}`,
			`{"content":[{"type":"text","text":"ok"}],"structuredContent":{"status":200,"body":"ok"}}`},
		{"keys still apply", "args", `{"password":"p","card":{"number":1}}`, `{"password":"[REDACTED]","card":{"number":"[REDACTED]"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(r.Member(tt.member, json.RawMessage(tt.in))); got != tt.want {
				t.Errorf("Member(%q, %s) = %s, want %s", tt.member, tt.in, got, tt.want)
			}
		})
	}
	// JSON evaluates the paths against the whole call document.
	doc := `{"args":{"card":{"number":"x"}},"result":{"content":[{"text":"t"}]}}`
	want := `{"args":{"card":{"number":"[REDACTED]"}},"result":{"content":[{"text":"[REDACTED]"}]}}`
	if got := string(r.JSON(json.RawMessage(doc))); got != want {
		t.Errorf("JSON(%s) = %s, want %s", doc, got, want)
	}
}

func TestNewRedactorBadPath(t *testing.T) {
	_, err := NewRedactor(config.Redaction{Paths: []config.Expr{{Source: ".args.["}}})
	if err == nil {
		t.Fatal("NewRedactor with an unparsable path: no error")
	}
}

func TestRedactorString(t *testing.T) {
	r := DefaultRedactor()
	tests := []struct{ in, want string }{
		{"nothing to see", "nothing to see"},
		{"Authorization: Bearer abc.def", "Authorization: [REDACTED]"},
		{"GET /x?token=abc&page=2", "GET /x?token=[REDACTED]&page=2"},
		{"password=hunter2 user=bob", "password=[REDACTED] user=bob"},
		{`login failed: "password": "p w"`, `login failed: "password": "[REDACTED]"`},
		{"mytoken=keep", "mytoken=keep"},
		{"api-key: k1; next", "api-key: [REDACTED]; next"},
		{"card 4111-1111-1111-1111 declined", "card [REDACTED] declined"},
		{"call 555 4111111111111111 now", "call 555 [REDACTED] now"},
		{"order 1234567890123 ok", "order 1234567890123 ok"},
		{`{"secret":"x"}`, `{"secret":"[REDACTED]"}`},
		{"token:", "token:"},
	}
	for _, tt := range tests {
		if got := r.String(tt.in); got != tt.want {
			t.Errorf("String(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestRedactorNilAndEmpty(t *testing.T) {
	var r *Redactor
	in := json.RawMessage(`{"password":"x"}`)
	if got := string(r.JSON(in)); got != string(in) {
		t.Errorf("nil JSON(%s) = %s", in, got)
	}
	if got := r.String("password=x"); got != "password=x" {
		t.Errorf("nil String = %q", got)
	}
	empty := mustRedactor(t, nil)
	if got := string(empty.JSON(in)); got != string(in) {
		t.Errorf("no keys: JSON(%s) = %s", in, got)
	}
	// Card numbers are masked even without keys.
	if got := string(empty.JSON(json.RawMessage(`["4111111111111111"]`))); got != `["[REDACTED]"]` {
		t.Errorf("no keys: card = %s", got)
	}
	// Not JSON: handled as text.
	if got := string(DefaultRedactor().JSON(json.RawMessage(`token=abc {`))); got != `token=[REDACTED] {` {
		t.Errorf("JSON(invalid) = %s", got)
	}
}

func TestLuhn(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"4111111111111111", true},
		{"5555555555554444", true},
		{"378282246310005", true},
		{"4111111111111112", false},
		{"79927398713", true},
		{"79927398710", false},
	}
	for _, tt := range tests {
		if got := luhn(tt.in); got != tt.want {
			t.Errorf("luhn(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func FuzzRedactorJSON(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `{"password":"x","b":[1,"4111111111111111"]}`, `[]`, `"x"`, `{"a":{"token":{}}}`} {
		f.Add(s)
	}
	r := mustRedactor(f, []string{"password", "token"}, ".a.b")
	f.Fuzz(func(t *testing.T, s string) {
		out := r.JSON(json.RawMessage(s))
		if json.Valid([]byte(s)) && !json.Valid(out) {
			t.Fatalf("JSON(%s) = %s: not valid JSON", s, out)
		}
	})
}
