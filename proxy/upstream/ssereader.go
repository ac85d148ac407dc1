package upstream

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/agenthelm/agenthelm/proxy/jsonrpc"
)

// Event is one server-sent event.
type Event struct {
	// Type is the event's type ("event:" field); "message" when the server
	// gave none.
	Type string
	// Data holds the event's data lines joined by "\n".
	Data []byte
	// ID is the stream's last event id when the event was dispatched (the
	// "id:" field of this or an earlier event), "" if there was none.
	ID string
	// Retry is the reconnection delay the server asked for with a "retry:"
	// field in this event's block, 0 if none. Only the writer uses it; the
	// reader reports the stream's value through EventReader.Retry.
	Retry time.Duration
}

// EventReader parses a text/event-stream body as the WHATWG HTML standard
// defines it: lines end in CRLF, LF or CR; "data" lines accumulate; "id"
// and "retry" update the stream state; lines starting with ":" are comments;
// a blank line dispatches the event; an event cut off by the end of the
// stream is discarded.
type EventReader struct {
	r     *bufio.Reader
	limit int

	lastID  string
	retry   time.Duration
	skipLF  bool // the previous line ended in CR: a following LF belongs to it
	started bool // the byte-order mark is only skipped at the very start
}

// NewEventReader reads events whose data is at most limit bytes. A limit of
// zero or less means 16 MiB.
func NewEventReader(r io.Reader, limit int) *EventReader {
	if limit <= 0 {
		limit = defaultMaxFrameBytes
	}
	return &EventReader{r: bufio.NewReaderSize(r, 64<<10), limit: limit}
}

// LastEventID returns the stream's last event id (the value to send as
// Last-Event-ID when reconnecting).
func (er *EventReader) LastEventID() string { return er.lastID }

// Retry returns the reconnection delay the server asked for, 0 if none.
func (er *EventReader) Retry() time.Duration { return er.retry }

// Next returns the next event with non-empty data. It returns io.EOF (or the
// underlying read error) at the end of the stream, and an error wrapping
// jsonrpc.ErrFrameTooLarge for an event over the limit, which is skipped:
// the next call reads the event after it.
func (er *EventReader) Next() (Event, error) {
	var (
		ev       Event
		data     []byte
		hasData  bool
		tooLarge bool
	)
	for {
		line, long, err := er.readLine()
		if err != nil {
			return Event{}, err
		}
		if long {
			tooLarge = true
			continue
		}
		if len(line) == 0 {
			if tooLarge {
				return Event{}, fmt.Errorf("server-sent event: %w (%d bytes)", jsonrpc.ErrFrameTooLarge, er.limit)
			}
			if !hasData {
				// Blocks without data (a bare "id:" or "retry:") only
				// update the stream state.
				ev = Event{}
				continue
			}
			if ev.Type == "" {
				ev.Type = "message"
			}
			ev.Data = data
			ev.ID = er.lastID
			return ev, nil
		}
		if line[0] == ':' {
			continue
		}
		field, value := line, []byte(nil)
		if i := bytes.IndexByte(line, ':'); i >= 0 {
			field, value = line[:i], line[i+1:]
			if len(value) > 0 && value[0] == ' ' {
				value = value[1:]
			}
		}
		switch string(field) {
		case "data":
			if tooLarge {
				continue
			}
			if len(data)+len(value)+1 > er.limit {
				tooLarge, data = true, nil
				continue
			}
			if hasData {
				data = append(data, '\n')
			}
			data = append(data, value...)
			hasData = true
		case "event":
			ev.Type = string(value)
		case "id":
			if bytes.IndexByte(value, 0) < 0 {
				er.lastID = string(value)
			}
		case "retry":
			if ms, err := strconv.ParseUint(string(value), 10, 32); err == nil {
				er.retry = time.Duration(ms) * time.Millisecond
				ev.Retry = er.retry
			}
		}
	}
}

