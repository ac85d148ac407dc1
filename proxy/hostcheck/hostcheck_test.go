package hostcheck

import "testing"

func TestAllowed(t *testing.T) {
	for _, tc := range []struct {
		host    string
		allowed []string
		want    bool
	}{
		{"localhost:7070", nil, true},
		{"LOCALHOST", nil, true},
		{"127.0.0.1:7070", nil, true},
		{"127.8.9.10", nil, true},
		{"[::1]:7070", nil, true},
		{"::1", nil, true},
		{"evil.example:7070", nil, false},
		{"10.0.0.5:7070", nil, false},
		{"agenthelm.internal:7070", []string{"Agenthelm.Internal"}, true},
		{"anything", []string{"*"}, true},
		{"", nil, false},
	} {
		if got := Allowed(tc.host, tc.allowed); got != tc.want {
			t.Errorf("Allowed(%q, %v) = %v, want %v", tc.host, tc.allowed, got, tc.want)
		}
	}
}
