package compensators

// filesystemRestore writes back the content read_text_file captured before
// the step. A file that could not be read before (most often: it did not
// exist) cannot be restored, and the filesystem server has no tool that
// deletes a file: the expression says so with cannot_undo.
const filesystemRestore = `
if .capture == null then error("no capture was recorded for this step")
elif .capture.isError == true then
  (.capture.content[0].text? // "no message") as $why
  | if ($why | test("ENOENT")) then
      error({cannot_undo: "\(.args.path) did not exist before this step, and server-filesystem has no tool to delete a file: if it exists now, delete it by hand, then resolve the step"})
    else
      error({cannot_undo: "the previous content of \(.args.path) could not be read before this step (\($why)), so it cannot be restored"})
    end
else {path: .args.path, content: (.capture.structuredContent.content // .capture.content[0].text)}
end`

// filesystemPack covers @modelcontextprotocol/server-filesystem
// (2026.8.31) for text files. The server can write, edit and move files and
// create directories, but deletes nothing: what a step created cannot be
// removed with its tools.
func filesystemPack() map[string]Rule {
	previous := &Capture{Tool: "read_text_file", Args: `{path: .args.path}`}
	return map[string]Rule{
		"read_file":                 readOnly,
		"read_text_file":            readOnly,
		"read_media_file":           readOnly,
		"read_multiple_files":       readOnly,
		"list_directory":            readOnly,
		"list_directory_with_sizes": readOnly,
		"directory_tree":            readOnly,
		"search_files":              readOnly,
		"get_file_info":             readOnly,
		"list_allowed_directories":  readOnly,

		"write_file": {
			Idempotent: true,
			Capture:    previous,
			Compensate: compensate("write_file", filesystemRestore),
		},
		"edit_file": {
			Capture:    previous,
			Compensate: compensate("write_file", filesystemRestore),
		},
		// move_file fails when the destination exists, so a move that
		// succeeded left the source free: move it back.
		"move_file": {
			Compensate: compensate("move_file", `{source: .args.destination, destination: .args.source}`),
		},
		// No tool removes a directory.
		"create_directory": {Irreversible: true, Idempotent: true},
	}
}
