package journal

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/google/go-cmp/cmp"
)

func TestOpenCreatesAndReopens(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "new", "journal")
	j, err := Open(ctx, Options{Dir: dir, Sync: true})
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	mustAppend(t, j, Batch{Saga: "s1", Events: []Event{ev("a", `{"n":1}`)}, Head: &Head{Status: "open"}})
	if err := j.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	j = openTest(t, Options{Dir: dir, Sync: true})
	events, err := j.Events(ctx, "s1")
	if err != nil || len(events) != 1 || string(events[0].Body) != `{"n":1}` {
		t.Fatalf("Events(s1) after reopen = %v, %v", events, err)
	}
	if err := j.Healthy(); err != nil {
		t.Errorf("Healthy() = %v", err)
	}
}

func TestOpenLockedInProcess(t *testing.T) {
	j := openTest(t, Options{Sync: true})
	_, err := Open(context.Background(), Options{Dir: j.dir, Sync: true})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open = %v, want ErrLocked", err)
	}
	want := fmt.Sprintf("journal: directory %s is in use by this process (pid %d: the journal is already open)", j.dir, os.Getpid())
	if err.Error() != want {
		t.Errorf("second Open error =\n%s\nwant\n%s", err, want)
	}
	// The failed Open must not have disturbed the first one.
	mustAppend(t, j, Batch{Saga: "s", Events: []Event{ev("a", "")}})
}

func TestOpenLockedByOtherProcess(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "JOURNAL_TEST_HELPER=hold", "JOURNAL_TEST_DIR="+dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	out := bufio.NewReader(stdout)
	line, err := out.ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("helper said %q, %v", line, err)
	}

	_, err = Open(context.Background(), Options{Dir: dir, Sync: true})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("Open while another process holds it = %v, want ErrLocked", err)
	}
	want := fmt.Sprintf("journal: directory %s is in use by another agenthelm process (pid %d; only one process can open a journal: stop it, or reach it through its admin API)",
		dir, cmd.Process.Pid)
	if err.Error() != want {
		t.Errorf("error =\n%s\nwant\n%s", err, want)
	}

	// Once the other process closes the journal, it opens here.
	_ = stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper exited with %v", err)
	}
	openTest(t, Options{Dir: dir, Sync: true})
}

// snapshotDir returns each file's contents, to prove a refused directory was
// left untouched.
func snapshotDir(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = string(b)
	}
	return files
}

func TestOpenRefusesForeignOrCorruptDirectory(t *testing.T) {
	garbage := "this is not a badger file, just some bytes that happen to be here\n"
	for _, tc := range []struct {
		name    string
		files   map[string]string
		wantIs  error
		wantMsg string
	}{
		{"unrelated files", map[string]string{"notes.txt": garbage, "photo.jpg": garbage},
			ErrNotJournal, "is not empty and holds no journal (found notes.txt, photo.jpg, no MANIFEST); refusing to use it, nothing was changed"},
		{"badger-named garbage without a manifest", map[string]string{"000001.sst": garbage, "000001.vlog": garbage, "00001.mem": garbage},
			ErrNotJournal, "is not empty and holds no journal (found 000001.sst, 000001.vlog, 00001.mem, no MANIFEST)"},
		{"garbage manifest", map[string]string{"MANIFEST": garbage},
			ErrCorrupt, "is corrupt or not an agenthelm journal; nothing in it was deleted (move it aside, or restore it from a backup): manifest has bad magic"},
		{"empty manifest", map[string]string{"MANIFEST": ""},
			ErrCorrupt, "is corrupt or not an agenthelm journal"},
		{"garbage key registry", map[string]string{"MANIFEST": "Bdgr\x00\x00\x00\x08", "KEYREGISTRY": garbage},
			ErrCorrupt, "is corrupt or not an agenthelm journal"},
		{"garbage value log", map[string]string{"MANIFEST": "Bdgr\x00\x00\x00\x08", "000001.vlog": garbage},
			ErrCorrupt, "is corrupt or not an agenthelm journal"},
		{"garbage memtable log", map[string]string{"MANIFEST": "Bdgr\x00\x00\x00\x08", "00001.mem": garbage},
			ErrCorrupt, "is corrupt or not an agenthelm journal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, content := range tc.files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			before := snapshotDir(t, dir)
			_, err := Open(context.Background(), Options{Dir: dir, Sync: true})
			if !errors.Is(err, tc.wantIs) {
				t.Fatalf("Open = %v, want %v", err, tc.wantIs)
			}
			if !strings.HasPrefix(err.Error(), "journal: directory "+dir+" ") || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("Open error = %q, want it to name the directory and contain %q", err, tc.wantMsg)
			}
			after := snapshotDir(t, dir)
			for name, content := range before {
				if after[name] != content {
					t.Errorf("file %s was changed or removed", name)
				}
			}
		})
	}
}

