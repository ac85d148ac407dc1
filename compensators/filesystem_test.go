package compensators

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agenthelm/agenthelm/internal/testservers"
	"github.com/google/go-cmp/cmp"
)

// snapshot is every file and directory under root: content and mode.
func snapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		info, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			out[rel+"/"] = info.Mode().String()
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		out[rel] = info.Mode().String() + " " + string(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func jsonArgs(kv map[string]any) string {
	b, _ := json.Marshal(kv)
	return string(b)
}

// TestFilesystemPack runs each write tool of the real server-filesystem
// and its pack compensation, and checks the files on disk.
func TestFilesystemPack(t *testing.T) {
	root := t.TempDir()
	s := startServer(t, "files", "filesystem", testservers.Filesystem(t, root))

	t.Run("tools", func(t *testing.T) {
		tools := s.tools(t)
		if errs := s.set.Check("files", tools); len(errs) > 0 {
			t.Errorf("Check = %v", errs)
		}
		for _, tool := range tools {
			if r := s.set.Rule("files", tool); r.Source != "pack:filesystem" {
				t.Errorf("Rule(files, %q) = %+v: the pack does not cover it", tool, r)
			}
		}
		for _, tool := range []string{"read_text_file", "list_directory", "directory_tree", "search_files", "get_file_info"} {
			if r := s.set.Rule("files", tool); !r.ReadOnly {
				t.Errorf("Rule(files, %q).ReadOnly = false", tool)
			}
		}
		if r := s.set.Rule("files", "create_directory"); !r.Irreversible || r.Compensate != nil {
			t.Errorf("Rule(files, create_directory) = %+v, want irreversible", r)
		}
	})

	// Content the server's edits would change: CRLF line endings, no final
	// newline, non-ASCII text, and a mode the rename must keep.
	const original = "first line\r\nsecond line\r\nthird: é ✓ \U0001F600"
	setup := func(t *testing.T) string {
		dir := filepath.Join(root, strings.ReplaceAll(t.Name(), "/", "_"))
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "a.txt"), []byte(original), 0o640); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "empty.txt"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	tests := []struct {
		name, tool string
		args       func(dir string) string
	}{
		{"write_file over a file", "write_file", func(dir string) string {
			return jsonArgs(map[string]any{"path": filepath.Join(dir, "a.txt"), "content": "replaced"})
		}},
		{"write_file over an empty file", "write_file", func(dir string) string {
			return jsonArgs(map[string]any{"path": filepath.Join(dir, "empty.txt"), "content": "not empty"})
		}},
		{"edit_file", "edit_file", func(dir string) string {
			return jsonArgs(map[string]any{"path": filepath.Join(dir, "a.txt"),
				"edits": []map[string]string{{"oldText": "second line", "newText": "2nd line\nand more"}}})
		}},
		{"move_file", "move_file", func(dir string) string {
			return jsonArgs(map[string]any{"source": filepath.Join(dir, "a.txt"), "destination": filepath.Join(dir, "b.txt")})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := setup(t)
			before := snapshot(t, dir)
			st := s.do(t, tt.tool, tt.args(dir))
			if diff := cmp.Diff(before, snapshot(t, dir)); diff == "" {
				t.Fatalf("%s changed nothing", tt.tool)
			}
			if err := st.undo(); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(before, snapshot(t, dir)); diff != "" {
				t.Errorf("files after undoing %s (-before +after):\n%s", tt.tool, diff)
			}
		})
	}

	// A file write_file created cannot be deleted with this server's
	// tools: the undo says so instead of pretending.
	t.Run("write_file of a new file cannot be undone", func(t *testing.T) {
		dir := setup(t)
		path := filepath.Join(dir, "new.txt")
		st := s.do(t, "write_file", jsonArgs(map[string]any{"path": path, "content": "fresh"}))
		err := st.undo()
		if !errors.Is(err, ErrCannotUndo) || !strings.Contains(err.Error(), path+" did not exist before") {
			t.Fatalf("undo = %v, want ErrCannotUndo naming %s", err, path)
		}
		if b, err := os.ReadFile(path); err != nil || string(b) != "fresh" {
			t.Errorf("%s = %q, %v; the failed undo must leave it alone", path, b, err)
		}
	})
}
