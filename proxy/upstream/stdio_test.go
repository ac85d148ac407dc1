package upstream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/agenthelm/agenthelm/internal/testservers"
	"github.com/agenthelm/agenthelm/proxy/jsonrpc"
)

const initialize2025 = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"agenthelm-test","version":"0.0.0"}}}`

// TestStdioEverything runs the real server-everything behind a shell
// pipeline that tees its stdout into a file, so the frames the Handler gets
// can be compared byte for byte with what the server wrote, and so that
// Close has a process group of three (sh, node, tee) to take down.
func TestStdioEverything(t *testing.T) {
	tee := filepath.Join(t.TempDir(), "stdout.jsonl")
	argv := append([]string{"sh", "-c", `"$@" | tee "$AGENTHELM_TEE"`, "sh"}, testservers.Everything(t)...)
	log, logs := testLogger(t)
	rec := &recorder{}
	conn, err := Dial(context.Background(), Spec{Name: "everything", Command: argv, Env: map[string]string{"AGENTHELM_TEE": tee}}, rec, log)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	sc := conn.(*stdioConn)
	t.Cleanup(func() { closeConn(t, conn) })

	send(t, conn, initialize2025)
	init := rec.response(t, "1")
	if got := jsonrpc.StringMember(init.msg.Result, "protocolVersion"); got != "2025-11-25" {
		t.Errorf("initialize result protocolVersion = %q, want 2025-11-25", got)
	}
	if init.related != nil {
		t.Errorf("stdio frame related = %s, want nil", init.related)
	}
	send(t, conn, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)

	send(t, conn, `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`)
	var list struct {
		Tools []struct{ Name string } `json:"tools"`
	}
	if err := json.Unmarshal(rec.response(t, "2").msg.Result, &list); err != nil {
		t.Fatalf("decode tools/list result: %v", err)
	}
	var names []string
	for _, tool := range list.Tools {
		names = append(names, tool.Name)
	}
	t.Logf("server-everything tools: %v", names)
	for _, want := range []string{"echo", "trigger-long-running-operation"} {
		if !slices.Contains(names, want) {
			t.Errorf("tools/list lacks %q: %v", want, names)
		}
	}

	send(t, conn, `{"jsonrpc":"2.0","id":"echo-1","method":"tools/call","params":{"name":"echo","arguments":{"message":"h\u00e9llo <b>&amp;</b>"}}}`)
	echo := rec.response(t, `"echo-1"`)
	if !strings.Contains(string(echo.msg.Result), "Echo: héllo <b>&amp;</b>") {
		t.Errorf("echo result = %s, want the message echoed", echo.msg.Result)
	}

	send(t, conn, `{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"trigger-long-running-operation","arguments":{"duration":0.3,"steps":3},"_meta":{"progressToken":"p-4"}}}`)
	rec.response(t, "4")
	rec.mu.Lock()
	respAt := rec.indexOfResponseLocked("4")
	var progressAt []int
	for i, f := range rec.frames {
		if f.msg.Method == "notifications/progress" && strings.Contains(string(f.msg.Params), `"p-4"`) {
			progressAt = append(progressAt, i)
		}
	}
	rec.mu.Unlock()
	if len(progressAt) != 3 {
		t.Errorf("got %d progress notifications, want 3", len(progressAt))
	}
	for _, i := range progressAt {
		if i > respAt {
			t.Errorf("progress notification at %d arrived after the response at %d", i, respAt)
		}
	}

	members := groupMembers(sc.pgid)
	if len(members) < 3 {
		t.Errorf("process group %d has %d members %v, want sh, node and tee", sc.pgid, len(members), members)
	}
	start := time.Now()
	closeConn(t, conn)
	t.Logf("Close took %v", time.Since(start))
	if err := rec.connClosed(t); !errors.Is(err, ErrClosed) {
		t.Errorf("ConnClosed(%v), want ErrClosed", err)
	}
	rec.checkClosedOnce(t)
	for _, pid := range members {
		if processAlive(pid) {
			t.Errorf("process %d of the server's group is still alive after Close", pid)
		}
	}
	if err := conn.Send(context.Background(), frame(t, `{"jsonrpc":"2.0","id":9,"method":"ping"}`), SendOptions{}); !errors.Is(err, ErrClosed) {
		t.Errorf("Send after Close = %v, want ErrClosed", err)
	}

	// Byte fidelity: the frames delivered are exactly the lines written.
	written, err := os.ReadFile(tee)
	if err != nil {
		t.Fatal(err)
	}
	var lines [][]byte
	for _, l := range bytes.Split(written, []byte("\n")) {
		if len(bytes.TrimSpace(l)) > 0 {
			lines = append(lines, l)
		}
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(lines) != len(rec.frames) {
		t.Fatalf("server wrote %d lines, Handler got %d frames", len(lines), len(rec.frames))
	}
	for i, f := range rec.frames {
		if !bytes.Equal(f.msg.Raw, lines[i]) {
			t.Errorf("frame %d differs from what the server wrote:\n got %s\nwant %s", i, f.msg.Raw, lines[i])
		}
	}

	if l := logs.String(); !strings.Contains(l, "upstream=everything") || !strings.Contains(l, "Starting default (STDIO) server") {
		t.Errorf("server's stderr not logged with upstream=everything; log:\n%s", l)
	}
}

// TestStdioKilled kills the server: the request in flight fails, then
// ConnClosed reports ErrExited with the exit state, and Send refuses.
func TestStdioKilled(t *testing.T) {
	log, _ := testLogger(t)
	rec := &recorder{}
	conn, err := Dial(context.Background(), Spec{Name: "everything", Command: testservers.Everything(t)}, rec, log)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { closeConn(t, conn) })
	send(t, conn, initialize2025)
	rec.response(t, "1")
	send(t, conn, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	send(t, conn, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"trigger-long-running-operation","arguments":{"duration":30,"steps":3}}}`)

	pid := conn.(*stdioConn).cmd.Process.Pid
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := rec.failure(t, "2"); !errors.Is(err, ErrExited) {
		t.Errorf("RequestFailed(2, %v), want ErrExited", err)
	}
	err = rec.connClosed(t)
	var ee *ExitError
	if !errors.As(err, &ee) || !errors.Is(err, ErrExited) {
		t.Fatalf("ConnClosed(%v), want an *ExitError wrapping ErrExited", err)
	}
	if !strings.Contains(ee.State, "killed") {
		t.Errorf("exit state %q, want it to say killed", ee.State)
	}
	if err := conn.Send(context.Background(), frame(t, `{"jsonrpc":"2.0","id":3,"method":"ping"}`), SendOptions{}); !errors.Is(err, ErrExited) {
		t.Errorf("Send after exit = %v, want ErrExited", err)
	}
	<-conn.Done()
	if !errors.Is(conn.Err(), ErrExited) {
		t.Errorf("Err() = %v, want ErrExited", conn.Err())
	}
	rec.checkClosedOnce(t)
	if processAlive(pid) {
		t.Errorf("killed server %d not reaped", pid)
	}
}

