package testservers

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
)

var (
	installOnce sync.Once
	installErr  error
)

// Root returns the repository's root directory.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// NPMDir is the folder holding package.json for the test servers.
func NPMDir() string { return filepath.Join(Root(), "testdata", "npm") }

// Install runs `npm ci` in NPMDir unless node_modules is already in step with
// package-lock.json. It holds a file lock, so test binaries of several
// packages running at once install only once.
func Install() error {
	installOnce.Do(func() { installErr = install() })
	return installErr
}

func install() error {
	dir := NPMDir()
	lock, err := os.OpenFile(filepath.Join(dir, ".install.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("open install lock: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock npm install: %w", err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) //nolint:errcheck
	if upToDate(dir) {
		return nil
	}
	cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("npm ci in %s: %v\n%s", dir, err, out)
	}
	return nil
}

// upToDate reports whether npm's own record of the installed tree is at
// least as new as the lock file.
func upToDate(dir string) bool {
	installed, err := os.Stat(filepath.Join(dir, "node_modules", ".package-lock.json"))
	if err != nil {
		return false
	}
	want, err := os.Stat(filepath.Join(dir, "package-lock.json"))
	if err != nil {
		return false
	}
	return !installed.ModTime().Before(want.ModTime())
}

func command(t testing.TB, pkg string, args ...string) []string {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatalf("node is needed to run %s: %v", pkg, err)
	}
	if err := Install(); err != nil {
		t.Fatalf("install test servers: %v", err)
	}
	script := filepath.Join(NPMDir(), "node_modules", "@modelcontextprotocol", pkg, "dist", "index.js")
	if _, err := os.Stat(script); err != nil {
		t.Fatalf("test server %s is not installed: %v", pkg, err)
	}
	return append([]string{"node", script}, args...)
}

// Everything returns the command that runs server-everything over stdio.
func Everything(t testing.TB) []string {
	return command(t, "server-everything", "stdio")
}

// Memory returns the command that runs server-memory over stdio, with its
// knowledge graph in file (set through MEMORY_FILE_PATH by the caller's env).
// The caller sets MEMORY_FILE_PATH; MemoryEnv gives it.
func Memory(t testing.TB) []string {
	return command(t, "server-memory")
}

// MemoryEnv returns the environment entry that points server-memory at file.
func MemoryEnv(file string) string { return "MEMORY_FILE_PATH=" + file }

// Filesystem returns the command that runs server-filesystem over stdio,
// allowed to touch only dirs.
func Filesystem(t testing.TB, dirs ...string) []string {
	return command(t, "server-filesystem", dirs...)
}