func TestOpenRefusesForeignBadgerDatabase(t *testing.T) {
	dir := t.TempDir()
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(txn *badger.Txn) error { return txn.Set([]byte("user:1"), []byte("alice")) }); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = Open(context.Background(), Options{Dir: dir, Sync: true})
	if !errors.Is(err, ErrNotJournal) || !strings.Contains(err.Error(), "holds a Badger database that is not an agenthelm journal") {
		t.Fatalf("Open(foreign badger) = %v, want ErrNotJournal", err)
	}
}

func TestOpenRefusesNewerFormat(t *testing.T) {
	dir := t.TempDir()
	j := openTest(t, Options{Dir: dir, Sync: true})
	if err := j.db.Update(func(txn *badger.Txn) error { return txn.Set(keyFormat, []byte(`{"format":2}`)) }); err != nil {
		t.Fatal(err)
	}
	if err := j.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, err := Open(context.Background(), Options{Dir: dir, Sync: true})
	want := fmt.Sprintf("journal: directory %s holds a journal in format 2, written by a newer agenthelm; this build reads formats up to 1: upgrade agenthelm to open it", dir)
	if !errors.Is(err, ErrFormat) || err.Error() != want {
		t.Fatalf("Open(format 2) = %v, want %q", err, want)
	}
}

func TestSyncOffAndRetentionFloorWarn(t *testing.T) {
	var logs logBuffer
	j := openTest(t, Options{Sync: false, Retention: time.Hour, Logger: bufferLogger(&logs)})
	if j.opts.Retention != MinRetention {
		t.Errorf("Retention = %v, want it raised to %v", j.opts.Retention, MinRetention)
	}
	for _, want := range []string{"journal sync is off", "journal retention raised to the minimum"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
}

func TestCloseIsIdempotentAndRefusesLaterCalls(t *testing.T) {
	ctx := context.Background()
	j := openTest(t, Options{Sync: true})
	mustAppend(t, j, Batch{Saga: "s", Events: []Event{ev("a", "")}, Head: &Head{Status: "open"}})
	for i := range 2 {
		if err := j.Close(ctx); err != nil {
			t.Fatalf("Close #%d: %v", i+1, err)
		}
	}
	if _, err := j.Append(ctx, Batch{Saga: "s", Events: []Event{ev("a", "")}}); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Close = %v, want ErrClosed", err)
	}
	if _, err := j.Events(ctx, "s"); !errors.Is(err, ErrClosed) {
		t.Errorf("Events after Close = %v, want ErrClosed", err)
	}
	if _, err := j.List(ctx, Filter{}); !errors.Is(err, ErrClosed) {
		t.Errorf("List after Close = %v, want ErrClosed", err)
	}
	if err := j.GC(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("GC after Close = %v, want ErrClosed", err)
	}
	if err := j.Healthy(); !errors.Is(err, ErrClosed) {
		t.Errorf("Healthy after Close = %v, want ErrClosed", err)
	}
}

// appendAsync starts n Appends, each of one event to saga, and returns
// their results in a channel.
type appendResult struct {
	seqs []uint64
	err  error
}

func appendAsync(j *Journal, ctx context.Context, saga string, n int) <-chan appendResult {
	out := make(chan appendResult, n)
	for i := range n {
		go func() {
			seqs, err := j.Append(ctx, Batch{Saga: saga, Events: []Event{ev("k", strconv.Itoa(i))}})
			out <- appendResult{seqs, err}
		}()
	}
	return out
}