func dialChild(t *testing.T, mode string, spec Spec) (Conn, *recorder, *syncBuffer) {
	t.Helper()
	log, logs := testLogger(t)
	rec := &recorder{}
	spec.Name = "child-" + mode
	spec.Command, spec.Env = childCommand(mode)
	conn, err := Dial(context.Background(), spec, rec, log)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { closeConn(t, conn) })
	return conn, rec, logs
}

func TestStdioOversizedFrameSkipped(t *testing.T) {
	conn, rec, logs := dialChild(t, "oversize", Spec{MaxFrameBytes: 1024})
	rec.waitFor(t, "notifications/after", func() bool { return len(rec.frames) > 0 })
	rec.mu.Lock()
	first := rec.frames[0].msg.Method
	rec.mu.Unlock()
	if first != "notifications/after" {
		t.Errorf("first frame = %s, want notifications/after (the oversized one skipped)", first)
	}
	if !strings.Contains(logs.String(), "frame exceeds the size limit") {
		t.Errorf("no log line for the oversized frame; log:\n%s", logs.String())
	}
	send(t, conn, `{"jsonrpc":"2.0","id":1,"method":"ping","params":{}}`)
	rec.response(t, "1")
}

func TestStdioMalformedLineDropped(t *testing.T) {
	conn, rec, logs := dialChild(t, "malformed", Spec{})
	rec.waitFor(t, "notifications/after", func() bool { return len(rec.frames) > 0 })
	if l := logs.String(); !strings.Contains(l, "upstream frame dropped") || !strings.Contains(l, "this is not json") {
		t.Errorf("no log line with an excerpt of the malformed line; log:\n%s", l)
	}
	send(t, conn, `{"jsonrpc":"2.0","id":1,"method":"ping","params":{}}`)
	rec.response(t, "1")
	if err := conn.Err(); err != nil {
		t.Errorf("conn gone after a malformed line: %v", err)
	}
}

