package upstream

import (
	"context"
	"strings"
	"testing"
)

func TestDialRejectsBadSpecs(t *testing.T) {
	tests := []struct {
		spec Spec
		want string
	}{
		{Spec{Name: "a"}, "neither a command nor a URL"},
		{Spec{Name: "b", Transport: "stdio"}, "needs a command"},
		{Spec{Name: "c", Transport: "websocket", URL: "http://127.0.0.1:1"}, `unknown transport "websocket"`},
		{Spec{Name: "d", Transport: "streamable-http"}, "needs a URL"},
		{Spec{Name: "e", URL: "ftp://127.0.0.1/x"}, "want an absolute http or https URL"},
		{Spec{Name: "f", Transport: "sse", URL: "/relative"}, "want an absolute http or https URL"},
	}
	for _, tt := range tests {
		_, err := Dial(context.Background(), tt.spec, &recorder{}, nil)
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), `"`+tt.spec.Name+`"`) {
			t.Errorf("Dial(%+v) = %v, want an error naming the upstream and saying %q", tt.spec, err, tt.want)
		}
	}
	if _, err := Dial(context.Background(), Spec{Name: "g", URL: "http://127.0.0.1:1"}, nil, nil); err == nil {
		t.Error("Dial accepted a nil Handler")
	}
}

// TestDialDefaultsTransport: a URL alone means streamable HTTP, a command
// alone means stdio.
func TestDialDefaultsTransport(t *testing.T) {
	conn, err := Dial(context.Background(), Spec{Name: "h", URL: "http://127.0.0.1:1/mcp"}, &recorder{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := conn.(*streamableConn); !ok {
		t.Errorf("Dial with a URL made a %T, want *streamableConn", conn)
	}
	closeConn(t, conn)

	cmd, env := childCommand("echo")
	conn, err = Dial(context.Background(), Spec{Name: "i", Command: cmd, Env: env}, &recorder{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := conn.(*stdioConn); !ok {
		t.Errorf("Dial with a command made a %T, want *stdioConn", conn)
	}
	closeConn(t, conn)
}
