package toolservers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/mark3labs/mcp-go/server"
)

// Path is the HTTP path at which Start serves MCP.
const Path = "/mcp"

// Running is an example server serving MCP over streamable HTTP.
type Running struct {
	// Server is the example server (*Hotel, *Payments or *Email).
	Server Server

	ln      net.Listener
	httpSrv *http.Server
	mcp     *server.StreamableHTTPServer
	served  chan error

	closeOnce sync.Once
	closeErr  error
}

// Start serves the example server called name (one of Names) over
// streamable HTTP on opts.Addr, 127.0.0.1:0 by default. ctx bounds only
// the start; the server runs until Close.
func Start(ctx context.Context, name string, opts Options) (*Running, error) {
	s, err := New(name, opts)
	if err != nil {
		return nil, err
	}
	return Serve(ctx, s, opts)
}

// Serve serves s over streamable HTTP on opts.Addr, 127.0.0.1:0 by
// default, at Path. ctx bounds only the start; the server runs until Close.
func Serve(ctx context.Context, s Server, opts Options) (*Running, error) {
	addr := opts.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s server: listen: %w", s.Name(), err)
	}
	streamable := server.NewStreamableHTTPServer(s.MCPServer(), server.WithStreamableHTTPLogger(log))
	mux := http.NewServeMux()
	mux.Handle(Path, streamable)
	r := &Running{
		Server: s,
		ln:     ln,
		mcp:    streamable,
		httpSrv: &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		},
		served: make(chan error, 1),
	}
	go func() {
		err := r.httpSrv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		r.served <- err
	}()
	log.Info("example server listening", "server", s.Name(), "url", r.URL())
	return r, nil
}

// URL is the server's MCP endpoint, e.g. http://127.0.0.1:40123/mcp.
func (r *Running) URL() string { return "http://" + r.ln.Addr().String() + Path }

// Close ends the MCP sessions and the HTTP server, waiting for open
// requests until ctx is done, then closes what is left. It is idempotent.
func (r *Running) Close(ctx context.Context) error {
	r.closeOnce.Do(func() {
		_ = r.mcp.Shutdown(ctx) // ends sessions; the HTTP server is ours
		err := r.httpSrv.Shutdown(ctx)
		if err != nil {
			_ = r.httpSrv.Close()
		}
		if serr := <-r.served; serr != nil {
			err = errors.Join(err, serr)
		}
		if err != nil {
			r.closeErr = fmt.Errorf("close %s server: %w", r.Server.Name(), err)
		}
	})
	return r.closeErr
}
