package upstream

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agenthelm/agenthelm/internal/syncbuf"
	"github.com/agenthelm/agenthelm/proxy/jsonrpc"
)

// recorder is a Handler that keeps everything it is told, and flags any
// call made after ConnClosed.
type recorder struct {
	mu          sync.Mutex
	frames      []recFrame
	failed      []recFail
	closed      bool
	closedErr   error
	closedCalls int
	lateCalls   []string // Handler calls after ConnClosed
}

type recFrame struct {
	msg     *jsonrpc.Message
	related json.RawMessage
}

type recFail struct {
	id  json.RawMessage
	err error
}

var _ Handler = (*recorder)(nil)

func (r *recorder) HandleUpstream(msg *jsonrpc.Message, related json.RawMessage) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		r.lateCalls = append(r.lateCalls, "HandleUpstream "+string(msg.Raw))
	}
	r.frames = append(r.frames, recFrame{msg: msg, related: related})
}

func (r *recorder) RequestFailed(id json.RawMessage, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		r.lateCalls = append(r.lateCalls, "RequestFailed "+string(id))
	}
	r.failed = append(r.failed, recFail{id: id, err: err})
}

func (r *recorder) ConnClosed(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closedCalls++
	r.closed = true
	r.closedErr = err
}

// waitFor polls cond (called with r locked) until it holds.
func (r *recorder) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		r.mu.Lock()
		ok := cond()
		r.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			r.mu.Lock()
			defer r.mu.Unlock()
			t.Fatalf("timed out waiting for %s; frames: %s; failed: %v; closed: %v (%v)",
				what, r.describeLocked(), r.failed, r.closed, r.closedErr)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (r *recorder) describeLocked() string {
	var parts []string
	for _, f := range r.frames {
		parts = append(parts, fmt.Sprintf("[related=%s] %s", f.related, excerpt(f.msg.Raw)))
	}
	return strings.Join(parts, "\n  ")
}

// indexOfResponse returns the index of the response to id, or -1.
func (r *recorder) indexOfResponseLocked(id string) int {
	for i, f := range r.frames {
		if f.msg.IsResponse() && jsonrpc.IDKey(f.msg.ID) == jsonrpc.IDKey(json.RawMessage(id)) {
			return i
		}
	}
	return -1
}

// response waits for the response to id and returns it with its related id.
func (r *recorder) response(t *testing.T, id string) recFrame {
	t.Helper()
	var f recFrame
	r.waitFor(t, "response to "+id, func() bool {
		i := r.indexOfResponseLocked(id)
		if i >= 0 {
			f = r.frames[i]
		}
		return i >= 0
	})
	return f
}

// failure waits for RequestFailed(id) and returns its error.
func (r *recorder) failure(t *testing.T, id string) error {
	t.Helper()
	var err error
	r.waitFor(t, "RequestFailed("+id+")", func() bool {
		for _, f := range r.failed {
			if jsonrpc.IDKey(f.id) == jsonrpc.IDKey(json.RawMessage(id)) {
				err = f.err
				return true
			}
		}
		return false
	})
	return err
}

// connClosed waits for ConnClosed and returns its error.
func (r *recorder) connClosed(t *testing.T) error {
	t.Helper()
	var err error
	r.waitFor(t, "ConnClosed", func() bool { err = r.closedErr; return r.closed })
	return err
}

// checkClosedOnce verifies ConnClosed came exactly once and nothing after it.
func (r *recorder) checkClosedOnce(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closedCalls != 1 {
		t.Errorf("ConnClosed called %d times, want 1", r.closedCalls)
	}
	if len(r.lateCalls) > 0 {
		t.Errorf("Handler called after ConnClosed: %v", r.lateCalls)
	}
}

func (r *recorder) framesWithMethod(method string) []recFrame {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []recFrame
	for _, f := range r.frames {
		if f.msg.Method == method {
			out = append(out, f)
		}
	}
	return out
}

// frame parses raw, failing the test if it is not a valid frame.
func frame(t *testing.T, raw string) *jsonrpc.Message {
	t.Helper()
	m, err := jsonrpc.Parse([]byte(raw))
	if err != nil {
		t.Fatalf("jsonrpc.Parse(%s): %v", raw, err)
	}
	return m
}

func send(t *testing.T, c Conn, raw string) {
	t.Helper()
	if err := c.Send(context.Background(), frame(t, raw), SendOptions{}); err != nil {
		t.Fatalf("Send(%s): %v", raw, err)
	}
}

// syncBuffer collects log output from several goroutines.
type syncBuffer = syncbuf.Buffer

// testLogger logs to a buffer the test can search, printed when the test
// fails so that failures show the conn's own view.
func testLogger(t *testing.T) (*slog.Logger, *syncBuffer) {
	buf := &syncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("conn log:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func closeConn(t *testing.T, c Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Close(ctx); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// groupMembers lists the live (non-zombie) processes in process group pgid.
func groupMembers(pgid int) []int {
	entries, _ := filepath.Glob("/proc/[0-9]*/stat")
	var out []int
	for _, e := range entries {
		b, err := os.ReadFile(e)
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...; comm may hold spaces.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		fields := strings.Fields(s[i+1:])
		if len(fields) < 3 || fields[0] == "Z" || fields[0] == "X" {
			continue
		}
		if g, _ := strconv.Atoi(fields[2]); g == pgid {
			pid, _ := strconv.Atoi(strings.Fields(s)[0])
			out = append(out, pid)
		}
	}
	return out
}

// processAlive reports whether pid exists and is not a zombie.
func processAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return false
	}
	fields := strings.Fields(s[i+1:])
	return len(fields) > 0 && fields[0] != "Z" && fields[0] != "X"
}
