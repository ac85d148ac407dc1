package upstream

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/agenthelm/agenthelm/proxy/jsonrpc"
)

// Timings of the stdio shutdown sequence. Variables so that tests can
// shorten them.
var (
	// stdioCloseGrace is how long Close waits for the server to exit by
	// itself after its stdin was closed, and again after SIGTERM.
	stdioCloseGrace = 2 * time.Second
	// stdioDrainGrace is how long, once the server process is gone, the
	// readers get to reach the end of stdout and stderr before whatever
	// still holds the pipes (a grandchild) is killed.
	stdioDrainGrace = 500 * time.Millisecond
)

const (
	stderrTailLines = 10      // stderr lines kept for the exit error
	stderrLineBytes = 4 << 10 // longer stderr lines are cut in logs
)

// ExitError says that a stdio server exited by itself. It wraps ErrExited.
type ExitError struct {
	Upstream string
	// State is the process's exit state ("exit status 1", "signal: killed").
	State string
	// Stderr holds the last lines the server wrote to stderr.
	Stderr []string
}

func (e *ExitError) Error() string {
	msg := fmt.Sprintf("upstream %q process exited (%s)", e.Upstream, e.State)
	if len(e.Stderr) > 0 {
		msg += "; last stderr: " + strings.Join(e.Stderr, " | ")
	}
	return msg
}

func (e *ExitError) Unwrap() error { return ErrExited }

// stdioConn is an MCP server running as a child process, exchanging
// newline-delimited frames over its stdin and stdout.
type stdioConn struct {
	name  string
	h     Handler
	log   *slog.Logger
	limit int

	cmd     *exec.Cmd
	pgid    int      // the child's process group (its own pid)
	stdin   *os.File // our end of the child's stdin
	stdout  *os.File // our end of the child's stdout
	stderr  *os.File // our end of the child's stderr
	writeMu sync.Mutex
	pending pending

	mu      sync.Mutex
	err     error    // why the conn is gone; nil while it is open
	tail    []string // last stderr lines
	readers sync.WaitGroup

	closeOnce sync.Once
	exited    chan struct{} // closed once the child is reaped
	done      chan struct{} // closed after ConnClosed returned
}

var _ Conn = (*stdioConn)(nil)

// dialStdio starts the server. ctx only bounds start-up: the process lives
// until Close or until it exits by itself.
func dialStdio(ctx context.Context, spec Spec, h Handler, log *slog.Logger) (Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("start upstream %q: %w", spec.Name, err)
	}
	// Not exec.CommandContext: cancelling would SIGKILL only the leader, and
	// Close owns the shutdown of the whole process group.
	cmd := exec.Command(spec.Command[0], spec.Command[1:]...)
	cmd.Dir = spec.Dir
	cmd.Env = os.Environ()
	for _, k := range slices.Sorted(maps.Keys(spec.Env)) {
		cmd.Env = append(cmd.Env, k+"="+spec.Env[k])
	}
	// Its own process group, so that Close can signal the server and every
	// process it started (npx leaves grandchildren), and so that a Ctrl-C
	// meant for agenthelm does not reach it first.
	cmd.SysProcAttr = childProcAttr()

	// Plain os.Pipe rather than cmd.StdoutPipe: Cmd.Wait closes the pipes
	// it made as soon as the process exits, which could drop the last frames
	// before we read them. With *os.File ends the child writes straight into
	// the pipe and we read it to the end.
	var files []*os.File
	closeAll := func() {
		for _, f := range files {
			f.Close()
		}
	}
	pipe := func() (r, w *os.File, err error) {
		r, w, err = os.Pipe()
		if err == nil {
			files = append(files, r, w)
		}
		return r, w, err
	}
	inR, inW, err := pipe()
	if err != nil {
		return nil, fmt.Errorf("start upstream %q: stdin pipe: %w", spec.Name, err)
	}
	outR, outW, err := pipe()
	if err != nil {
		closeAll()
		return nil, fmt.Errorf("start upstream %q: stdout pipe: %w", spec.Name, err)
	}
	errR, errW, err := pipe()
	if err != nil {
		closeAll()
		return nil, fmt.Errorf("start upstream %q: stderr pipe: %w", spec.Name, err)
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, errW
	if err := cmd.Start(); err != nil {
		closeAll()
		return nil, fmt.Errorf("start upstream %q (command %q): %w", spec.Name, spec.Command[0], err)
	}
	// The child holds its own copies now.
	inR.Close()
	outW.Close()
	errW.Close()

	c := &stdioConn{
		name:   spec.Name,
		h:      h,
		log:    log,
		limit:  spec.MaxFrameBytes,
		cmd:    cmd,
		pgid:   cmd.Process.Pid,
		stdin:  inW,
		stdout: outR,
		stderr: errR,
		exited: make(chan struct{}),
		done:   make(chan struct{}),
	}
	c.log.Debug("upstream started", "pid", c.pgid, "command", spec.Command[0])
	c.readers.Add(2)
	go c.readStdout()
	go c.readStderr()
	go c.supervise()
	return c, nil
}

