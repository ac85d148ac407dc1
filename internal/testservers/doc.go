// Package testservers finds (and on first use installs) the real MCP servers
// that agenthelm's tests run against: the npm packages
// @modelcontextprotocol/server-everything, server-memory and
// server-filesystem, pinned in testdata/npm/package.json and installed into
// testdata/npm/node_modules only, never globally.
//
// Tests call Everything(t), Memory(t, file) or Filesystem(t, dirs...) to get
// the command line that starts a server over stdio.
package testservers