// readLine returns the next line without its ending. long reports a line
// over the limit, whose bytes are dropped. A line cut off by the end of the
// stream is not returned: the standard discards an unfinished event.
func (er *EventReader) readLine() (line []byte, long bool, err error) {
	max := er.limit + 64 // room for the field name around a full-size value
	for {
		buf, perr := er.r.Peek(1)
		if perr != nil {
			return nil, false, perr
		}
		if er.skipLF {
			er.skipLF = false
			if buf[0] == '\n' {
				_, _ = er.r.Discard(1)
				continue
			}
		}
		if !er.started {
			er.started = true
			// Peek(3) only when the first byte can start a BOM, so that a
			// short first write is not held up waiting for more bytes.
			if buf[0] != 0xEF {
				continue
			}
			if bom, err := er.r.Peek(3); err == nil && string(bom) == "\xEF\xBB\xBF" {
				_, _ = er.r.Discard(3)
				continue
			}
		}
		buf, _ = er.r.Peek(er.r.Buffered())
		i := bytes.IndexAny(buf, "\r\n")
		if i < 0 {
			if !long {
				if len(line)+len(buf) > max {
					long, line = true, nil
				} else {
					line = append(line, buf...)
				}
			}
			_, _ = er.r.Discard(len(buf))
			continue
		}
		if !long {
			if len(line)+i > max {
				long, line = true, nil
			} else {
				line = append(line, buf[:i]...)
			}
		}
		er.skipLF = buf[i] == '\r'
		_, _ = er.r.Discard(i + 1)
		if line == nil {
			line = []byte{}
		}
		return line, long, nil
	}
}

// EventWriter writes server-sent events, flushing after each one so that
// they reach the client at once. The proxy's front doors use it for
// their SSE responses.
type EventWriter struct {
	w     io.Writer
	flush func() error
}

// NewEventWriter writes events to w. When w is an http.ResponseWriter, each
// event is flushed through http.ResponseController.
func NewEventWriter(w io.Writer) *EventWriter {
	ew := &EventWriter{w: w}
	if rw, ok := w.(http.ResponseWriter); ok {
		rc := http.NewResponseController(rw)
		ew.flush = rc.Flush
	}
	return ew
}

var errBadEventField = errors.New("server-sent event field holds a line break")

// WriteEvent writes ev as one event block. Data is split into one "data:"
// line per line it holds; Type and ID must not contain line breaks (nor ID
// a NUL), since they cannot be encoded. Type "message" is left implicit.
func (ew *EventWriter) WriteEvent(ev Event) error {
	if strings.ContainsAny(ev.Type, "\r\n") || strings.ContainsAny(ev.ID, "\r\n\x00") {
		return errBadEventField
	}
	var b bytes.Buffer
	b.Grow(len(ev.Data) + 64)
	if ev.Type != "" && ev.Type != "message" {
		b.WriteString("event: ")
		b.WriteString(ev.Type)
		b.WriteByte('\n')
	}
	if ev.ID != "" {
		b.WriteString("id: ")
		b.WriteString(ev.ID)
		b.WriteByte('\n')
	}
	if ev.Retry > 0 {
		b.WriteString("retry: ")
		b.WriteString(strconv.FormatInt(ev.Retry.Milliseconds(), 10))
		b.WriteByte('\n')
	}
	data := ev.Data
	for {
		i := bytes.IndexAny(data, "\r\n")
		if i < 0 {
			break
		}
		b.WriteString("data: ")
		b.Write(data[:i])
		b.WriteByte('\n')
		if data[i] == '\r' && i+1 < len(data) && data[i+1] == '\n' {
			i++
		}
		data = data[i+1:]
	}
	b.WriteString("data: ")
	b.Write(data)
	b.WriteString("\n\n")
	return ew.write(b.Bytes())
}

// WriteComment writes a comment line, which clients ignore; it keeps idle
// streams from being closed by intermediaries.
func (ew *EventWriter) WriteComment(text string) error {
	if strings.ContainsAny(text, "\r\n") {
		return errBadEventField
	}
	return ew.write([]byte(": " + text + "\n\n"))
}

func (ew *EventWriter) write(p []byte) error {
	if _, err := ew.w.Write(p); err != nil {
		return fmt.Errorf("write server-sent event: %w", err)
	}
	if ew.flush != nil {
		if err := ew.flush(); err != nil {
			return fmt.Errorf("flush server-sent event: %w", err)
		}
	}
	return nil
}
