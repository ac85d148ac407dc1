//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package httptool

import (
	"crypto/tls"
	"errors"
	"net"
	"syscall"
)

// peerClosed reports whether the agent's side of conn is closed, with a
// read that neither consumes nor waits (MSG_PEEK, MSG_DONTWAIT): end of
// file or a reset means closed. Bytes waiting to be read (a pipelined
// request, a TLS alert) read as open. ok is false where the socket cannot
// be reached.
func peerClosed(conn net.Conn) (closed, ok bool) {
	if tc, isTLS := conn.(*tls.Conn); isTLS {
		conn = tc.NetConn()
	}
	sc, isSys := conn.(syscall.Conn)
	if !isSys {
		return false, false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false, false
	}
	var buf [1]byte
	var n int
	var rerr error
	if err := raw.Read(func(fd uintptr) bool {
		n, _, rerr = syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return true
	}); err != nil {
		return true, true // closed on this side
	}
	switch {
	case rerr == nil:
		return n == 0, true
	case errors.Is(rerr, syscall.EAGAIN), errors.Is(rerr, syscall.EWOULDBLOCK), errors.Is(rerr, syscall.EINTR):
		return false, true
	default:
		return true, true // ECONNRESET and the like
	}
}
