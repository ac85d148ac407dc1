package conformance

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/agenthelm/agenthelm/internal/testservers"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// BenchmarkEcho measures tools/call echo on server-everything over stdio:
// directly (go-sdk client over CommandTransport), through agenthelm serve
// (streamable HTTP front door to the stdio upstream), through a serve whose
// journal does not fsync (serve-nosync: journal.sync none) and through
// agenthelm wrap, each at concurrency 1 and 16 on one session, in the same
// run. thru-x-nosync is serve's throughput relative to serve-nosync's: what
// durable journaling costs on a real server.
//
// ns/op is wall time divided by the number of calls (at concurrency 16 that
// is the inverse of throughput); lat-ns is the mean latency of one call;
// x-direct is ns/op relative to the direct path at the same concurrency,
// and lat-x-direct the same for lat-ns. The direct sub-benchmark must run
// first (it does, unless -bench filters it out; then no ratio is reported).
//
// Every run of a sub-benchmark (each b.N, each -count) opens its own session
// with its own client name, so through agenthelm it starts a fresh saga
// (policy dry-run, as in the matrix). The cost of a call through agenthelm
// grows with the number of steps already in its saga, so compare runs made
// with the same fixed -benchtime:
//
//	go test ./conformance/ -run '^$' -bench Echo -benchtime 1000x
func BenchmarkEcho(b *testing.B) {
	argv := testservers.Everything(b)
	direct := map[int][2]float64{} // concurrency -> ns/op, lat-ns
	nosync := map[int]float64{}    // concurrency -> ns/op of serve-nosync
	for _, conc := range []int{1, 16} {
		for _, path := range []string{"direct", "serve-nosync", "serve", "wrap"} {
			b.Run(fmt.Sprintf("%s/c%d", path, conc), func(b *testing.B) {
				cs := benchSession(b, path, argv)
				nsop, lat := runEcho(b, cs, conc)
				b.ReportMetric(lat, "lat-ns")
				switch {
				case path == "direct":
					direct[conc] = [2]float64{nsop, lat}
				case direct[conc][0] > 0:
					d := direct[conc]
					b.ReportMetric(nsop/d[0], "x-direct")
					b.ReportMetric(lat/d[1], "lat-x-direct")
				}
				switch {
				case path == "serve-nosync":
					nosync[conc] = nsop
				case path == "serve" && nosync[conc] > 0:
					// Throughput of the journaled call relative to the same
					// call journaled without fsync (journal.sync: none).
					b.ReportMetric(nosync[conc]/nsop, "thru-x-nosync")
				}
			})
		}
	}
}

// benchSession opens a warmed-up session to server-everything over stdio
// through path ("direct", "serve" or "wrap"), closed in b's cleanup.
func benchSession(b *testing.B, path string, argv []string) *mcp.ClientSession {
	var transport mcp.Transport
	switch path {
	case "direct", "wrap":
		args := argv
		env := os.Environ()
		if path == "wrap" {
			bin, err := agenthelmBin()
			if err != nil {
				b.Fatal(err)
			}
			if args, err = wrapArgs(bin, argv...); err != nil {
				b.Fatal(err)
			}
			env = append(env, "AGENTHELM_DATA_DIR="+b.TempDir())
		}
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Env = env
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		transport = &mcp.CommandTransport{Command: cmd, TerminateDuration: 3 * time.Second}
		b.Cleanup(func() {
			if cmd.Process != nil {
				kids := descendants(cmd.Process.Pid)
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				reapLeftovers(kids, 5*time.Second)
			}
		})
	case "serve", "serve-nosync":
		srv, err := sharedServe(b)
		if path == "serve-nosync" {
			srv, err = nosyncServe(b)
		}
		if err != nil {
			b.Fatal(err)
		}
		transport = &mcp.StreamableClientTransport{
			Endpoint:   srv.mcp + "/mcp/everything",
			HTTPClient: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}},
			MaxRetries: -1,
		}
	}
	// A client name per session: a fresh agent, hence a fresh saga.
	name := fmt.Sprintf("agenthelm-bench-%s-%d", path, clientSeq.Add(1))
	c := mcp.NewClient(&mcp.Implementation{Name: name, Version: "1.0.0"}, &mcp.ClientOptions{Capabilities: &mcp.ClientCapabilities{}})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cs, err := c.Connect(ctx, transport, &mcp.ClientSessionOptions{ProtocolVersion: era2025})
	if err != nil {
		b.Fatalf("%s: connect: %v", path, err)
	}
	b.Cleanup(func() { cs.Close() })
	// Warm up: the first calls pay for JIT and connection setup.
	for range 20 {
		if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"message": "warm"}}); err != nil {
			b.Fatalf("%s: warm-up: %v", path, err)
		}
	}
	return cs
}

// runEcho makes b.N echo calls from conc goroutines and returns ns per call
// (wall) and the mean latency of a call.
func runEcho(b *testing.B, cs *mcp.ClientSession, conc int) (nsPerOp, meanLat float64) {
	ctx := context.Background()
	params := &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"message": "bench"}}
	var next, totalLat atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failed error
	b.ResetTimer()
	start := time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				t0 := time.Now()
				if _, err := cs.CallTool(ctx, params); err != nil {
					mu.Lock()
					if failed == nil {
						failed = err
					}
					mu.Unlock()
					return
				}
				totalLat.Add(int64(time.Since(t0)))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if failed != nil {
		b.Fatalf("echo: %v", failed)
	}
	return float64(elapsed.Nanoseconds()) / float64(b.N), float64(totalLat.Load()) / float64(b.N)
}
