// Package policies embeds the shipped Rego policies, so that agenthelm runs
// with them when no policy directory is configured (the demo, a first
// `serve`). The files in this directory are the policies; this Go file only
// carries them into the binary.
package policies

import (
	"embed"
	"io/fs"
	"os"
	"path/filepath"
)

//go:embed *.rego data.json
var files embed.FS

// WriteTo copies the shipped policies into dir (created if needed) and
// returns dir, for a policy engine that reads a directory.
func WriteTo(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	err := fs.WalkDir(files, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := files.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, path), b, 0o644)
	})
	return dir, err
}
