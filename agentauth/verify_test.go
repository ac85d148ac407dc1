package agentauth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jwt"
)

var now = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func sign(t *testing.T, alg jwa.SignatureAlgorithm, key any, claims map[string]any) string {
	t.Helper()
	tok := jwt.New()
	for k, v := range claims {
		if err := tok.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	b, err := jwt.Sign(tok, jwt.WithKey(alg, key))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeFile(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSubject(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	der, _ := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	pemFile := writeFile(t, "agents.pem", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	ecJWK, _ := jwk.Import(&ecKey.PublicKey)
	set := jwk.NewSet()
	_ = set.AddKey(ecJWK)
	setJSON, _ := json.Marshal(set)
	jwksFile := writeFile(t, "agents.jwks.json", setJSON)
	secret := strings.Repeat("s3cret-", 6)

	valid := map[string]any{"sub": "support-bot", "iss": "https://idp.example", "aud": "agenthelm",
		"exp": now.Add(time.Hour), "tenant": "acme"}
	with := func(k string, v any) map[string]any {
		c := map[string]any{}
		for kk, vv := range valid {
			c[kk] = vv
		}
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	opts := func(o Options) Options {
		o.Issuer, o.Audience, o.Now = "https://idp.example", "agenthelm", func() time.Time { return now }
		return o
	}
	for _, tc := range []struct {
		name   string
		opts   Options
		header string
		want   string
		err    string
	}{
		{"RS256 from PEM", opts(Options{KeysFile: pemFile}), "Bearer " + sign(t, jwa.RS256(), rsaKey, valid), "support-bot", ""},
		{"ES256 from JWK set", opts(Options{KeysFile: jwksFile}), "Bearer " + sign(t, jwa.ES256(), ecKey, valid), "support-bot", ""},
		{"HS256 shared secret", opts(Options{Secret: secret}), "bearer " + sign(t, jwa.HS256(), []byte(secret), valid), "support-bot", ""},
		{"other claim", opts(Options{Secret: secret, Claim: "tenant"}), "Bearer " + sign(t, jwa.HS256(), []byte(secret), valid), "acme", ""},
		{"no header", opts(Options{KeysFile: pemFile}), "", "", ""},
		{"wrong key", opts(Options{KeysFile: pemFile}), "Bearer " + sign(t, jwa.RS256(), otherKey, valid), "", "invalid bearer token"},
		{"HS256 signed with the public key (algorithm confusion)", opts(Options{KeysFile: pemFile}),
			"Bearer " + sign(t, jwa.HS256(), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), valid), "", "invalid bearer token"},
		{"expired", opts(Options{KeysFile: pemFile}), "Bearer " + sign(t, jwa.RS256(), rsaKey, with("exp", now.Add(-time.Hour))), "", "exp"},
		{"not yet valid", opts(Options{KeysFile: pemFile}), "Bearer " + sign(t, jwa.RS256(), rsaKey, with("nbf", now.Add(time.Hour))), "", "nbf"},
		{"wrong issuer", opts(Options{KeysFile: pemFile}), "Bearer " + sign(t, jwa.RS256(), rsaKey, with("iss", "https://evil.example")), "", "iss"},
		{"wrong audience", opts(Options{KeysFile: pemFile}), "Bearer " + sign(t, jwa.RS256(), rsaKey, with("aud", "another-app")), "", "aud"},
		{"no subject", opts(Options{KeysFile: pemFile}), "Bearer " + sign(t, jwa.RS256(), rsaKey, with("sub", nil)), "", `no string claim "sub"`},
		{"basic auth", opts(Options{KeysFile: pemFile}), "Basic YWxpY2U6c2VjcmV0", "", "not \"Bearer <token>\""},
		{"garbage", opts(Options{KeysFile: pemFile}), "Bearer not.a.jwt", "", "invalid bearer token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := New(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			for range 2 { // the second time from the cache
				got, err := v.Subject(tc.header)
				if tc.err != "" {
					if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.err) {
						t.Fatalf("Subject = %q, %v; want an error mentioning %q", got, err, tc.err)
					}
					continue
				}
				if err != nil || got != tc.want {
					t.Fatalf("Subject = %q, %v; want %q", got, err, tc.want)
				}
			}
		})
	}
}

func TestCachedTokenExpires(t *testing.T) {
	secret := strings.Repeat("k", 32)
	clock := now
	v, err := New(Options{Secret: secret, Now: func() time.Time { return clock }, Leeway: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	h := "Bearer " + sign(t, jwa.HS256(), []byte(secret), map[string]any{"sub": "a", "exp": now.Add(time.Minute)})
	if sub, err := v.Subject(h); err != nil || sub != "a" {
		t.Fatalf("Subject = %q, %v", sub, err)
	}
	clock = now.Add(2 * time.Minute)
	if _, err := v.Subject(h); err == nil {
		t.Fatal("an expired token was accepted from the cache")
	}
}

func TestNewRefusesBadKeys(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
		err  string
	}{
		{"nothing", Options{}, "nothing to verify"},
		{"both", Options{KeysFile: "x", Secret: strings.Repeat("k", 32)}, "not both"},
		{"short secret", Options{Secret: "hunter2"}, "shorter than 32"},
		{"missing file", Options{KeysFile: filepath.Join(t.TempDir(), "none.pem")}, "no such file"},
		{"not keys", Options{KeysFile: writeFile(t, "x.json", []byte(`{"hello": "world"}`))}, "not a JWK set"},
		{"symmetric JWK", Options{KeysFile: writeFile(t, "k.json", []byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"}]}`))}, "symmetric"},
	} {
		if _, err := New(tc.opts); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: New = %v, want an error mentioning %q", tc.name, err, tc.err)
		}
	}
}
