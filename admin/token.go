package admin

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// TokenFileName is where a generated admin token is kept in the data
// directory (mode 0600).
const TokenFileName = "admin.token"

// LoadOrCreateToken returns the admin token: configured (non-empty token),
// read from tokenFile, or read from (or, on first start, generated into)
// dataDir/admin.token.
func LoadOrCreateToken(token, tokenFile, dataDir string) (string, error) {
	if token != "" {
		return token, nil
	}
	if tokenFile != "" {
		return readToken(tokenFile)
	}
	path := filepath.Join(dataDir, TokenFileName)
	t, err := readToken(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return t, err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", fmt.Errorf("admin token: %w", err)
	}
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("admin token: %w", err)
	}
	t = hex.EncodeToString(b[:])
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return readToken(path) // another process won the race
		}
		return "", fmt.Errorf("admin token: %w", err)
	}
	defer f.Close()
	if _, err := f.WriteString(t + "\n"); err != nil {
		return "", fmt.Errorf("admin token: %w", err)
	}
	return t, f.Sync()
}

// ReadToken reads the token a running sidecar uses, for the CLI.
func ReadToken(token, tokenFile, dataDir string) (string, error) {
	switch {
	case token != "":
		return token, nil
	case tokenFile != "":
		return readToken(tokenFile)
	}
	return readToken(filepath.Join(dataDir, TokenFileName))
}

func readToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("admin token: %w", err)
	}
	t := strings.TrimSpace(string(b))
	if t == "" {
		return "", fmt.Errorf("admin token: %s is empty", path)
	}
	return t, nil
}
