package journal

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// benchBody is a typical step-intent event.
const benchBody = `{"step":3,"tool":"charge","upstream":"payments","args_digest":"sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae","idempotency_key":"saga-0000/3","decision":"d-81f2","compensator":{"tool":"refund","args":"{charge: .result.id}"}}`

// BenchmarkAppend measures synced records per second through the group
// committer and, in the same run, through one synced Badger transaction
// per record (the baseline), at 1, 8 and 64 concurrent writers. Each
// record is one event; each writer appends to its own saga.
func BenchmarkAppend(b *testing.B) {
	for _, writers := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("journal/writers=%d", writers), func(b *testing.B) {
			var commits, records atomic.Int64
			j := openTest(b, Options{Sync: true, OnCommit: func(n int, _ time.Duration) {
				commits.Add(1)
				records.Add(int64(n))
			}})
			ctx := context.Background()
			run(b, writers, func(w, i int) error {
				_, err := j.Append(ctx, Batch{Saga: fmt.Sprintf("saga-%d", w), Events: []Event{ev("step.intent", benchBody)}})
				return err
			})
			if c := commits.Load(); c > 0 {
				b.ReportMetric(float64(records.Load())/float64(c), "records/commit")
			}
			// Live heap with the journal still open: mostly Badger's memtables.
			runtime.GC()
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			b.ReportMetric(float64(m.HeapAlloc)/(1<<20), "live-heap-MiB")
		})
		b.Run(fmt.Sprintf("baseline/writers=%d", writers), func(b *testing.B) {
			db, err := badger.Open(badgerOptions(b.TempDir(), true, nil))
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			val := []byte(benchBody)
			run(b, writers, func(w, i int) error {
				return db.Update(func(txn *badger.Txn) error {
					return txn.Set(eventKey(fmt.Sprintf("saga-%d", w), uint64(i+1)), val)
				})
			})
			b.ReportMetric(1, "records/commit")
		})
	}
}

// run calls op b.N times spread over writers goroutines and reports
// records/s and latency percentiles.
func run(b *testing.B, writers int, op func(w, i int) error) {
	var next atomic.Int64
	lat := make([][]time.Duration, writers)
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; next.Add(1) <= int64(b.N); i++ {
				t := time.Now()
				if err := op(w, i); err != nil {
					b.Error(err)
					return
				}
				lat[w] = append(lat[w], time.Since(t))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	all := slices.Concat(lat...)
	slices.Sort(all)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "records/s")
	if len(all) > 0 {
		b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
	}
}

// BenchmarkDurableWriteCost measures what one durable write costs the
// machine besides its own wait: the CPU capacity that another process
// loses while this one writes in a loop. That process hashes a page on
// every core; its hash rate measured alone just before is the baseline.
// On a virtual machine a flush costs context switches (the Go runtime
// hands the blocked thread's processor to another thread and back),
// interrupts and exits to the hypervisor, and a benchmark that keeps the
// cores busy, like BenchmarkToolCall in package engine, pays for them in
// throughput:
//
//	go test -run '^$' -bench DurableWriteCost -benchtime 3000x ./journal/
//
// Variants: a synced journal Append of one event (one Badger transaction:
// it flushes its WAL and its value log); a 1 KiB write into a preallocated
// file plus fsync, the least a durable write does through the page cache;
// and the control, an unsynced Append followed by a sleep as long as a
// quiet fsync here (the same wait without I/O). cpu-µs-lost/write is
// GOMAXPROCS × (wall time − hashes done ÷ the baseline rate) ÷ writes.
func BenchmarkDurableWriteCost(b *testing.B) {
	ctx := context.Background()
	variants := []struct {
		name  string
		setup func(b *testing.B) func(i int) error
	}{
		{"journal-append-sync", func(b *testing.B) func(int) error {
			j := openTest(b, Options{Sync: true})
			return func(int) error {
				_, err := j.Append(ctx, Batch{Saga: "s", Events: []Event{ev("step.intent", benchBody)}})
				return err
			}
		}},
		{"file-write-fsync", func(b *testing.B) func(int) error {
			f, err := os.OpenFile(filepath.Join(b.TempDir(), "log"), os.O_CREATE|os.O_RDWR, 0o600)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = f.Close() })
			const size = 16 << 20
			if _, err := f.Write(make([]byte, size)); err != nil {
				b.Fatal(err)
			}
			if err := f.Sync(); err != nil {
				b.Fatal(err)
			}
			rec := make([]byte, 1024)
			return func(i int) error {
				if _, err := f.WriteAt(rec, int64(i*len(rec))%size); err != nil {
					return err
				}
				return f.Sync()
			}
		}},
		{"journal-append-nosync+sleep", func(b *testing.B) func(int) error {
			j := openTest(b, Options{Sync: false, commit: func(txn *badger.Txn) error {
				err := txn.Commit()
				time.Sleep(150 * time.Microsecond)
				return err
			}})
			return func(int) error {
				_, err := j.Append(ctx, Batch{Saga: "s", Events: []Event{ev("step.intent", benchBody)}})
				return err
			}
		}},
	}
	for _, v := range variants {
		b.Run(v.name, func(b *testing.B) {
			write := v.setup(b)
			if err := write(0); err != nil { // create files, load the saga
				b.Fatal(err)
			}
			stop := hashLoad(b)
			time.Sleep(500 * time.Millisecond)
			alone, aloneFor := stop()
			rate := float64(alone) / aloneFor.Seconds()
			b.ResetTimer()
			stop = hashLoad(b)
			for i := 1; i <= b.N; i++ {
				if err := write(i); err != nil {
					b.Fatal(err)
				}
			}
			hashes, wall := stop()
			b.StopTimer()
			lost := float64(runtime.GOMAXPROCS(0)) * (wall.Seconds() - float64(hashes)/rate)
			b.ReportMetric(lost*1e6/float64(b.N), "cpu-µs-lost/write")
		})
	}
}

// hashLoad starts this test binary as a process that hashes a page on
// every core. The returned stop ends it and returns the hashes it did and
// the time it hashed for.
func hashLoad(b *testing.B) (stop func() (int64, time.Duration)) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "JOURNAL_TEST_HELPER=hash")
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	r := bufio.NewReader(out)
	if line, err := r.ReadString('\n'); line != "ready\n" {
		_ = cmd.Process.Kill()
		b.Fatalf("hash helper: %q, %v", line, err)
	}
	return func() (int64, time.Duration) {
		_ = in.Close()
		var hashes, ns int64
		_, serr := fmt.Fscan(r, &hashes, &ns)
		if err := cmd.Wait(); err != nil || serr != nil {
			b.Fatalf("hash helper: %v, %v", err, serr)
		}
		return hashes, time.Duration(ns)
	}
}
