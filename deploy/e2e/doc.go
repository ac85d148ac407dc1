// Package e2e runs agenthelm's deployment end to end with a real Jaeger:
// the Jaeger v2 program built from its Go module (deploy/jaeger/build.sh,
// cached), the agenthelm binary, and the example tool servers. Its tests
// sit behind the build tag jaeger, so plain `go test ./...` skips them;
// `make jaeger-e2e` runs them (CI does).
//
//   - TestJaegerTraces runs a saga that unwinds through `agenthelm serve`
//     exporting OTLP to Jaeger, then reads the trace back from Jaeger's
//     HTTP API and checks its spans (expectedSpans, from telemetry/doc.go).
//   - TestNativeTopology runs deploy/native/run.sh, drives a saga through
//     it, checks every component and the metrics the Grafana dashboard
//     queries, and stops it with deploy/native/stop.sh.
package e2e
