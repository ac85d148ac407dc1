package httptool

import (
	"net"
	"sync"
	"time"
)

// hangupPoll is how often a routed call that has not been forwarded yet
// (deciding, held for approval, journaling its intent) checks whether its
// agent closed the connection. fasthttp has no such signal of its own.
const hangupPoll = time.Second

// watchHangup calls hungUp (once) if the agent closes conn, checking every
// hangupPoll while waiting reports true and until stop is called. Where
// the connection's socket cannot be reached (see socketOf), it does
// nothing.
func watchHangup(conn net.Conn, waiting func() bool, hungUp func()) (stop func()) {
	raw, ok := socketOf(conn)
	if !ok {
		return func() {}
	}
	var mu sync.Mutex
	stopped := false
	var t *time.Timer
	check := func() {
		mu.Lock()
		defer mu.Unlock()
		if stopped || !waiting() {
			return
		}
		if peerClosed(raw) {
			stopped = true
			go hungUp()
			return
		}
		t.Reset(hangupPoll)
	}
	mu.Lock()
	t = time.AfterFunc(hangupPoll, check)
	mu.Unlock()
	return func() {
		mu.Lock()
		stopped = true
		t.Stop()
		mu.Unlock()
	}
}
