package main

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"syscall"
)

// runFileName is written into the data directory by a running sidecar so
// that the CLI finds its admin API even when listen.admin asked for port 0.
const runFileName = "sidecar.json"

type runFile struct {
	PID   int    `json:"pid"`
	MCP   string `json:"mcp"`
	Admin string `json:"admin"`
	// HTTP is the HTTP tool proxy's address; empty when it does not listen.
	HTTP string `json:"http,omitempty"`
}

func writeRunFile(dataDir string, rf runFile) error {
	b, err := json.MarshalIndent(rf, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dataDir, runFileName+".tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dataDir, runFileName))
}

func removeRunFile(dataDir string) { _ = os.Remove(filepath.Join(dataDir, runFileName)) }

// readRunFile returns the running sidecar's addresses, if one that is still
// alive wrote them.
func readRunFile(dataDir string) (runFile, bool) {
	var rf runFile
	b, err := os.ReadFile(filepath.Join(dataDir, runFileName))
	if err != nil || json.Unmarshal(b, &rf) != nil || rf.PID <= 0 {
		return rf, false
	}
	if err := syscall.Kill(rf.PID, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return rf, false // stale: that process is gone
	}
	return rf, true
}
