package main

import (
	"context"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/agenthelm/agenthelm/internal/syncbuf"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// lockedBuffer is a bytes.Buffer safe for the server's and the test's
// goroutines.
type lockedBuffer = syncbuf.Buffer

func callBook(t *testing.T, ctx context.Context, cs *mcp.ClientSession) {
	t.Helper()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "book_hotel", Arguments: map[string]any{"guest": "Ana", "hotel": "H", "nights": 1}})
	if err != nil {
		t.Fatalf("book_hotel: %v", err)
	}
	if res.IsError || !strings.Contains(res.Content[0].(*mcp.TextContent).Text, `"booking_id":"bk_0001"`) {
		t.Errorf("book_hotel = %+v, want booking bk_0001", res.Content[0])
	}
}

func TestServeHTTP(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	srvCtx, stop := context.WithCancel(ctx)
	var stderr lockedBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(srvCtx, []string{"--server", "hotel", "--listen", "127.0.0.1:0"}, strings.NewReader(""), io.Discard, &stderr)
	}()
	urlRE := regexp.MustCompile(`serving MCP \(streamable HTTP\) at (\S+)`)
	var url string
	for url == "" {
		select {
		case err := <-done:
			t.Fatalf("run ended early: %v\n%s", err, stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
		if m := urlRE.FindStringSubmatch(stderr.String()); m != nil {
			url = m[1]
		}
	}
	client := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "0"}, nil)
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url}, nil)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	callBook(t, ctx, cs)
	_ = cs.Close()
	stop()
	if err := <-done; err != nil {
		t.Errorf("run after cancel = %v, want nil", err)
	}
}

func TestServeStdio(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	toServer, clientOut := io.Pipe()
	clientIn, fromServer := io.Pipe()
	var stderr lockedBuffer
	done := make(chan error, 1)
	go func() {
		err := run(ctx, []string{"--server", "hotel", "--stdio"}, toServer, fromServer, &stderr)
		fromServer.Close()
		done <- err
	}()
	client := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "0"}, nil)
	cs, err := client.Connect(ctx, &mcp.IOTransport{Reader: clientIn, Writer: clientOut}, nil)
	if err != nil {
		t.Fatalf("connect over stdio: %v\n%s", err, stderr.String())
	}
	callBook(t, ctx, cs)
	_ = cs.Close() // closes our end of stdin: the server sees EOF
	if err := <-done; err != nil {
		t.Errorf("run after stdin closed = %v, want nil\n%s", err, stderr.String())
	}
}

func TestFlagErrors(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"--server", "orders"},
		{"--server", "hotel", "--stdio", "--listen", "127.0.0.1:0"},
		{"--server", "hotel", "extra"},
	} {
		if err := run(context.Background(), args, strings.NewReader(""), io.Discard, io.Discard); err == nil {
			t.Errorf("run(%q) = nil, want an error", args)
		}
	}
}
