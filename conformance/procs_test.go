package conformance

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// lineLog keeps the last lines a process wrote, and lets callers wait for a
// line that matches.
type lineLog struct {
	mu      sync.Mutex
	lines   []string
	dropped int
	changed chan struct{} // closed and replaced on every new line
	closed  bool
}

const lineLogMax = 2000

func newLineLog() *lineLog { return &lineLog{changed: make(chan struct{})} }

func (l *lineLog) add(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, line)
	if len(l.lines) > lineLogMax {
		n := len(l.lines) - lineLogMax
		l.lines = append([]string(nil), l.lines[n:]...)
		l.dropped += n
	}
	close(l.changed)
	l.changed = make(chan struct{})
}

func (l *lineLog) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		l.closed = true
		close(l.changed)
	}
}

// snapshot returns the lines kept so far and the absolute index of the first.
func (l *lineLog) snapshot() (lines []string, first int, wait <-chan struct{}, closed bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...), l.dropped, l.changed, l.closed
}

// tail returns the last n lines joined for a failure message.
func (l *lineLog) tail(n int) string {
	lines, _, _, _ := l.snapshot()
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitLine returns the first line (from absolute index from on) that match
// accepts. It gives up when ctx ends or the stream closes.
func (l *lineLog) waitLine(ctx context.Context, from int, match func(string) bool) (string, int, error) {
	for {
		lines, first, wait, closed := l.snapshot()
		for i := max(from-first, 0); i < len(lines); i++ {
			if match(lines[i]) {
				return lines[i], first + i + 1, nil
			}
		}
		from = first + len(lines)
		if closed {
			return "", from, errors.New("output ended")
		}
		select {
		case <-ctx.Done():
			return "", from, ctx.Err()
		case <-wait:
		}
	}
}

func (l *lineLog) readFrom(r io.Reader, wg *sync.WaitGroup) {
	defer wg.Done()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		l.add(sc.Text())
	}
}

// proc is a child process in its own process group, with its stdout and
// stderr lines kept in out.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *lineLog
	done chan struct{}
	err  error // Wait's result, valid once done is closed
}

// startProc starts argv in its own process group. Its output is read into a
// lineLog; stdin is /dev/null. Like every process this suite starts, it gets
// SIGKILL if the test binary dies (Pdeathsig), so that a run killed midway
// (a -timeout, `go test | head`) leaves nothing behind.
func startProc(name string, argv []string, env []string, dir string) (*proc, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, out: newLineLog(), done: make(chan struct{})}
	var wg sync.WaitGroup
	wg.Add(2)
	go p.out.readFrom(stdout, &wg)
	go p.out.readFrom(stderr, &wg)
	go func() {
		wg.Wait() // Wait must not run before the pipes are drained
		p.err = cmd.Wait()
		p.out.close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends sig to the process (not its group: a daemon under test must
// stop its own children), waits up to grace, then kills the whole group.
// It returns the process's exit error and whether it had to be killed.
func (p *proc) stop(sig syscall.Signal, grace time.Duration) (exitErr error, killed bool) {
	if !p.exited() {
		_ = p.cmd.Process.Signal(sig)
	}
	select {
	case <-p.done:
	case <-time.After(grace):
		killed = true
		_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
		<-p.done
	}
	// Anything left in the group (the process itself has gone) is ours too.
	_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
	return p.err, killed
}

// procID names a process instance: pid plus start time, so that a reused
// pid is not mistaken for the process we saw.
type procID struct {
	pid   int
	start uint64
	comm  string
}

func (id procID) String() string { return fmt.Sprintf("%d(%s)", id.pid, id.comm) }

// readStat reads pid's parent, start time and command name from /proc.
func readStat(pid int) (ppid int, start uint64, comm string, ok bool) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, 0, "", false
	}
	s := string(b)
	open, closeParen := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || closeParen < open {
		return 0, 0, "", false
	}
	comm = s[open+1 : closeParen]
	f := strings.Fields(s[closeParen+1:])
	// f[0] is the state (field 3); ppid is field 4, starttime field 22.
	if len(f) < 20 {
		return 0, 0, "", false
	}
	if f[0] == "Z" {
		return 0, 0, "", false // a zombie has already exited
	}
	ppid, _ = strconv.Atoi(f[1])
	start, _ = strconv.ParseUint(f[19], 10, 64)
	return ppid, start, comm, true
}

// descendants lists the live descendants of pid.
func descendants(pid int) []procID {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := map[int][]procID{}
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		ppid, start, comm, ok := readStat(n)
		if !ok {
			continue
		}
		children[ppid] = append(children[ppid], procID{pid: n, start: start, comm: comm})
	}
	var out []procID
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			out = append(out, c)
			queue = append(queue, c.pid)
		}
	}
	return out
}

func (id procID) alive() bool {
	_, start, _, ok := readStat(id.pid)
	return ok && start == id.start
}

// reapLeftovers waits up to grace for the processes in ids to end, then
// kills those still running and returns them.
func reapLeftovers(ids []procID, grace time.Duration) []procID {
	deadline := time.Now().Add(grace)
	for {
		var alive []procID
		for _, id := range ids {
			if id.alive() {
				alive = append(alive, id)
			}
		}
		if len(alive) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			for _, id := range alive {
				_ = syscall.Kill(id.pid, syscall.SIGKILL)
			}
			return alive
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// listenAddrs returns the local addresses of the TCP sockets listening on
// port, as /proc/net/tcp{,6} shows them (hex, e.g. "0100007F" for 127.0.0.1).
func listenAddrs(port int) []string {
	var out []string
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fields := strings.Fields(line)
			if len(fields) < 4 || fields[3] != "0A" { // 0A = LISTEN
				continue
			}
			addr, portHex, ok := strings.Cut(fields[1], ":")
			if !ok {
				continue
			}
			if p, err := strconv.ParseUint(portHex, 16, 32); err == nil && int(p) == port {
				out = append(out, addr)
			}
		}
	}
	return out
}

// isLoopbackHex reports whether a /proc/net/tcp address is 127.0.0.0/8 or ::1.
func isLoopbackHex(addr string) bool {
	switch len(addr) {
	case 8: // little-endian IPv4: the first octet is the last byte
		return strings.HasSuffix(addr, "7F")
	case 32:
		return addr == "00000000000000000000000001000000"
	}
	return false
}