func TestStdioExitReportsStatusAndStderr(t *testing.T) {
	conn, rec, _ := dialChild(t, "exit", Spec{})
	err := rec.connClosed(t)
	var ee *ExitError
	if !errors.As(err, &ee) || !errors.Is(err, ErrExited) {
		t.Fatalf("ConnClosed(%v), want an *ExitError wrapping ErrExited", err)
	}
	if ee.State != "exit status 3" {
		t.Errorf("exit state %q, want exit status 3", ee.State)
	}
	if len(ee.Stderr) != stderrTailLines || ee.Stderr[len(ee.Stderr)-1] != "boom: cannot continue" || slices.Contains(ee.Stderr, "stderr line 1") {
		t.Errorf("stderr tail = %q, want the last %d lines ending in the boom line", ee.Stderr, stderrTailLines)
	}
	if !strings.Contains(err.Error(), "boom: cannot continue") || !strings.Contains(err.Error(), "child-exit") {
		t.Errorf("error %q does not name the upstream and its last stderr", err)
	}
	if err := conn.Send(context.Background(), frame(t, `{"jsonrpc":"2.0","method":"notifications/x"}`), SendOptions{}); !errors.Is(err, ErrExited) {
		t.Errorf("Send after exit = %v, want ErrExited", err)
	}
	rec.checkClosedOnce(t)
}

// TestStdioCloseKillsGrandchild: the server exits when stdin closes, but a
// process it started ignores SIGTERM and holds stdout; Close must not hang
// on it nor leave it behind.
func TestStdioCloseKillsGrandchild(t *testing.T) {
	conn, rec, _ := dialChild(t, "grandchild", Spec{})
	rec.waitFor(t, "grandchild pid", func() bool { return len(rec.frames) > 0 })
	var p struct{ PID int }
	rec.mu.Lock()
	_ = json.Unmarshal(rec.frames[0].msg.Params, &p)
	rec.mu.Unlock()
	if p.PID == 0 || !processAlive(p.PID) {
		t.Fatalf("grandchild pid %d not running", p.PID)
	}
	pgid := conn.(*stdioConn).pgid
	start := time.Now()
	closeConn(t, conn)
	t.Logf("Close took %v", time.Since(start))
	waitUntil(t, "grandchild gone", func() bool { return !processAlive(p.PID) })
	if m := groupMembers(pgid); len(m) > 0 {
		t.Errorf("process group %d still has %v", pgid, m)
	}
	if err := rec.connClosed(t); !errors.Is(err, ErrClosed) {
		t.Errorf("ConnClosed(%v), want ErrClosed", err)
	}
	rec.checkClosedOnce(t)
}

// TestStdioCloseEscalates: a server that ignores stdin EOF and SIGTERM is
// killed after the grace periods.
func TestStdioCloseEscalates(t *testing.T) {
	defer func(g time.Duration) { stdioCloseGrace = g }(stdioCloseGrace)
	stdioCloseGrace = 100 * time.Millisecond
	conn, rec, logs := dialChild(t, "stubborn", Spec{})
	send(t, conn, `{"jsonrpc":"2.0","id":1,"method":"ping"}`)
	rec.response(t, "1")
	pid := conn.(*stdioConn).pgid
	start := time.Now()
	closeConn(t, conn)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Close took %v", d)
	}
	if processAlive(pid) {
		t.Errorf("stubborn server %d survived Close", pid)
	}
	if !strings.Contains(logs.String(), "sending SIGKILL") {
		t.Errorf("no SIGKILL escalation logged; log:\n%s", logs.String())
	}
	// Close is idempotent.
	if err := conn.Close(context.Background()); err != nil {
		t.Errorf("second Close: %v", err)
	}
	rec.checkClosedOnce(t)
}

