package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agenthelm/agenthelm/engine"
	"github.com/agenthelm/agenthelm/journal"
	"github.com/agenthelm/agenthelm/policies"
	"github.com/agenthelm/agenthelm/policy"
	"github.com/agenthelm/agenthelm/proxy"
	"github.com/agenthelm/agenthelm/proxy/upstream"
	"github.com/agenthelm/agenthelm/saga"
	"github.com/agenthelm/agenthelm/toolcall"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// BenchmarkToolCall measures a proxied tools/call (an echo on an MCP server
// over streamable HTTP) with the saga engine journaling with fsync, with the
// engine journaling without fsync (journal.sync: none), with no engine at
// all, and journaling with fsync behind the shipped policies (the gate's
// added cost: compare with journal-sync), at concurrency 1 and 16, in one
// run so the ratios are comparable on a noisy machine:
//
//	go test -run '^$' -bench ToolCall -benchtime 2000x ./engine/
func BenchmarkToolCall(b *testing.B) {
	up := benchUpstream(b, 0)
	for _, conc := range []int{1, 16} {
		for _, mode := range []string{"passthrough", "journal-nosync", "journal-sync", "journal-sync+policy"} {
			b.Run(mode+"/conc="+itoa(conc), func(b *testing.B) { benchToolCalls(b, up, mode, conc) })
		}
	}
}

// BenchmarkToolCallSlowTool is BenchmarkToolCall's journal rows at
// concurrency 16 for a tool that takes 5 ms, like a fast API behind an MCP
// server, and one that takes 20 ms, rather than an echo that takes nothing:
//
//	go test -run '^$' -bench ToolCallSlowTool -benchtime 2000x ./engine/
func BenchmarkToolCallSlowTool(b *testing.B) {
	for _, delay := range []time.Duration{5 * time.Millisecond, 20 * time.Millisecond} {
		up := benchUpstream(b, delay)
		for _, mode := range []string{"journal-nosync", "journal-sync"} {
			b.Run("tool="+delay.String()+"/"+mode+"/conc=16", func(b *testing.B) { benchToolCalls(b, up, mode, 16) })
		}
	}
}

// benchUpstream is an MCP server over streamable HTTP with one tool, echo,
// that answers after delay.
func benchUpstream(b *testing.B, delay time.Duration) string {
	echo := mcp.NewServer(&mcp.Implementation{Name: "echo", Version: "1"}, nil)
	mcp.AddTool(echo, &mcp.Tool{Name: "echo"}, func(ctx context.Context, req *mcp.CallToolRequest, in benchMsg) (*mcp.CallToolResult, any, error) {
		if delay > 0 {
			time.Sleep(delay)
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: in.Message}}}, nil, nil
	})
	up := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return echo }, &mcp.StreamableHTTPOptions{JSONResponse: true}))
	b.Cleanup(up.Close)
	return up.URL
}

type benchMsg struct {
	Message string `json:"message"`
}

// benchToolCalls makes b.N echo calls from conc goroutines through a proxy
// configured as mode, and reports calls/s, process CPU and voluntary context
// switches per call and, when journaling, the journal's records per commit
// and commit time.
func benchToolCalls(b *testing.B, upURL, mode string, conc int) {
	ctx := context.Background()
	var commits, records64, commitNS atomic.Int64
	var ic toolcall.Interceptor = toolcall.Passthrough{}
	var p *proxy.Proxy
	if mode != "passthrough" {
		j, err := journal.Open(ctx, journal.Options{Dir: b.TempDir(), Sync: mode != "journal-nosync",
			OnCommit: func(records int, d time.Duration) {
				commits.Add(1)
				records64.Add(int64(records))
				commitNS.Add(int64(d))
			}})
		if err != nil {
			b.Fatal(err)
		}
		defer j.Close(ctx)
		var gate engine.Gate
		if mode == "journal-sync+policy" {
			dir, err := policies.WriteTo(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			// Thousands of calls a minute would trip the shipped rate limit
			// (30 a minute per tool), and denials are cheap: lift it, so
			// that every call is decided and forwarded.
			liftRateLimit(b, filepath.Join(dir, "data.json"))
			pe, err := policy.New(ctx, policy.Options{Dir: dir, Mode: policy.ModeEnforce})
			if err != nil {
				b.Fatal(err)
			}
			gate = pe
		}
		e := engine.New(engine.Options{Journal: j, Invoker: invoker{&p}, Eval: jqEval, Gate: gate,
			Rules: rules{"echo": {Compensate: &saga.Compensator{Tool: "echo", Args: "{message: .args.message}"}}}, IdleCommit: time.Hour})
		defer e.Close(ctx)
		ic = e
	}
	p = proxy.New(proxy.Options{Upstreams: map[string]upstream.Spec{"echo": {Name: "echo", URL: upURL, Transport: "streamable-http"}}, Interceptor: ic})
	defer p.Close(ctx)
	front := httptest.NewServer(p.Handler())
	defer front.Close()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "bench", Version: "1"}, nil).Connect(ctx,
		&mcp.StreamableClientTransport{Endpoint: front.URL + "/mcp/echo", HTTPClient: benchClient}, &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		b.Fatal(err)
	}
	defer cs.Close()
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	cpu0, sw0, usageOK := processUsage()
	start := time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: benchMsg{"hello"}})
				if err == nil && res.IsError {
					err = fmt.Errorf("the call was refused or failed: %v", res.Content)
				}
				if err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "calls/s")
	if cpu1, sw1, ok := processUsage(); ok && usageOK {
		b.ReportMetric(float64((cpu1-cpu0).Microseconds())/float64(b.N), "cpu-µs/call")
		b.ReportMetric(float64(sw1-sw0)/float64(b.N), "blocks/call")
	}
	if n := commits.Load(); n > 0 {
		b.ReportMetric(float64(records64.Load())/float64(n), "records/commit")
		b.ReportMetric(float64(commitNS.Load())/float64(n)/1e6, "ms/commit")
	}
}

// benchClient keeps a connection per concurrent caller: with Go's default
// of two idle connections per host most calls would dial anew, and the
// benchmark would measure TCP handshakes.
var benchClient = &http.Client{Transport: func() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 64
	return t
}()}

func itoa(n int) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}

// liftRateLimit sets the shipped policies' calls per minute to a million.
func liftRateLimit(b *testing.B, dataFile string) {
	raw, err := os.ReadFile(dataFile)
	if err != nil {
		b.Fatal(err)
	}
	var data map[string]any
	if err := json.Unmarshal(raw, &data); err != nil {
		b.Fatal(err)
	}
	data["agenthelm"].(map[string]any)["budget"].(map[string]any)["max_calls_per_minute"] = 1000000
	if raw, err = json.Marshal(data); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(dataFile, raw, 0o644); err != nil {
		b.Fatal(err)
	}
}
