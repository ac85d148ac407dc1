package jsonrpc

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// readAll calls Next until io.EOF, recording lines and errors.
func readAll(t *testing.T, lr *LineReader) []string {
	t.Helper()
	var out []string
	for i := 0; i < 1000; i++ {
		line, err := lr.Next()
		switch {
		case err == io.EOF:
			return out
		case errors.Is(err, ErrFrameTooLarge):
			out = append(out, "<too large>")
		case err != nil:
			t.Fatalf("Next: %v", err)
		default:
			out = append(out, string(line))
		}
	}
	t.Fatal("Next never returned io.EOF")
	return nil
}

func TestLineReader(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		limit int
		want  []string
	}{
		{"lines", "{\"a\":1}\n{\"b\":2}\n", 0, []string{`{"a":1}`, `{"b":2}`}},
		{"blank lines skipped", "\n\n{\"a\":1}\n\n  \n\t\n{\"b\":2}\n\n", 0, []string{`{"a":1}`, `{"b":2}`}},
		{"CRLF", "{\"a\":1}\r\n{\"b\":2}\r\n\r\n", 0, []string{`{"a":1}`, `{"b":2}`}},
		{"surrounding spaces trimmed", "  {\"a\":1}  \n", 0, []string{`{"a":1}`}},
		{"last line without newline", "{\"a\":1}\n{\"b\":2}", 0, []string{`{"a":1}`, `{"b":2}`}},
		{"only a line without newline", "x", 0, []string{`x`}},
		{"empty input", "", 0, nil},
		{"blank input", "\n \r\n", 0, nil},
		{"oversized line skipped", "0123456789abc\n{\"b\":2}\n", 10, []string{"<too large>", `{"b":2}`}},
		{"oversized lines in a row", "0123456789abc\n0123456789abc\nok\n", 10, []string{"<too large>", "<too large>", "ok"}},
		{"oversized last line without newline", "ok\n0123456789abc", 10, []string{"ok", "<too large>"}},
		{"exactly the limit", "0123456789\n0123456789\r\n0123456789", 10, []string{"0123456789", "0123456789", "0123456789"}},
		{"one over the limit", "0123456789a\n0123456789a\r\n0123456789a\nok", 10, []string{"<too large>", "<too large>", "<too large>", "ok"}},
		{"two over the limit, no newline", "0123456789ab", 10, []string{"<too large>"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, r := range map[string]io.Reader{
				"whole":        strings.NewReader(tt.in),
				"byte by byte": iotest.OneByteReader(strings.NewReader(tt.in)),
			} {
				got := readAll(t, NewLineReader(r, tt.limit))
				if strings.Join(got, "|") != strings.Join(tt.want, "|") || len(got) != len(tt.want) {
					t.Errorf("lines of %q (limit %d) = %q, want %q", tt.in, tt.limit, got, tt.want)
				}
			}
		})
	}
}

// Lines longer than the reader's internal buffer (64 KiB) are assembled
// from several reads; over the limit they are skipped whole.
func TestLineReaderLongLines(t *testing.T) {
	long := strings.Repeat("x", 200<<10)
	in := long + "\n" + strings.Repeat("y", 300<<10) + "\nend\n"
	got := readAll(t, NewLineReader(strings.NewReader(in), 250<<10))
	if len(got) != 3 || got[0] != long || got[1] != "<too large>" || got[2] != "end" {
		short := make([]string, len(got))
		for i, g := range got {
			short[i] = g[:min(len(g), 12)]
		}
		t.Errorf("lines = %q (lengths hidden), want [200 KiB of x, <too large>, end]", short)
	}
}

func TestLineReaderTooLargeError(t *testing.T) {
	lr := NewLineReader(strings.NewReader("0123456789abc\n"), 10)
	_, err := lr.Next()
	if !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("Next() = %v, want ErrFrameTooLarge", err)
	}
	if !strings.Contains(err.Error(), "10 bytes") {
		t.Errorf("error %q does not name the limit", err)
	}
}

func TestLineReaderDefaultLimit(t *testing.T) {
	line := bytes.Repeat([]byte("z"), 16<<20)
	in := append(append(line, '\n'), append(line, "zz\nok\n"...)...)
	got := readAll(t, NewLineReader(bytes.NewReader(in), 0))
	if len(got) != 3 || len(got[0]) != 16<<20 || got[1] != "<too large>" || got[2] != "ok" {
		t.Errorf("with limit 0: %d lines, want a 16 MiB line, a too large one and ok", len(got))
	}
}

// A line returned by Next stays intact after later calls reuse the buffer.
func TestLineReaderLinesAreNotOverwritten(t *testing.T) {
	lr := NewLineReader(strings.NewReader("first\nsecond\nthird\n"), 0)
	a, _ := lr.Next()
	b, _ := lr.Next()
	c, _ := lr.Next()
	if string(a) != "first" || string(b) != "second" || string(c) != "third" {
		t.Errorf("lines = %q %q %q", a, b, c)
	}
}

func TestLineReaderPassesReadErrors(t *testing.T) {
	boom := errors.New("boom")
	lr := NewLineReader(io.MultiReader(strings.NewReader("ok\npartial"), iotest.ErrReader(boom)), 0)
	if line, err := lr.Next(); err != nil || string(line) != "ok" {
		t.Fatalf("Next() = %q, %v", line, err)
	}
	if _, err := lr.Next(); !errors.Is(err, boom) {
		t.Errorf("Next() = %v, want the reader's error", err)
	}
}