func TestCloseDrainsQueuedAppends(t *testing.T) {
	ctx := context.Background()
	g := newGate()
	dir := t.TempDir()
	j := openTest(t, Options{Dir: dir, Sync: true, commit: g.commit})

	first := appendAsync(j, ctx, "s", 1)
	<-g.entered // the committer is inside the first commit
	rest := appendAsync(j, ctx, "s", 20)
	waitQueued(t, j, 20)

	closed := make(chan error, 1)
	go func() { closed <- j.Close(ctx) }()
	close(g.release)
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	if r := <-first; r.err != nil {
		t.Errorf("first Append: %v", r.err)
	}
	for range 20 {
		if r := <-rest; r.err != nil {
			t.Errorf("queued Append: %v", r.err)
		}
	}
	j2 := openTest(t, Options{Dir: dir, Sync: true})
	events, err := j2.Events(ctx, "s")
	if err != nil || len(events) != 21 {
		t.Fatalf("after reopen: %d events, %v; want 21", len(events), err)
	}
}

func TestCloseWithExpiredContextFailsQueuedAppends(t *testing.T) {
	ctx := context.Background()
	g := newGate()
	dir := t.TempDir()
	j := openTest(t, Options{Dir: dir, Sync: true, commit: g.commit})

	first := appendAsync(j, ctx, "s", 1)
	<-g.entered
	rest := appendAsync(j, ctx, "s", 5)
	waitQueued(t, j, 5)

	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	closed := make(chan error, 1)
	go func() { closed <- j.Close(cctx) }()
	for range 5 {
		if r := <-rest; !errors.Is(r.err, ErrClosed) {
			t.Errorf("queued Append during Close = %v, want ErrClosed", r.err)
		}
	}
	// The commit in progress still completes, and Close waits for it.
	close(g.release)
	if r := <-first; r.err != nil {
		t.Errorf("Append being committed during Close: %v", r.err)
	}
	if err := <-closed; err == nil || !strings.Contains(err.Error(), "5 queued appends failed with ErrClosed") {
		t.Errorf("Close = %v, want it to report the abandoned appends", err)
	}
	j2 := openTest(t, Options{Dir: dir, Sync: true})
	if events, err := j2.Events(ctx, "s"); err != nil || len(events) != 1 {
		t.Errorf("after reopen: %d events, %v; want exactly the committed one", len(events), err)
	}
}

func TestWriteFailureFailsTheBatchAndLaterAppends(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	injected := errors.New("injected: input/output error")
	release := make(chan struct{})
	entered := make(chan struct{}, 10)
	var mu sync.Mutex
	commits := 0
	// Commit 1 is held until ten more Appends are queued behind it; those
	// ten form commit 2, which fails.
	hook := func(txn *badger.Txn) error {
		mu.Lock()
		commits++
		n := commits
		mu.Unlock()
		switch n {
		case 1:
			entered <- struct{}{}
			<-release
			return txn.Commit()
		case 2:
			txn.Discard()
			return injected
		}
		t.Errorf("commit %d reached Badger after the journal failed", n)
		return txn.Commit()
	}
	j := openTest(t, Options{Dir: dir, Sync: true, commit: hook})

	first := appendAsync(j, ctx, "s", 1)
	<-entered
	batch := appendAsync(j, ctx, "s", 10)
	waitQueued(t, j, 10)
	close(release)

	if r := <-first; r.err != nil {
		t.Fatalf("first Append: %v", r.err)
	}
	for range 10 {
		r := <-batch
		if !errors.Is(r.err, ErrFailed) || !errors.Is(r.err, injected) || r.seqs != nil {
			t.Errorf("Append in the failed commit = %v, %v; want ErrFailed wrapping the I/O error", r.seqs, r.err)
		}
	}
	mu.Lock()
	if commits != 2 {
		t.Errorf("%d commits, want 2 (the ten Appends share one)", commits)
	}
	mu.Unlock()
	wantMsg := "journal: a write failed; appends are refused until the journal is reopened: injected: input/output error"
	if err := j.Healthy(); !errors.Is(err, ErrFailed) || err.Error() != wantMsg {
		t.Errorf("Healthy() = %v, want %q", err, wantMsg)
	}
	// Later appends fail fast with the same error, without reaching Badger.
	_, err := j.Append(ctx, Batch{Saga: "other", Events: []Event{ev("x", "")}})
	if !errors.Is(err, ErrFailed) || err != j.Healthy() {
		t.Errorf("Append after failure = %v, want the same ErrFailed", err)
	}
	if err := j.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}

	// Only the acknowledged event is in the journal.
	j2 := openTest(t, Options{Dir: dir, Sync: true})
	events, err := j2.Events(ctx, "s")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]uint64{1}, seqsOf(events)); diff != "" {
		t.Errorf("events after reopen (-want +got):\n%s", diff)
	}
	if _, err := j2.Events(ctx, "other"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Events(other) = %v, want ErrNotFound", err)
	}
	if err := j2.Healthy(); err != nil {
		t.Errorf("Healthy() after reopen = %v", err)
	}
}

