//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package httptool

import (
	"net"
	"syscall"
	"testing"
	"time"
)

// TestPeerClosed: a quiet connection and one with bytes waiting read as
// open, and peeking consumes nothing; a connection its peer closed reads as
// closed.
func TestPeerClosed(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dial := func() (client, server net.Conn) {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(); s.Close() })
		return c, s
	}
	// eventually polls peerClosed until it reports want, for up to 5 s.
	socket := func(conn net.Conn) syscall.RawConn {
		t.Helper()
		raw, ok := socketOf(conn)
		if !ok {
			t.Fatal("socketOf cannot reach a TCP socket")
		}
		return raw
	}
	eventually := func(conn net.Conn, want bool) {
		t.Helper()
		raw := socket(conn)
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			closed := peerClosed(raw)
			if closed == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("peerClosed = %v for 5 s, want %v", closed, want)
			}
		}
	}

	c, s := dial()
	if peerClosed(socket(s)) {
		t.Error("quiet connection: peerClosed = true, want open")
	}
	if _, err := c.Write([]byte("GET / HTTP/1.1\r\n")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if peerClosed(socket(s)) {
		t.Error("connection with bytes waiting: peerClosed = true, want open")
	}
	buf := make([]byte, 64)
	if n, err := s.Read(buf); err != nil || string(buf[:n]) != "GET / HTTP/1.1\r\n" {
		t.Errorf("after peeking, Read = %q, %v; want the bytes sent", buf[:n], err)
	}
	c.Close()
	eventually(s, true)

	// A reset (the peer closed with unread data on its side) is closed too.
	c, s = dial()
	if _, err := s.Write([]byte("unread")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	c.(*net.TCPConn).SetLinger(0)
	c.Close()
	eventually(s, true)
}
