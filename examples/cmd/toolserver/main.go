// Command toolserver runs one of agenthelm's example MCP tool servers
// (hotel, payments or email) on its own, over streamable HTTP or stdio, so
// that agenthelm can be tried against servers it does not start itself.
//
//	go run ./examples/cmd/toolserver --server hotel                # http://127.0.0.1:9101/mcp
//	go run ./examples/cmd/toolserver --server payments             # http://127.0.0.1:9102/mcp
//	go run ./examples/cmd/toolserver --server email                # http://127.0.0.1:9103/mcp
//	go run ./examples/cmd/toolserver --server hotel --stdio        # MCP on stdin/stdout
//
// State lives in memory and is gone when the program ends.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/agenthelm/agenthelm/examples/toolservers"
	"github.com/mark3labs/mcp-go/server"
)

// defaultPorts are the loopback ports examples/configs/demo.yaml expects.
var defaultPorts = map[string]string{"hotel": "9101", "payments": "9102", "email": "9103"}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "toolserver:", err)
		os.Exit(1)
	}
}

// run is the whole program; tests call it directly. It serves until ctx is
// done (HTTP) or stdin ends (stdio).
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("toolserver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("server", "", "example server to run: "+strings.Join(toolservers.Names, ", "))
	listen := fs.String("listen", "", "address to serve streamable HTTP on (default 127.0.0.1:9101, 9102, 9103 for hotel, payments, email)")
	stdio := fs.Bool("stdio", false, "serve MCP over stdin and stdout instead of HTTP")
	failSend := fs.Bool("fail-send", false, "email: fail every send with \"mailbox unavailable\" (addresses at "+toolservers.BounceDomain+" always fail)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: toolserver --server hotel|payments|email [--listen ADDR | --stdio] [--fail-send]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *name == "" {
		fs.Usage()
		return errors.New("--server is required")
	}
	if *stdio && *listen != "" {
		return errors.New("give either --stdio or --listen, not both")
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	opts := toolservers.Options{Addr: *listen, FailSend: *failSend, Logger: logger}
	s, err := toolservers.New(*name, opts)
	if err != nil {
		return err
	}

	if *stdio {
		// stdout carries only MCP frames; logs go to stderr.
		ss := server.NewStdioServer(s.MCPServer())
		ss.SetErrorLogger(log.New(stderr, "toolserver: ", log.LstdFlags))
		err := ss.Listen(ctx, stdin, stdout)
		if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, io.EOF) {
			return nil
		}
		return err
	}

	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:" + defaultPorts[*name]
	}
	r, err := toolservers.Serve(ctx, s, opts)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "%s: serving MCP (streamable HTTP) at %s\n", *name, r.URL())
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	return r.Close(sctx)
}
