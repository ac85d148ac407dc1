package policy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
)

// BundleSource is an OPA bundle server to take the policy from, for teams
// that distribute policy centrally: agenthelm polls URL for a bundle (a
// gzipped tarball of .rego and data files, as `opa build` writes it),
// verifies its signature when a key is configured, and activates it like
// a reloaded directory: a bundle that does not parse, compile or pass its
// load checks is rejected and the previous revision stays.
type BundleSource struct {
	// URL is the bundle's address (http or https). Required.
	URL string
	// Headers are sent with every request, for example Authorization.
	// Their values are never logged.
	Headers map[string]string
	// Poll is how often the bundle is fetched again (with If-None-Match).
	// Zero: DefaultBundlePoll.
	Poll time.Duration
	// PublicKey is the PEM public key (or HMAC secret) that bundles must be
	// signed with (.signatures.json, as `opa build --signing-key` writes).
	// Empty: signatures are not checked.
	PublicKey string
	// KeyID names the key in the signature; empty: "default".
	KeyID string
	// Algorithm is the signature's algorithm; empty: RS256.
	Algorithm string
	// CacheFile keeps the last activated bundle, so that agenthelm starts
	// with it when the server cannot be reached. Empty: no cache.
	CacheFile string
	// MaxBytes bounds a bundle; zero: 32 MiB.
	MaxBytes int64
	// Client makes the requests; nil: a client with a 30 s timeout.
	Client *http.Client
}

// DefaultBundlePoll is how often a bundle is fetched when Poll is zero.
const DefaultBundlePoll = 60 * time.Second

// errNotModified: the server has no newer bundle than the one active.
var errNotModified = errors.New("bundle not modified")

// fetchBundle downloads the bundle unless it still has etag. It returns the
// bundle's bytes and its new etag.
func (b *BundleSource) fetch(ctx context.Context, etag string) ([]byte, string, error) {
	client := b.Client
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.URL, nil)
	if err != nil {
		return nil, "", err
	}
	for k, v := range b.Headers {
		req.Header.Set(k, v)
	}
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, "", fmt.Errorf("fetch bundle: %w", err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotModified:
		return nil, etag, errNotModified
	default:
		return nil, "", fmt.Errorf("fetch bundle: the server answered %s", resp.Status)
	}
	limit := b.MaxBytes
	if limit <= 0 {
		limit = 32 << 20
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, "", fmt.Errorf("fetch bundle: %w", err)
	}
	if int64(len(raw)) > limit {
		return nil, "", fmt.Errorf("fetch bundle: larger than %d bytes", limit)
	}
	return raw, resp.Header.Get("ETag"), nil
}

// snapshot reads a bundle's tarball, verifying its signature if a key is
// configured, into the files of a policy snapshot: its modules (tests by
// their _test.rego name) and its data as one data.json.
func (b *BundleSource) snapshot(raw []byte) (*snapshot, error) {
	r := bundle.NewReader(bytes.NewReader(raw)).WithRegoVersion(ast.RegoV1).WithProcessAnnotations(true)
	if b.PublicKey != "" {
		id := b.KeyID
		if id == "" {
			id = "default"
		}
		alg := b.Algorithm
		if alg == "" {
			alg = "RS256"
		}
		r = r.WithBundleVerificationConfig(bundle.NewVerificationConfig(
			map[string]*bundle.KeyConfig{id: {Key: b.PublicKey, Algorithm: alg}}, id, "", nil))
	} else {
		r = r.WithSkipBundleVerification(true)
	}
	bd, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("read bundle: %w", err)
	}
	snap := &snapshot{dir: b.URL}
	for _, m := range bd.Modules {
		rel := strings.TrimPrefix(m.Path, "/")
		src := source{rel: rel, path: b.URL + "#" + rel, data: m.Raw}
		if strings.HasSuffix(rel, "_test.rego") {
			snap.tests = append(snap.tests, src)
		} else {
			snap.policies = append(snap.policies, src)
		}
	}
	if len(bd.Data) > 0 {
		data, err := json.Marshal(bd.Data)
		if err != nil {
			return nil, fmt.Errorf("read bundle: data: %w", err)
		}
		snap.data = append(snap.data, source{rel: "data.json", path: b.URL + "#data.json", data: data})
	}
	return snap, nil
}

// saveCache writes the activated bundle to the cache file (atomically).
func (b *BundleSource) saveCache(raw []byte) error {
	if b.CacheFile == "" {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(b.CacheFile), 0o700); err != nil {
		return err
	}
	tmp := b.CacheFile + ".tmp"
	if err := os.WriteFile(tmp, raw, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, b.CacheFile)
}

// readSnapshot reads the policy as it is now: the directory, or the
// bundle (only when it changed since etag; errNotModified otherwise). It
// returns the bundle's bytes and etag too (nil and "" for a directory).
func (e *Engine) readSnapshot(ctx context.Context, etag string) (*snapshot, []byte, string, error) {
	b := e.opts.Bundle
	if b == nil {
		snap, err := readDir(e.opts.Dir)
		return snap, nil, "", err
	}
	raw, newTag, err := b.fetch(ctx, etag)
	if err != nil {
		return nil, nil, "", err
	}
	snap, err := b.snapshot(raw)
	return snap, raw, newTag, err
}

// where names the policy's source in messages.
func (e *Engine) where() string {
	if e.opts.Bundle != nil {
		return "bundle " + e.opts.Bundle.URL
	}
	return e.opts.Dir
}

// pollBundle reloads the bundle every Poll until ctx ends.
func (e *Engine) pollBundle(ctx context.Context) error {
	every := e.opts.Bundle.Poll
	if every <= 0 {
		every = DefaultBundlePoll
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := e.Reload(ctx); err != nil && ctx.Err() == nil {
				e.log.Warn("policy bundle not activated; the previous revision stays", "err", err)
			}
		}
	}
}
