// Package configs holds example agenthelm.yaml files: demo.yaml (the
// demo's three example servers and their compensations), memory.yaml and
// filesystem.yaml (reference MCP servers with ready-made compensator
// packs), rest.yaml (a REST API behind the HTTP tool proxy, with agent
// tokens and a policy bundle). Demo is embedded so that `agenthelm demo` runs the very
// configuration users read here.
//
// It imports nothing from agenthelm; its test checks every file with the
// real config loader.
package configs
