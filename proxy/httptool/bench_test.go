package httptool

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/agenthelm/agenthelm/internal/paymentsapi"
	"github.com/agenthelm/agenthelm/toolcall"
)

// BenchmarkAddedLatency measures what the proxy adds to a call: the same
// request sent b.N times straight to the test API, then b.N times through
// the proxy with toolcall.Passthrough (no engine, no journal: the front
// door's own cost), one at a time over keep-alive connections, in one
// run. It reports both latencies and their ratio. "routed" is a POST
// /v1/charges that a route makes a tool call; "unrouted" a GET that is
// forwarded as it is, for comparison.
//
//	go test -run '^$' -bench AddedLatency -benchtime 20000x ./proxy/httptool/
func BenchmarkAddedLatency(b *testing.B) {
	api := paymentsapi.Start(b)
	api.SetRecording(false)
	_, base := startProxy(b, paymentsOptions(api, toolcall.Passthrough{}))
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2}}
	b.Cleanup(client.CloseIdleConnections)
	for _, bc := range []struct {
		name, method, path, body string
		status                   int
	}{
		{"routed", "POST", "/v1/charges", `{"amount":5,"currency":"eur"}`, http.StatusCreated},
		{"unrouted", "GET", "/v1/none", "", http.StatusNotFound},
	} {
		b.Run(bc.name, func(b *testing.B) {
			call := func(url string) {
				req, _ := http.NewRequest(bc.method, url, strings.NewReader(bc.body))
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != bc.status {
					b.Fatalf("%s %s: %d", bc.method, url, resp.StatusCode)
				}
			}
			run := func(url string) time.Duration {
				for range 200 { // warm the connections and pools
					call(url)
				}
				start := time.Now()
				for range b.N {
					call(url)
				}
				return time.Since(start)
			}
			b.ResetTimer()
			direct := run(api.URL + bc.path)
			proxied := run(base + "/payments" + bc.path)
			b.StopTimer()
			n := float64(b.N)
			b.ReportMetric(float64(direct.Microseconds())/n, "direct-µs/call")
			b.ReportMetric(float64(proxied.Microseconds())/n, "proxied-µs/call")
			b.ReportMetric(float64(proxied)/float64(direct), "ratio")
		})
	}
}