func seqsOf(events []Event) []uint64 {
	var s []uint64
	for _, e := range events {
		s = append(s, e.Seq)
	}
	return s
}

// TestCrashKeepsAcknowledgedEvents kills a process that is appending from 8
// goroutines and checks that every event it acknowledged is on disk.
func TestCrashKeepsAcknowledgedEvents(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "JOURNAL_TEST_HELPER=append", "JOURNAL_TEST_DIR="+dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	type ack struct {
		saga string
		seq  uint64
		body string
	}
	var acks []ack
	sc := bufio.NewScanner(stdout)
	killed := false
	for sc.Scan() {
		f := strings.SplitN(sc.Text(), " ", 4)
		if f[0] != "ack" {
			t.Fatalf("helper: %s", sc.Text())
		}
		seq, _ := strconv.ParseUint(f[2], 10, 64)
		acks = append(acks, ack{f[1], seq, f[3]})
		if len(acks) == 500 && !killed {
			_ = cmd.Process.Signal(syscall.SIGKILL)
			killed = true
		}
	}
	_, _ = io.Copy(io.Discard, stdout)
	_ = cmd.Wait()
	if len(acks) < 500 {
		t.Fatalf("helper acknowledged only %d events", len(acks))
	}

	j := openTest(t, Options{Dir: dir, Sync: true})
	ctx := context.Background()
	stored := map[string]map[uint64]string{}
	for _, saga := range []string{"s0", "s1", "s2", "s3"} {
		events, err := j.Events(ctx, saga)
		if err != nil {
			t.Fatalf("Events(%s): %v", saga, err)
		}
		stored[saga] = map[uint64]string{}
		for i, e := range events {
			if e.Seq != uint64(i+1) {
				t.Fatalf("saga %s: event %d has seq %d: gap", saga, i, e.Seq)
			}
			stored[saga][e.Seq] = string(e.Body)
		}
	}
	for _, a := range acks {
		if got, ok := stored[a.saga][a.seq]; !ok || got != a.body {
			t.Errorf("acknowledged %s seq %d %s: stored %q, %v", a.saga, a.seq, a.body, got, ok)
		}
	}
	t.Logf("%d acknowledged events before SIGKILL, all present", len(acks))
}

func TestBadgerLoggerFailsOnSwallowedSyncError(t *testing.T) {
	j := openTest(t, Options{Sync: true})
	l := &badgerLogger{log: j.log, j: j}
	l.Errorf("Error while curlf sync: %v\n", syscall.EIO)
	if err := j.Healthy(); !errors.Is(err, ErrFailed) {
		t.Fatalf("Healthy() after a logged vlog sync failure = %v, want ErrFailed", err)
	}
	if _, err := j.Append(context.Background(), Batch{Saga: "s", Events: []Event{ev("a", "")}}); !errors.Is(err, ErrFailed) {
		t.Errorf("Append = %v, want ErrFailed", err)
	}
}

// TestCloseStopsEveryGoroutine checks that Close waits for the committer,
// the maintenance goroutine and Badger's own goroutines.
func TestCloseStopsEveryGoroutine(t *testing.T) {
	ctx := context.Background()
	before := runtime.NumGoroutine()
	j, err := Open(ctx, Options{Dir: t.TempDir(), Sync: true, sweepInterval: time.Millisecond, gcInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		mustAppend(t, j, Batch{Saga: fmt.Sprint(i % 5), Events: []Event{ev("a", "")}, Head: &Head{Status: "done", Terminal: true}})
	}
	if err := j.Close(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines before Open, %d after Close:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}
