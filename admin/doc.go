// Package admin is agenthelm's operator API on the admin listener
// (127.0.0.1:7071 by default): health, and saga listing, inspection,
// rollback, retry and resolution. Every route but the health checks needs
// the bearer token (generated into the data directory on first start, or
// configured). The CLI talks to a running sidecar through it, because
// Badger allows one process per journal directory.
//
// It imports the engine and the journal's record types; the proxy knows
// nothing of it.
package admin
