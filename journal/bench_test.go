package journal

import (
	"context"
	"fmt"
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