// Send writes one frame and a newline to the server's stdin.
func (c *stdioConn) Send(ctx context.Context, msg *jsonrpc.Message, _ SendOptions) error {
	if err := c.Err(); err != nil {
		return err
	}
	frame := msg.Raw
	// A frame must be one line. JSON can carry line breaks only as
	// insignificant whitespace (inside strings they are escaped), so
	// compacting loses nothing but that whitespace.
	if bytes.ContainsAny(frame, "\r\n") {
		var b bytes.Buffer
		if err := json.Compact(&b, frame); err != nil {
			return fmt.Errorf("send to upstream %q: %w", c.name, err)
		}
		frame = b.Bytes()
	}
	line := make([]byte, 0, len(frame)+1)
	line = append(append(line, frame...), '\n')

	if msg.IsRequest() && !c.pending.add(msg.ID) {
		return c.Err()
	}
	midway, err := c.write(ctx, line)
	if err == nil {
		return nil
	}
	stillPending := msg.IsRequest() && c.pending.remove(msg.ID)
	if midway {
		// Only now, with the request no longer pending, so that its failure
		// is reported once, by this error.
		c.terminate()
	}
	if msg.IsRequest() && !stillPending {
		// The conn went away meanwhile and already failed the request
		// through RequestFailed: report it once only.
		return nil
	}
	return err
}

// write writes one whole line. Writes are serialized so that frames never
// interleave. If ctx ends while the pipe is full, the write is abandoned; a
// line abandoned halfway (midway) would corrupt every later frame, so the
// conn is then marked gone, and the caller terminates the server.
func (c *stdioConn) write(ctx context.Context, line []byte) (midway bool, err error) {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if err := c.Err(); err != nil {
		return false, err
	}
	if ctx.Err() != nil {
		return false, fmt.Errorf("send to upstream %q: %w", c.name, context.Cause(ctx))
	}
	// Abandon the write when ctx ends, but only this write: the guard keeps
	// a late callback from setting a deadline the next writer would hit.
	var guard sync.Mutex
	writing := true
	stop := context.AfterFunc(ctx, func() {
		guard.Lock()
		defer guard.Unlock()
		if writing {
			_ = c.stdin.SetWriteDeadline(time.Now())
		}
	})
	n, err := c.stdin.Write(line)
	guard.Lock()
	writing = false
	guard.Unlock()
	if !stop() {
		_ = c.stdin.SetWriteDeadline(time.Time{})
	}
	if err == nil {
		return false, nil
	}
	if gone := c.Err(); gone != nil {
		return false, gone
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		if n > 0 {
			c.mu.Lock()
			if c.err == nil {
				c.err = fmt.Errorf("upstream %q: write abandoned midway: %w", c.name, ErrClosed)
			}
			c.mu.Unlock()
		}
		return n > 0, fmt.Errorf("send to upstream %q: %w", c.name, context.Cause(ctx))
	}
	return false, fmt.Errorf("send to upstream %q: %w", c.name, err)
}

// terminate asks the server of a conn already marked gone to stop;
// supervise reaps it and reports ConnClosed, and Close escalates to SIGKILL
// if needed.
func (c *stdioConn) terminate() {
	c.log.Warn("closing upstream", "reason", c.Err().Error())
	c.stdin.Close()
	c.signalGroup(syscall.SIGTERM)
}

// readStdout delivers every frame the server writes.
func (c *stdioConn) readStdout() {
	defer c.readers.Done()
	lr := jsonrpc.NewLineReader(c.stdout, c.limit)
	for {
		line, err := lr.Next()
		if errors.Is(err, jsonrpc.ErrFrameTooLarge) {
			c.log.Warn("upstream frame dropped", "reason", err.Error())
			continue
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, os.ErrClosed) {
				c.log.Warn("upstream stdout read failed", "err", err)
			}
			return
		}
		msg, perr := jsonrpc.Parse(line)
		if perr != nil {
			c.log.Warn("upstream frame dropped", "reason", perr.Message, "excerpt", excerpt(line))
			continue
		}
		if msg.IsResponse() {
			c.pending.remove(msg.ID)
		}
		c.h.HandleUpstream(msg, nil)
	}
}

