// Package paymentsapi is a small REST payments API for tests of the HTTP
// tool proxy: a real net/http server on 127.0.0.1 that keeps a ledger of
// charges and refunds, honours Idempotency-Key, and records every request
// exactly as it arrived (raw path, headers), so that tests can check what
// reached the upstream.
//
// Endpoints, all JSON:
//
//	POST   /v1/charges        {amount, currency} -> 201 {id, amount, currency, status}
//	GET    /v1/charges        -> 200 [charges]
//	GET    /v1/charges/{id}   -> 200 charge | 404
//	DELETE /v1/charges/{id}   -> 200 charge, status "cancelled" | 404
//	POST   /v1/refunds        {charge} -> 201 {id, charge, amount} | 404 unknown charge
//	POST   /v1/fail           -> 500 {"error": "..."} (a call that fails)
//	POST   /v1/slow           -> hangs until the client goes away or the API stops
//	GET    /v1/big[/...]?bytes=N -> 200 with N bytes
//
// A request with an Idempotency-Key already seen for the same method and
// path gets the first answer again and changes nothing.
//
// It imports nothing of agenthelm.
package paymentsapi

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Charge is one charge in the ledger.
type Charge struct {
	ID       string `json:"id"`
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
	Status   string `json:"status"`
}

// Refund is one refund in the ledger.
type Refund struct {
	ID     string `json:"id"`
	Charge string `json:"charge"`
	Amount int64  `json:"amount"`
	// Key is the Idempotency-Key the refund was requested with.
	Key string `json:"-"`
}

// Request is a request as the API received it.
type Request struct {
	Method string
	// URI is the request target exactly as sent (path and query, never
	// normalized).
	URI    string
	Header http.Header
	Body   string
}

// API is a running payments API.
type API struct {
	// URL is its base URL, http://127.0.0.1:PORT.
	URL string

	srv     *http.Server
	ln      net.Listener
	stopped chan struct{} // closed when the API stops: hanging requests end

	mu       sync.Mutex
	quiet    bool // requests are not recorded (benchmarks)
	charges  []Charge
	refunds  []Refund
	requests []Request
	answers  map[string]answer // method + " " + path + " " + key -> first answer
}

type answer struct {
	status int
	body   []byte
}

// Start runs an API on 127.0.0.1 until the test ends.
func Start(t testing.TB) *API {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := &API{URL: "http://" + ln.Addr().String(), ln: ln, stopped: make(chan struct{}), answers: map[string]answer{}}
	a.srv = &http.Server{Handler: a}
	go func() { _ = a.srv.Serve(ln) }()
	t.Cleanup(a.Stop)
	return a
}

// Stop stops the API: it stops listening and ends hanging requests. It is
// safe to call more than once.
func (a *API) Stop() {
	a.mu.Lock()
	select {
	case <-a.stopped:
		a.mu.Unlock()
		return
	default:
		close(a.stopped)
	}
	a.mu.Unlock()
	_ = a.srv.Close()
}

// Addr is the API's host:port.
func (a *API) Addr() string { return a.ln.Addr().String() }

// SetRecording turns the recording of requests on (the default) or off,
// for benchmarks that send more requests than are worth keeping.
func (a *API) SetRecording(on bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.quiet = !on
}

// Charges returns the ledger's charges.
func (a *API) Charges() []Charge {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.charges)
}

// Refunds returns the ledger's refunds.
func (a *API) Refunds() []Refund {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.refunds)
}

// Requests returns every request received, in order.
func (a *API) Requests() []Request {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.requests)
}

// ServeHTTP routes on the raw path: http.ServeMux would clean it (and
// redirect), and the point is to see what arrived.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 64<<20))
	a.mu.Lock()
	if !a.quiet {
		a.requests = append(a.requests, Request{Method: r.Method, URI: r.RequestURI, Header: r.Header.Clone(), Body: string(body)})
	}
	a.mu.Unlock()

	path := r.URL.EscapedPath()
	switch {
	case r.Method == http.MethodPost && path == "/v1/slow":
		select {
		case <-r.Context().Done():
		case <-a.stopped:
		}
		return
	case r.Method == http.MethodGet && (path == "/v1/big" || strings.HasPrefix(path, "/v1/big/")):
		n, _ := strconv.Atoi(r.URL.Query().Get("bytes"))
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = w.Write([]byte(strings.Repeat("x", n)))
		return
	}

	key := r.Header.Get("Idempotency-Key")
	a.mu.Lock()
	defer a.mu.Unlock()
	if key != "" {
		if prev, ok := a.answers[r.Method+" "+path+" "+key]; ok {
			reply(w, prev.status, prev.body, true)
			return
		}
	}
	status, out := a.serve(r.Method, path, body, key)
	b, _ := json.Marshal(out)
	if key != "" && r.Method != http.MethodGet {
		a.answers[r.Method+" "+path+" "+key] = answer{status, b}
	}
	reply(w, status, b, false)
}

func reply(w http.ResponseWriter, status int, body []byte, replayed bool) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Ledger", "paymentsapi")
	if replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

type apiError struct {
	Error string `json:"error"`
}

// serve changes the ledger. The caller holds a.mu.
func (a *API) serve(method, path string, body []byte, key string) (int, any) {
	switch {
	case method == http.MethodPost && path == "/v1/charges":
		var in struct {
			Amount   int64  `json:"amount"`
			Currency string `json:"currency"`
		}
		if err := json.Unmarshal(body, &in); err != nil || in.Amount <= 0 {
			return http.StatusBadRequest, apiError{"want {amount > 0, currency}"}
		}
		c := Charge{ID: fmt.Sprintf("ch_%d", len(a.charges)+1), Amount: in.Amount, Currency: in.Currency, Status: "succeeded"}
		a.charges = append(a.charges, c)
		return http.StatusCreated, c
	case method == http.MethodGet && path == "/v1/charges":
		return http.StatusOK, a.charges
	case strings.HasPrefix(path, "/v1/charges/") && (method == http.MethodGet || method == http.MethodDelete):
		id := strings.TrimPrefix(path, "/v1/charges/")
		for i := range a.charges {
			if a.charges[i].ID == id {
				if method == http.MethodDelete {
					a.charges[i].Status = "cancelled"
				}
				return http.StatusOK, a.charges[i]
			}
		}
		return http.StatusNotFound, apiError{"no charge " + id}
	case method == http.MethodPost && path == "/v1/refunds":
		var in struct {
			Charge string `json:"charge"`
		}
		_ = json.Unmarshal(body, &in)
		for _, c := range a.charges {
			if c.ID == in.Charge {
				rf := Refund{ID: fmt.Sprintf("re_%d", len(a.refunds)+1), Charge: c.ID, Amount: c.Amount, Key: key}
				a.refunds = append(a.refunds, rf)
				return http.StatusCreated, rf
			}
		}
		return http.StatusNotFound, apiError{fmt.Sprintf("no charge %q to refund", in.Charge)}
	case method == http.MethodPost && path == "/v1/fail":
		return http.StatusInternalServerError, apiError{"the payments API failed on purpose"}
	}
	return http.StatusNotFound, apiError{"no such endpoint: " + method + " " + path}
}
