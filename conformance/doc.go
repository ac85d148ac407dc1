// Package conformance holds agenthelm's black-box conformance suite: it runs
// the same MCP scenarios against real servers (the npm server-everything and
// server-memory, over stdio, streamable HTTP and legacy SSE) once directly and
// once through agenthelm's front doors (serve's /mcp/<upstream> and
// /sse/<upstream>, and wrap), with the official go-sdk as the independent
// client pinned to protocol 2025-11-25 or 2026-07-28, and requires the
// normalised results to be identical.
//
// It has no non-test code and imports nothing from agenthelm: the proxy is
// built with `go build ./cmd/agenthelm` and driven as a separate process.
//
//	go test ./conformance/                 # run the matrix, error checks
//	go test ./conformance/ -update         # also rewrite docs/CONFORMANCE.md
//	go test ./conformance/ -run '^$' -bench . -benchtime 200x
package conformance