// TestStdioSendCompactsAndSerializes: frames with line breaks are compacted
// to one line; concurrent Sends never interleave.
func TestStdioSendCompactsAndSerializes(t *testing.T) {
	conn, rec, _ := dialChild(t, "echo", Spec{})
	pretty := "{\n  \"jsonrpc\": \"2.0\",\n  \"id\": 1,\n  \"method\": \"tools/call\",\n  \"params\": {\"name\": \"x\",\r\n \"arguments\": {\"s\": \"a\\nb\"}}\n}"
	send(t, conn, pretty)
	got := rec.response(t, "1").msg
	if want := `{"echo":{"name":"x","arguments":{"s":"a\nb"}}}`; string(got.Result) != want {
		t.Errorf("echoed params = %s, want %s", got.Result, want)
	}

	const n = 50
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			raw := fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"ping","params":{"pad":%q}}`, 100+i, strings.Repeat("y", 20000))
			if err := conn.Send(context.Background(), frame(t, raw), SendOptions{}); err != nil {
				t.Errorf("Send: %v", err)
			}
		})
	}
	wg.Wait()
	rec.waitFor(t, "all responses", func() bool {
		for i := range n {
			if rec.indexOfResponseLocked(fmt.Sprint(100+i)) < 0 {
				return false
			}
		}
		return true
	})
}

func TestStdioCommandNotFound(t *testing.T) {
	_, err := Dial(context.Background(), Spec{Name: "ghost", Command: []string{"agenthelm-no-such-command", "--flag"}}, &recorder{}, nil)
	if err == nil {
		t.Fatal("Dial succeeded for a missing command")
	}
	if !errors.Is(err, exec.ErrNotFound) || !strings.Contains(err.Error(), `"ghost"`) || !strings.Contains(err.Error(), "agenthelm-no-such-command") {
		t.Errorf("Dial error %q should wrap exec.ErrNotFound and name the upstream and the command", err)
	}
}

// TestStdioPendingFailedOnClose is the stdio side of the guarantee that
// every accepted request ends in a response or RequestFailed before
// ConnClosed.
func TestStdioPendingFailedOnClose(t *testing.T) {
	conn, rec, _ := dialChild(t, "silent", Spec{})
	send(t, conn, `{"jsonrpc":"2.0","id":"never","method":"tools/call","params":{"name":"x"}}`)
	closeConn(t, conn)
	if err := rec.failure(t, `"never"`); !errors.Is(err, ErrClosed) {
		t.Errorf("RequestFailed(never, %v), want ErrClosed", err)
	}
	rec.checkClosedOnce(t)
}

// TestStdioWriteAbandoned: a server that stops reading fills the pipe; the
// Send's ctx ends the write, and since half a frame went out, the conn is
// closed rather than left corrupt.
func TestStdioWriteAbandoned(t *testing.T) {
	conn, rec, _ := dialChild(t, "deaf", Spec{})
	big := frame(t, fmt.Sprintf(`{"jsonrpc":"2.0","id":1,"method":"ping","params":{"pad":%q}}`, strings.Repeat("z", 1<<20)))

	// A ctx that already ended sends nothing and leaves the conn open.
	done, cancelDone := context.WithCancel(context.Background())
	cancelDone()
	if err := conn.Send(done, big, SendOptions{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Send with a cancelled ctx = %v, want context.Canceled", err)
	}
	if err := conn.Err(); err != nil {
		t.Fatalf("conn closed by a Send that wrote nothing: %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := conn.Send(ctx, big, SendOptions{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Send into a full pipe = %v, want DeadlineExceeded", err)
	}
	if err := conn.Err(); !errors.Is(err, ErrClosed) {
		t.Errorf("Err() after a half-written frame = %v, want ErrClosed", err)
	}
	if err := rec.connClosed(t); !errors.Is(err, ErrClosed) {
		t.Errorf("ConnClosed(%v), want ErrClosed", err)
	}
	rec.mu.Lock()
	failed := len(rec.failed)
	rec.mu.Unlock()
	if failed != 0 {
		t.Errorf("RequestFailed called for a request Send refused")
	}
	rec.checkClosedOnce(t)
}
