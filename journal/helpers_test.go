package journal

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agenthelm/agenthelm/internal/syncbuf"
	badger "github.com/dgraph-io/badger/v4"
)

// TestMain lets tests re-exec the test binary as a helper process (a second
// agenthelm holding the directory, or one that is killed mid-write).
func TestMain(m *testing.M) {
	switch os.Getenv("JOURNAL_TEST_HELPER") {
	case "":
		os.Exit(m.Run())
	case "hold":
		helperHold(os.Getenv("JOURNAL_TEST_DIR"))
	case "append":
		helperAppend(os.Getenv("JOURNAL_TEST_DIR"))
	case "hash":
		helperHash()
	default:
		fmt.Fprintln(os.Stderr, "unknown helper")
		os.Exit(2)
	}
}

// helperHold opens the journal, says "ready", and holds it until stdin
// closes.
func helperHold(dir string) {
	ctx := context.Background()
	j, err := Open(ctx, Options{Dir: dir, Sync: true})
	if err != nil {
		fmt.Printf("error: %v\n", err)
		os.Exit(1)
	}
	fmt.Println("ready")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	if err := j.Close(ctx); err != nil {
		fmt.Printf("error: %v\n", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// helperAppend appends from 8 goroutines forever and prints
// "ack SAGA SEQ BODY" for every acknowledged event, until it is killed.
func helperAppend(dir string) {
	ctx := context.Background()
	j, err := Open(ctx, Options{Dir: dir, Sync: true})
	if err != nil {
		fmt.Printf("error: %v\n", err)
		os.Exit(1)
	}
	var mu sync.Mutex
	for w := range 8 {
		go func() {
			saga := fmt.Sprintf("s%d", w%4)
			for i := 0; ; i++ {
				body := fmt.Sprintf(`{"w":%d,"i":%d}`, w, i)
				seqs, err := j.Append(ctx, Batch{Saga: saga, Events: []Event{{Kind: "k", Body: json.RawMessage(body)}}})
				mu.Lock()
				if err != nil {
					fmt.Printf("error: %v\n", err)
				} else {
					fmt.Printf("ack %s %d %s\n", saga, seqs[0], body)
				}
				mu.Unlock()
			}
		}()
	}
	select {}
}

// helperHash hashes a page on every core from "ready" until stdin closes,
// then prints the hashes done and the nanoseconds it took
// (BenchmarkDurableWriteCost's load).
func helperHash() {
	var stop atomic.Bool
	var hashes atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			page := make([]byte, 4096)
			var n int64
			for !stop.Load() {
				sha256.Sum256(page)
				n++
			}
			hashes.Add(n)
		})
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	stop.Store(true)
	wg.Wait()
	fmt.Println(hashes.Load(), time.Since(start).Nanoseconds())
	os.Exit(0)
}

// openTest opens a journal in a fresh directory (or opts.Dir) and closes it
// when the test ends.
func openTest(t testing.TB, opts Options) *Journal {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	j, err := Open(context.Background(), opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", opts.Dir, err)
	}
	t.Cleanup(func() { _ = j.Close(context.Background()) })
	return j
}

func mustAppend(t testing.TB, j *Journal, b Batch) []uint64 {
	t.Helper()
	seqs, err := j.Append(context.Background(), b)
	if err != nil {
		t.Fatalf("Append(%q): %v", b.Saga, err)
	}
	return seqs
}

func ev(kind, body string) Event {
	return Event{Kind: kind, Body: json.RawMessage(body)}
}

// fakeClock is a settable clock for the now hook.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// gate is a commit hook that blocks commits until released, so tests can
// queue requests behind a commit in progress.
type gate struct {
	entered chan struct{} // receives once per commit that reaches the hook
	release chan struct{}
	err     error // returned instead of committing when set
}

func newGate() *gate {
	return &gate{entered: make(chan struct{}, 1000), release: make(chan struct{})}
}

func (g *gate) commit(txn *badger.Txn) error {
	g.entered <- struct{}{}
	<-g.release
	if g.err != nil {
		txn.Discard()
		return g.err
	}
	return txn.Commit()
}

// waitQueued waits until n Appends are queued behind the committer
// (retention sweeps may be queued too).
func waitQueued(t testing.TB, j *Journal, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		j.mu.Lock()
		q := 0
		for _, r := range j.queue {
			if !r.sweep {
				q++
			}
		}
		j.mu.Unlock()
		if q >= n {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("timed out waiting for %d queued appends", n)
}

// rawKeys returns every key in a closed journal directory (or a live
// Journal's db) that contains s.
func rawKeys(t testing.TB, db *badger.DB, s string) []string {
	t.Helper()
	var keys []string
	err := db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if k := it.Item().Key(); bytes.Contains(k, []byte(s)) {
				keys = append(keys, fmt.Sprintf("%q", k))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// logBuffer is a concurrency-safe slog destination.
type logBuffer = syncbuf.Buffer

// bufferLogger is a logger that writes to l.
func bufferLogger(l *logBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(l, nil))
}
