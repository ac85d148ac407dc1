package policy

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/open-policy-agent/opa/v1/bundle"
)

// bundleServer serves one bundle at a time, with an ETag, like an OPA
// bundle server (or a static file server in front of `opa build`).
type bundleServer struct {
	mu       sync.Mutex
	body     []byte
	etag     string
	requests int
	notMod   int
	auth     string
}

func (s *bundleServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	s.auth = r.Header.Get("Authorization")
	if r.Header.Get("If-None-Match") == s.etag {
		s.notMod++
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("ETag", s.etag)
	_, _ = w.Write(s.body)
}

func (s *bundleServer) set(b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.body = b
	s.etag = fmt.Sprintf(`"v%d"`, len(b)+s.requests)
}

// makeBundle writes a bundle of one policy file and a data document,
// signed with key when it is not nil.
func makeBundle(t *testing.T, rego string, data map[string]any, key *rsa.PrivateKey) []byte {
	t.Helper()
	b := bundle.Bundle{
		Data:    data,
		Modules: []bundle.ModuleFile{{URL: "/authz.rego", Path: "/authz.rego", Raw: []byte(rego)}},
	}
	if key != nil {
		der, _ := x509.MarshalPKCS8PrivateKey(key)
		pemKey := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
		if err := b.GenerateSignature(bundle.NewSigningConfig(string(pemKey), "RS256", ""), "ops", false); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if err := bundle.NewWriter(&buf).Write(b); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

const bundlePolicy = `package agenthelm.authz

default decision := {"allow": false, "require_approval": false, "reasons": ["not listed"]}

decision := {"allow": true, "require_approval": false, "reasons": []} if input.tool.name in data.allowed
`

func TestBundleLoadsPollsAndRejects(t *testing.T) {
	srv := &bundleServer{}
	srv.set(makeBundle(t, bundlePolicy, map[string]any{"allowed": []any{"read"}}, nil))
	ts := httptest.NewServer(srv)
	defer ts.Close()
	cache := filepath.Join(t.TempDir(), "bundle.tar.gz")
	src := &BundleSource{URL: ts.URL + "/bundles/agenthelm.tar.gz", Headers: map[string]string{"Authorization": "Bearer t0k"}, CacheFile: cache}
	e, err := New(context.Background(), Options{Bundle: src})
	if err != nil {
		t.Fatal(err)
	}
	decide := func(tool string) bool {
		return e.Decide(context.Background(), NewInput(mcpCall("files", tool, `{}`), pivot, agent, sagaWith(), now)).Allow
	}
	if !decide("read") || decide("write") {
		t.Fatal("the bundle's policy does not decide")
	}
	if srv.auth != "Bearer t0k" {
		t.Errorf("the bundle request carried Authorization %q", srv.auth)
	}
	first := e.Status().Revision

	// Unchanged: 304, same revision.
	if err := e.Reload(context.Background()); err != nil || srv.notMod != 1 || e.Status().Revision != first {
		t.Errorf("unchanged bundle: err %v, 304s %d, revision %s (was %s)", err, srv.notMod, e.Status().Revision, first)
	}
	// A new bundle is activated.
	srv.set(makeBundle(t, bundlePolicy, map[string]any{"allowed": []any{"read", "write"}}, nil))
	if err := e.Reload(context.Background()); err != nil || !decide("write") {
		t.Fatalf("new bundle: err %v, write allowed %v", err, decide("write"))
	}
	// A broken one is rejected; the previous revision keeps deciding.
	srv.set(makeBundle(t, "package agenthelm.authz\n\ndecision := {", nil, nil))
	if err := e.Reload(context.Background()); err == nil || !strings.Contains(err.Error(), "bundle") {
		t.Errorf("broken bundle: err %v, want a rejection naming the bundle", err)
	}
	if !decide("write") || e.Status().LastError == "" {
		t.Errorf("after a rejected bundle: write allowed %v, status %+v", decide("write"), e.Status())
	}

	// The server goes away: a restart uses the last activated bundle.
	ts.Close()
	e2, err := New(context.Background(), Options{Bundle: src})
	if err != nil {
		t.Fatalf("restart without the server: %v", err)
	}
	if !e2.Decide(context.Background(), NewInput(mcpCall("files", "write", `{}`), pivot, agent, sagaWith(), now)).Allow {
		t.Error("the cached bundle is not the last activated one")
	}
	// Without a cache it refuses to start, saying why.
	if _, err := New(context.Background(), Options{Bundle: &BundleSource{URL: src.URL}}); err == nil || !strings.Contains(err.Error(), "fetch bundle") {
		t.Errorf("no server, no cache: err %v", err)
	}
}

func TestBundleSignature(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	pub := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	data := map[string]any{"allowed": []any{"read"}}
	for _, tc := range []struct {
		name string
		body []byte
		err  string
	}{
		{"signed", makeBundle(t, bundlePolicy, data, key), ""},
		{"unsigned", makeBundle(t, bundlePolicy, data, nil), "signature"},
		{"signed with another key", makeBundle(t, bundlePolicy, data, other), "verif"},
	} {
		srv := &bundleServer{}
		srv.set(tc.body)
		ts := httptest.NewServer(srv)
		_, err := New(context.Background(), Options{Bundle: &BundleSource{URL: ts.URL, PublicKey: pub, KeyID: "ops"}})
		ts.Close()
		t.Logf("%s: %v", tc.name, err)
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: New = %v, want error containing %q", tc.name, err, tc.err)
		}
	}
}
