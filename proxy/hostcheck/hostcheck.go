// Package hostcheck is the DNS rebinding protection of agenthelm's front
// doors: a request whose Host (or Origin) names neither a loopback address
// nor an allowed host is refused, so that a web page a browser opened
// cannot reach the sidecar, and through it the tools and the credentials
// agenthelm adds.
package hostcheck

import (
	"net"
	"strings"
)

// Allowed reports whether hostport (a Host header, or the host of an
// Origin) names this machine's loopback (localhost, 127.0.0.0/8, ::1) or
// one of allowed ("*" allows any), case-insensitively, with or without a
// port.
func Allowed(hostport string, allowed []string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return true
	}
	for _, a := range allowed {
		if a == "*" || strings.EqualFold(a, host) {
			return true
		}
	}
	return false
}
