package main

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/bundle"

	"github.com/agenthelm/agenthelm/internal/paymentsapi"
)

// TestServePolicyBundle: serve takes its policy from a signed OPA bundle,
// polls for a new one and activates it, and keeps the last one in the
// journal directory.
func TestServePolicyBundle(t *testing.T) {
	t.Setenv("AGENTHELM_TEST_PAYMENTS_KEY", "k")
	t.Setenv("AGENTHELM_TEST_BUNDLE_TOKEN", "bundle-t0k")
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	keyFile := filepath.Join(t.TempDir(), "bundle.pub.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	signed := func(maxAmount int) []byte {
		rego := `package agenthelm.authz

default decision := {"allow": true, "require_approval": false, "reasons": []}

decision := {"allow": false, "require_approval": false, "reasons": ["above the central limit"]} if input.arguments.amount > data.limits.max
`
		b := bundle.Bundle{Data: map[string]any{"limits": map[string]any{"max": maxAmount}},
			Modules: []bundle.ModuleFile{{URL: "/authz.rego", Path: "/authz.rego", Raw: []byte(rego)}}}
		pk, _ := x509.MarshalPKCS8PrivateKey(key)
		if err := b.GenerateSignature(bundle.NewSigningConfig(string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk})), "RS256", ""), "central", false); err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := bundle.NewWriter(&buf).Write(b); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	var mu sync.Mutex
	current, auth := signed(1000), ""
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		auth = r.Header.Get("Authorization")
		_, _ = w.Write(current)
	}))
	defer srv.Close()

	api := paymentsapi.Start(t)
	cfg := strings.Replace(restConfig(api, ""), "policy: {mode: dry-run}",
		"policy:\n  bundle: {url: "+srv.URL+"/agenthelm.tar.gz, poll: 100ms, key_id: central, public_key_file: "+keyFile+
			", headers: {Authorization: \"Bearer ${AGENTHELM_TEST_BUNDLE_TOKEN}\"}}", 1)
	sp := startServe(t, cfg)
	charge := "http://" + sp.http + "/payments/v1/charges"
	if r := httpDo(t, "POST", charge, `{"amount":500,"currency":"eur"}`); r.status != http.StatusCreated {
		t.Fatalf("a charge under the bundle's limit: %d %s", r.status, r.body)
	}
	mu.Lock()
	if auth != "Bearer bundle-t0k" {
		t.Errorf("the bundle server got Authorization %q", auth)
	}
	current = signed(100) // the central team lowers the limit
	mu.Unlock()
	var r httpReply
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if r = httpDo(t, "POST", charge, `{"amount":200,"currency":"eur"}`); r.status == http.StatusForbidden {
			break
		}
	}
	if pr := problemFrom(t, r); r.status != http.StatusForbidden || len(pr.Reasons) != 1 || pr.Reasons[0] != "above the central limit" {
		t.Errorf("after the new bundle: %d %s, want the lowered limit to deny", r.status, r.body)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(sp.config), "data", "policy-bundle.tar.gz")); err != nil {
		t.Errorf("the last bundle is not kept in the journal directory: %v", err)
	}
}