// readStderr logs what the server writes to stderr, line by line, and keeps
// the last lines for the exit error.
func (c *stdioConn) readStderr() {
	defer c.readers.Done()
	r := bufio.NewReaderSize(c.stderr, stderrLineBytes)
	for {
		line, isPrefix, err := r.ReadLine()
		if len(line) > 0 {
			text := excerptLine(line)
			c.log.Info("upstream stderr", "line", text)
			c.mu.Lock()
			c.tail = append(c.tail, text)
			if len(c.tail) > stderrTailLines {
				c.tail = c.tail[len(c.tail)-stderrTailLines:]
			}
			c.mu.Unlock()
			for isPrefix && err == nil { // drop the rest of an overlong line
				_, isPrefix, err = r.ReadLine()
			}
		}
		if err != nil {
			return
		}
	}
}

func excerptLine(b []byte) string {
	s := strings.ToValidUTF8(string(bytes.TrimRight(b, "\r")), "\uFFFD")
	return strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\t' {
			return ' '
		}
		return r
	}, s)
}

// supervise reaps the server, cleans up its process group, lets the readers
// finish, fails the requests still waiting, and reports ConnClosed.
func (c *stdioConn) supervise() {
	defer close(c.done)
	waitErr := c.cmd.Wait()
	state := "exit status 0"
	if c.cmd.ProcessState != nil {
		state = c.cmd.ProcessState.String()
	} else if waitErr != nil {
		state = waitErr.Error()
	}
	c.mu.Lock()
	exitedByItself := c.err == nil
	if exitedByItself {
		// A first version for Sends racing with the shutdown; the final one,
		// with all of stderr read, replaces it below. Errors handed out are
		// never modified.
		c.err = &ExitError{Upstream: c.name, State: state, Stderr: slices.Clone(c.tail)}
	}
	c.mu.Unlock()
	close(c.exited)
	// The stdin pipe is useless now; closing it also fails a blocked write.
	c.stdin.Close()

	// Whatever the server started may live on in its group and keep the
	// pipes open. The leader is reaped, but its pid stays reserved as the
	// group id while any member is alive, so signalling the group cannot hit
	// an unrelated process.
	readersDone := make(chan struct{})
	go func() { c.readers.Wait(); close(readersDone) }()
	c.signalGroup(syscall.SIGTERM)
	select {
	case <-readersDone:
	case <-time.After(stdioDrainGrace):
		c.signalGroup(syscall.SIGKILL)
		// Closing our ends unblocks readers stuck on a pipe that an
		// unkillable or escaped process still holds.
		c.stdout.Close()
		c.stderr.Close()
		<-readersDone
	}
	c.signalGroup(syscall.SIGKILL)
	c.stdout.Close()
	c.stderr.Close()

	c.mu.Lock()
	if exitedByItself {
		c.err = &ExitError{Upstream: c.name, State: state, Stderr: slices.Clone(c.tail)}
	}
	err := c.err
	c.mu.Unlock()
	if exitedByItself {
		c.log.Warn("upstream exited", "state", state)
	} else {
		c.log.Debug("upstream stopped", "state", state)
	}
	for _, id := range c.pending.drain() {
		c.h.RequestFailed(id, err)
	}
	c.h.ConnClosed(err)
}

// signalGroup signals every process in the server's process group.
func (c *stdioConn) signalGroup(sig syscall.Signal) {
	if err := syscall.Kill(-c.pgid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		c.log.Warn("signal upstream process group", "signal", sig.String(), "err", err)
	}
}

// Close closes the server's stdin, gives it stdioCloseGrace to exit, then
// sends SIGTERM to its process group, and SIGKILL after another grace
// period (at once when ctx ends). It waits until the process is reaped and
// ConnClosed has returned, or until ctx ends.
func (c *stdioConn) Close(ctx context.Context) error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		if c.err == nil {
			c.err = fmt.Errorf("upstream %q: %w", c.name, ErrClosed)
		}
		c.mu.Unlock()
		c.stdin.Close()
		if c.waitExit(ctx, stdioCloseGrace) {
			return
		}
		c.log.Debug("upstream did not exit after stdin closed; sending SIGTERM")
		c.signalGroup(syscall.SIGTERM)
		if c.waitExit(ctx, stdioCloseGrace) {
			return
		}
		c.log.Warn("upstream did not exit after SIGTERM; sending SIGKILL")
		c.signalGroup(syscall.SIGKILL)
	})
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("close upstream %q: %w", c.name, ctx.Err())
	}
}

// waitExit reports whether the process was reaped within d (cut short when
// ctx ends).
func (c *stdioConn) waitExit(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-c.exited:
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	return false
}

func (c *stdioConn) Done() <-chan struct{} { return c.done }

func (c *stdioConn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}
