package proxy

import (
	"errors"
	"sync"

	"github.com/agenthelm/agenthelm/proxy/jsonrpc"
)

// maxQueuedFrames bounds what a stream holds for a slow agent. Past it the
// stream is failed rather than letting one agent grow the proxy's memory.
const maxQueuedFrames = 4096

var errStreamOverflow = errors.New("agent is not reading: too many frames queued")

// stream is a destination for frames going to the agent: one HTTP response
// (a POST's, or the GET stream), the legacy SSE stream, or stdout.
// Producers call push from any goroutine; the owner of the underlying
// writer drains it. Frames keep their order.
type stream struct {
	mu     sync.Mutex
	frames []*jsonrpc.Message
	notify chan struct{} // has a value when frames may be waiting
	closed bool          // no more frames will be accepted
	err    error
	// final is set when the frame that ends this stream (a POST's response)
	// has been queued.
	final bool
}

func newStream() *stream { return &stream{notify: make(chan struct{}, 1)} }

// push queues a frame. It reports false if the stream no longer accepts
// frames. last marks the frame after which the stream ends.
func (s *stream) push(m *jsonrpc.Message, last bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.final {
		return false
	}
	if len(s.frames) >= maxQueuedFrames {
		s.closed, s.err = true, errStreamOverflow
		s.signal()
		return false
	}
	s.frames = append(s.frames, m)
	s.final = last
	s.signal()
	return true
}

func (s *stream) signal() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// take returns the queued frames, whether the final frame is among them,
// and whether the stream was closed.
func (s *stream) take() (frames []*jsonrpc.Message, final, closed bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	frames, s.frames = s.frames, nil
	return frames, s.final, s.closed, s.err
}

// close stops the stream accepting frames; the drainer sees closed.
func (s *stream) close(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed, s.err = true, err
		s.signal()
	}
}

// accepting reports whether push would take a frame.
func (s *stream) accepting() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.closed && !s.final
}
