package agentauth

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"
)

// Options configure a Verifier. Exactly one of KeysFile and Secret is set.
type Options struct {
	// KeysFile holds the issuer's public keys: a JWK set (JSON) or PEM
	// public keys. The algorithm follows from each key (RSA, ECDSA,
	// Ed25519), never from the token's header.
	KeysFile string
	// Secret is a shared secret for HS256 tokens.
	Secret string
	// Claim names the claim that identifies the agent. Empty: "sub".
	Claim string
	// Issuer and Audience, when set, must match the token's iss and aud.
	Issuer, Audience string
	// Leeway tolerates clock skew for exp and nbf. Zero: 30 s.
	Leeway time.Duration
	// Now is the clock (tests). Nil: time.Now.
	Now func() time.Time
}

// ErrInvalid wraps every reason a token is refused.
var ErrInvalid = errors.New("invalid bearer token")

// Verifier checks agents' tokens. It is safe for concurrent use.
type Verifier struct {
	opts  Options
	parse []jwt.ParseOption

	mu    sync.Mutex
	cache map[string]cached // token -> verified subject
}

type cached struct {
	subject string
	expires time.Time // zero: the token has no exp
}

// maxCached bounds the cache of verified tokens; when it is full it is
// cleared (a token is verified again on its next use).
const maxCached = 1024

// New reads the keys and returns a verifier. Errors name what is wrong
// with the keys file.
func New(o Options) (*Verifier, error) {
	if o.Claim == "" {
		o.Claim = "sub"
	}
	if o.Leeway == 0 {
		o.Leeway = 30 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	v := &Verifier{opts: o, cache: map[string]cached{}}
	switch {
	case o.KeysFile != "" && o.Secret != "":
		return nil, errors.New("set either keys or a secret, not both")
	case o.KeysFile != "":
		raw, err := os.ReadFile(o.KeysFile)
		if err != nil {
			return nil, err
		}
		set, err := parseKeys(raw)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", o.KeysFile, err)
		}
		v.parse = append(v.parse, jwt.WithKeySet(set, jws.WithInferAlgorithmFromKey(true), jws.WithUseDefault(true)))
	case o.Secret != "":
		if len(o.Secret) < 32 {
			return nil, errors.New("the shared secret is shorter than 32 bytes: too easy to guess")
		}
		v.parse = append(v.parse, jwt.WithKey(jwa.HS256(), []byte(o.Secret)))
	default:
		return nil, errors.New("no keys and no secret: nothing to verify tokens with")
	}
	v.parse = append(v.parse, jwt.WithValidate(true), jwt.WithAcceptableSkew(o.Leeway),
		jwt.WithClock(jwt.ClockFunc(o.Now)))
	if o.Issuer != "" {
		v.parse = append(v.parse, jwt.WithIssuer(o.Issuer))
	}
	if o.Audience != "" {
		v.parse = append(v.parse, jwt.WithAudience(o.Audience))
	}
	return v, nil
}

// parseKeys reads a JWK set, a single JWK, or PEM public keys.
func parseKeys(raw []byte) (jwk.Set, error) {
	text := strings.TrimSpace(string(raw))
	var set jwk.Set
	var err error
	if strings.HasPrefix(text, "-----BEGIN") {
		set, err = jwk.Parse(raw, jwk.WithPEM(true))
	} else {
		set, err = jwk.Parse(raw)
	}
	if err != nil {
		return nil, fmt.Errorf("not a JWK set or PEM public keys: %w", err)
	}
	if set.Len() == 0 {
		return nil, errors.New("holds no keys")
	}
	for i := range set.Len() {
		k, _ := set.Key(i)
		if _, isSymmetric := k.(jwk.SymmetricKey); isSymmetric {
			return nil, errors.New("holds a symmetric key: use secret for shared secrets, keys for public keys")
		}
		if pk, err := k.PublicKey(); err == nil {
			_ = set.RemoveKey(k)
			_ = set.AddKey(pk) // never keep private key material around
		}
	}
	return set, nil
}

// Subject verifies the bearer token in an Authorization header value and
// returns the agent's identity claim. It returns "" and no error when the
// header is empty; any other value that is not a valid bearer token is an
// error wrapping ErrInvalid.
func (v *Verifier) Subject(authorization string) (string, error) {
	if authorization == "" {
		return "", nil
	}
	scheme, token, ok := strings.Cut(authorization, " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", fmt.Errorf("%w: the Authorization header is not \"Bearer <token>\"", ErrInvalid)
	}
	now := v.opts.Now()
	v.mu.Lock()
	c, hit := v.cache[token]
	v.mu.Unlock()
	if hit && (c.expires.IsZero() || now.Before(c.expires.Add(v.opts.Leeway))) {
		return c.subject, nil
	}
	tok, err := jwt.ParseString(token, v.parse...)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	var sub string
	if err := tok.Get(v.opts.Claim, &sub); err != nil || sub == "" {
		return "", fmt.Errorf("%w: no string claim %q names the agent", ErrInvalid, v.opts.Claim)
	}
	exp, _ := tok.Expiration()
	v.mu.Lock()
	if len(v.cache) >= maxCached {
		clear(v.cache)
	}
	v.cache[token] = cached{subject: sub, expires: exp}
	v.mu.Unlock()
	return sub, nil
}
