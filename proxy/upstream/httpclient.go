package upstream

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"
)

// StatusError is an HTTP error status from an upstream. It reaches the
// Handler through RequestFailed, or is returned by Send for a notification.
type StatusError struct {
	Upstream string
	Code     int    // HTTP status code
	Status   string // e.g. "500 Internal Server Error"
	Excerpt  string // the start of the response body, sanitized for logs
}

func (e *StatusError) Error() string {
	msg := fmt.Sprintf("upstream %q answered HTTP %s", e.Upstream, e.Status)
	if e.Excerpt != "" {
		msg += ": " + e.Excerpt
	}
	return msg
}

const (
	// excerptBytes bounds the part of an error body or a dropped frame that
	// goes into errors and logs.
	excerptBytes = 200
	// errorBodyBytes bounds how much of an error response is read: enough
	// for a JSON-RPC error object, not an arbitrary page.
	errorBodyBytes = 64 << 10
)

// excerpt returns the start of b as printable text for errors and logs.
func excerpt(b []byte) string {
	b = bytes.TrimSpace(b)
	cut := len(b) > excerptBytes
	if cut {
		b = b[:excerptBytes]
		for len(b) > 0 && !utf8.Valid(b) {
			b = b[:len(b)-1] // do not split a rune
		}
	}
	s := strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			return ' '
		}
		return r
	}, string(b))
	if cut {
		s += "..."
	}
	return s
}

// sharedTransport carries the requests of every HTTP upstream that has no
// client of its own. Go's default keeps two idle connections per host: a
// sidecar relaying many concurrent calls to one upstream would close and
// redial a connection for most calls (and pile up sockets in TIME_WAIT).
var sharedTransport = func() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 64
	return t
}()

// newHTTPClient returns the client for one upstream: the configured one (or
// a default one) that refuses redirects to another origin, so that static
// headers such as API keys are never sent to a host they were not meant for.
func newHTTPClient(base *http.Client) *http.Client {
	c := &http.Client{}
	if base != nil {
		*c = *base //nolint:govet // copying the exported config fields is intended
	}
	if c.Transport == nil {
		c.Transport = sharedTransport
	}
	next := c.CheckRedirect
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if !sameOrigin(req.URL, via[0].URL) {
			return fmt.Errorf("redirect to another origin (%s) refused", origin(req.URL))
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
	return c
}

// safeURL renders u for errors and logs without what may hold secrets:
// user info, query and fragment (some APIs take their key in the query).
func safeURL(u *url.URL) string {
	v := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}
	return v.String()
}

func origin(u *url.URL) string {
	return strings.ToLower(u.Scheme) + "://" + strings.ToLower(hostPort(u))
}

func sameOrigin(a, b *url.URL) bool { return origin(a) == origin(b) }

// hostPort returns u's host with the scheme's default port made explicit,
// so that http://h and http://h:80 compare equal.
func hostPort(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	switch strings.ToLower(u.Scheme) {
	case "http":
		return u.Host + ":80"
	case "https":
		return u.Host + ":443"
	}
	return u.Host
}

// readErrorBody reads the start of an error response and closes it.
func readErrorBody(resp *http.Response) []byte {
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, errorBodyBytes))
	return b
}

// drainClose reads a little of a body we do not need, so that the
// connection can be reused, and closes it.
func drainClose(body io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(body, 4<<10))
	_ = body.Close()
}

// statusError builds the error for an HTTP error status.
func statusError(upstream string, resp *http.Response, body []byte) *StatusError {
	return &StatusError{Upstream: upstream, Code: resp.StatusCode, Status: resp.Status, Excerpt: excerpt(body)}
}

// forwardedHeaderDenied lists headers never taken from SendOptions.Header:
// credentials (no token passthrough: an upstream's credentials come from
// configuration only), hop-by-hop headers, and the ones the transport owns.
var forwardedHeaderDenied = map[string]bool{
	"Authorization":       true,
	"Proxy-Authorization": true,
	"Cookie":              true,
	"Connection":          true,
	"Keep-Alive":          true,
	"Te":                  true,
	"Trailer":             true,
	"Transfer-Encoding":   true,
	"Upgrade":             true,
	"Host":                true,
	"Content-Length":      true,
	"Content-Type":        true,
	"Accept":              true,
	"Accept-Encoding":     true,
	"Mcp-Session-Id":      true,
	"Last-Event-Id":       true,
}

// setHeaders puts the per-message headers, then the configured static
// headers (which win) on h.
func setHeaders(h http.Header, static map[string]string, forwarded http.Header) {
	for k, vs := range forwarded {
		ck := http.CanonicalHeaderKey(k)
		if forwardedHeaderDenied[ck] {
			continue
		}
		for _, v := range vs {
			h.Add(ck, v)
		}
	}
	for k, v := range static {
		h.Set(k, v)
	}
}
