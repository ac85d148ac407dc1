//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package httptool

import (
	"net"
	"syscall"
)

// socketOf cannot peek at a socket on this platform: a held call waits for
// its decision even if its agent went away.
func socketOf(net.Conn) (syscall.RawConn, bool) { return nil, false }

func peerClosed(syscall.RawConn) bool { return false }
