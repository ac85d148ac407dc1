//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package httptool

import (
	"crypto/tls"
	"errors"
	"net"
	"syscall"
)

// socketOf returns the socket under an agent's connection, if it can be
// reached.
func socketOf(conn net.Conn) (syscall.RawConn, bool) {
	if tc, isTLS := conn.(*tls.Conn); isTLS {
		conn = tc.NetConn()
	}
	sc, isSys := conn.(syscall.Conn)
	if !isSys {
		return nil, false
	}
	raw, err := sc.SyscallConn()
	return raw, err == nil
}

// peerClosed reports whether the agent's side of a socket is closed, with
// a read that neither consumes nor waits (MSG_PEEK, MSG_DONTWAIT): end of
// file or a reset means closed. Bytes waiting to be read (a pipelined
// request, a TLS alert) read as open.
func peerClosed(raw syscall.RawConn) bool {
	var buf [1]byte
	var n int
	var rerr error
	if err := raw.Read(func(fd uintptr) bool {
		n, _, rerr = syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return true
	}); err != nil {
		return true // closed on this side
	}
	switch {
	case rerr == nil:
		return n == 0
	case errors.Is(rerr, syscall.EAGAIN), errors.Is(rerr, syscall.EWOULDBLOCK), errors.Is(rerr, syscall.EINTR):
		return false
	default:
		return true // ECONNRESET and the like
	}
}
