package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/agenthelm/agenthelm/proxy/jsonrpc"
)

// ServeStdio runs the stdio front door: it reads newline-delimited JSON-RPC
// from in, relays it to upstreamName (one connection for the process's
// lifetime, as an agent that launched the server itself would have), and
// writes everything the agent should see to out.
//
// It returns nil when in ends (the agent closed our stdin) after open
// requests were answered or grace ran out, and an error when the upstream
// went away, so that the agent sees its server end just as it would without
// agenthelm in between.
func (p *Proxy) ServeStdio(ctx context.Context, upstreamName string, in io.Reader, out io.Writer, grace time.Duration) error {
	s, err := p.openSession(ctx, upstreamName, "stdio")
	if err != nil {
		return err
	}
	st := newStream()
	s.attachFallback(st)
	shared := sink{st: st}

	// The writer: everything for the agent goes through st, in order.
	writeDone := make(chan error, 1)
	wctx, stopWriter := context.WithCancel(context.Background())
	go func() {
		_, err := pump(wctx, st, &lineWriter{w: bufio.NewWriter(out)})
		writeDone <- err
	}()

	readDone := make(chan error, 1)
	go func() {
		lr := jsonrpc.NewLineReader(in, int(p.opts.MaxBodyBytes))
		for {
			line, err := lr.Next()
			if errors.Is(err, jsonrpc.ErrFrameTooLarge) {
				st.push(jsonrpc.NewErrorResponse(nil, jsonrpc.Errorf(jsonrpc.CodeInvalidRequest, "invalid request: %v", err)), false)
				continue
			}
			if err != nil {
				if errors.Is(err, io.EOF) {
					err = nil
				}
				readDone <- err
				return
			}
			msg, rpcErr := jsonrpc.Parse(line)
			if rpcErr != nil {
				var id []byte
				if msg != nil {
					id = msg.ID
				}
				st.push(jsonrpc.NewErrorResponse(id, rpcErr), false)
				continue
			}
			s.handle(ctx, msg, shared, nil)
		}
	}()

	var result error
	select {
	case err := <-readDone:
		// The agent is done: calls not sent yet are withdrawn, sent ones
		// may finish within grace so that their outcome is known.
		if err != nil {
			s.log.Warn("reading from the agent failed", "err", err)
		}
		s.withdrawUnsent()
		dctx, cancel := context.WithTimeout(ctx, grace)
		s.drain(dctx)
		cancel()
	case <-s.ctx.Done():
	case <-sessionGone(s):
		s.mu.Lock()
		result = s.closeErr
		s.mu.Unlock()
		result = fmt.Errorf("upstream %q: %w", upstreamName, result)
	case <-ctx.Done():
		s.withdrawUnsent()
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
		s.drain(dctx)
		cancel()
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeWait)
	_ = p.closeSession(cctx, s)
	cancel()
	// Flush what is queued (answers to the last requests, error answers
	// for ones the upstream dropped), then stop the writer.
	st.push(nil, true)
	select {
	case <-writeDone:
	case <-time.After(2 * time.Second):
		stopWriter()
		<-writeDone
	}
	stopWriter()
	return result
}

// sessionGone is closed when the session's upstream connection is gone.
func sessionGone(s *Session) <-chan struct{} {
	if s.conn == nil {
		return nil
	}
	return s.conn.Done()
}

// lineWriter writes frames as lines (the stdio transport).
type lineWriter struct{ w *bufio.Writer }

func (lw *lineWriter) write(frames []*jsonrpc.Message, _ bool) error {
	for _, f := range frames {
		if f == nil {
			continue
		}
		if _, err := lw.w.Write(f.Raw); err != nil {
			return err
		}
		if err := lw.w.WriteByte('\n'); err != nil {
			return err
		}
	}
	return lw.w.Flush()
}
