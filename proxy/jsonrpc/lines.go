package jsonrpc

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// ErrFrameTooLarge is returned by LineReader.Next for a line over the limit.
// The line is skipped and reading can go on.
var ErrFrameTooLarge = errors.New("frame exceeds the size limit")

// LineReader reads newline-delimited frames, as the MCP stdio transport
// sends them.
type LineReader struct {
	r     *bufio.Reader
	limit int
}

// NewLineReader reads frames of at most limit bytes from r. A limit of zero
// or less means 16 MiB.
func NewLineReader(r io.Reader, limit int) *LineReader {
	if limit <= 0 {
		limit = 16 << 20
	}
	return &LineReader{r: bufio.NewReaderSize(r, 64<<10), limit: limit}
}

// Next returns the next non-blank line without its line ending. It returns
// io.EOF at the end of input, and ErrFrameTooLarge (wrapped, with the size)
// for an oversized line, after which the next call reads the line after it.
func (lr *LineReader) Next() ([]byte, error) {
	for {
		var line []byte
		tooLarge := false
		for {
			chunk, err := lr.r.ReadSlice('\n')
			if !tooLarge {
				if len(line)+len(chunk) > lr.limit+2 {
					tooLarge = true
					line = nil
				} else {
					line = append(line, chunk...)
				}
			}
			if err == bufio.ErrBufferFull {
				continue
			}
			if err != nil {
				if err == io.EOF && (len(line) > 0 || tooLarge) {
					break
				}
				return nil, err
			}
			break
		}
		// The limit is on the frame, without its line ending.
		if tooLarge || len(bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))) > lr.limit {
			return nil, fmt.Errorf("%w (%d bytes)", ErrFrameTooLarge, lr.limit)
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		return line, nil
	}
}
