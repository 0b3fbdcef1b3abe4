package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// VerifierConfig says whose tokens a service accepts.
type VerifierConfig struct {
	// JWKSFile or JWKSURL (exactly one) holds the public keys. A file is
	// re-read when it changes (a Kubernetes Secret or ConfigMap update), a
	// URL every RefreshInterval; both are re-read at once (at most every
	// MinRefresh) when a token names a key id they do not hold, so a new
	// key is accepted as soon as it is published.
	JWKSFile string
	JWKSURL  string
	// Keys, instead of a file or URL, is a fixed key set (tests and the
	// in-process dev stack, which hold their signer's public keys).
	Keys *jose.JSONWebKeySet
	// Issuer and Audience the token must carry.
	Issuer   string
	Audience string
	// Leeway for exp/nbf/iat against clock skew. Zero: 30 s.
	Leeway time.Duration
	// RefreshInterval for a URL. Zero: 5 min.
	RefreshInterval time.Duration
	// MinRefresh bounds re-reads caused by unknown key ids. Zero: 10 s.
	MinRefresh time.Duration
	// HTTPClient fetches the URL. Nil: a client with a 10 s timeout.
	HTTPClient *http.Client
	// Now is the time tokens are checked against. Nil: time.Now.
	Now func() time.Time
}

// Verifier checks bearer tokens: signature by a key of the set, issuer,
// audience, expiry and not-before, a subject and known roles.
type Verifier struct {
	cfg VerifierConfig

	mu      sync.Mutex
	keys    jose.JSONWebKeySet
	loaded  time.Time // when keys were read
	tried   time.Time // the last read attempt, successful or not
	fileMod time.Time // the file's modification time when read
}

// NewVerifier reads the keys once; a start-up without any key is an error.
func NewVerifier(ctx context.Context, cfg VerifierConfig) (*Verifier, error) {
	sources := 0
	for _, set := range []bool{cfg.JWKSFile != "", cfg.JWKSURL != "", cfg.Keys != nil} {
		if set {
			sources++
		}
	}
	if sources != 1 {
		return nil, errors.New("auth: configure exactly one of a JWKS file, a JWKS URL and a fixed key set")
	}
	if cfg.Issuer == "" || cfg.Audience == "" {
		return nil, errors.New("auth: issuer and audience are required")
	}
	if cfg.Leeway <= 0 {
		cfg.Leeway = 30 * time.Second
	}
	if cfg.RefreshInterval <= 0 {
		cfg.RefreshInterval = 5 * time.Minute
	}
	if cfg.MinRefresh <= 0 {
		cfg.MinRefresh = 10 * time.Second
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	v := &Verifier{cfg: cfg}
	if err := v.reload(ctx); err != nil {
		return nil, err
	}
	return v, nil
}

// Verify returns the principal a token names, or an error wrapping
// ErrInvalidToken whose text is for logs only.
func (v *Verifier) Verify(ctx context.Context, raw string) (Principal, error) {
	v.refreshIfStale(ctx)
	c, err := parseToken(raw, v.keySet())
	if errors.Is(err, jose.ErrJWKSKidNotFound) {
		// A key rotated in since the last read: read again (rate-limited).
		if v.refreshNow(ctx) {
			c, err = parseToken(raw, v.keySet())
		}
	}
	if err != nil {
		return Principal{}, err
	}
	expected := jwt.Expected{Issuer: v.cfg.Issuer, AnyAudience: jwt.Audience{v.cfg.Audience}, Time: v.cfg.Now()}
	if err := c.ValidateWithLeeway(expected, v.cfg.Leeway); err != nil {
		return Principal{}, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	if c.Expiry == nil {
		return Principal{}, fmt.Errorf("%w: no expiry", ErrInvalidToken)
	}
	if c.Subject == "" {
		return Principal{}, fmt.Errorf("%w: no subject", ErrInvalidToken)
	}
	if len(c.Roles) == 0 {
		return Principal{}, fmt.Errorf("%w: no roles", ErrInvalidToken)
	}
	for _, r := range c.Roles {
		if !slices.Contains(Roles, r) {
			return Principal{}, fmt.Errorf("%w: unknown role %q", ErrInvalidToken, r)
		}
	}
	return Principal{Subject: c.Subject, Roles: c.Roles}, nil
}

func (v *Verifier) keySet() jose.JSONWebKeySet {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.keys
}

// refreshIfStale re-reads a changed file or an old URL answer; a failed
// read keeps the keys held (an identity provider blip must not lock
// everyone out).
func (v *Verifier) refreshIfStale(ctx context.Context) {
	if v.cfg.Keys != nil {
		return // fixed keys: nothing to re-read
	}
	v.mu.Lock()
	now := v.cfg.Now()
	stale := false
	if v.cfg.JWKSFile != "" {
		if now.Sub(v.tried) >= time.Second {
			if info, err := os.Stat(v.cfg.JWKSFile); err == nil && !info.ModTime().Equal(v.fileMod) {
				stale = true
			}
			v.tried = now
		}
	} else {
		stale = now.Sub(v.loaded) >= v.cfg.RefreshInterval && now.Sub(v.tried) >= v.cfg.MinRefresh
	}
	v.mu.Unlock()
	if stale {
		_ = v.reload(ctx)
	}
}

// refreshNow re-reads the keys unless that was tried within MinRefresh;
// it tells whether it read them.
func (v *Verifier) refreshNow(ctx context.Context) bool {
	if v.cfg.Keys != nil {
		return false
	}
	v.mu.Lock()
	if v.cfg.Now().Sub(v.tried) < v.cfg.MinRefresh {
		v.mu.Unlock()
		return false
	}
	v.mu.Unlock()
	return v.reload(ctx) == nil
}

func (v *Verifier) reload(ctx context.Context) error {
	v.mu.Lock()
	v.tried = v.cfg.Now()
	v.mu.Unlock()
	var (
		raw []byte
		mod time.Time
		err error
	)
	switch {
	case v.cfg.Keys != nil:
		raw, err = json.Marshal(v.cfg.Keys)
	case v.cfg.JWKSFile != "":
		raw, mod, err = readFile(v.cfg.JWKSFile)
	default:
		raw, err = v.fetch(ctx)
	}
	if err != nil {
		return err
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(raw, &set); err != nil {
		return fmt.Errorf("auth: JWKS: %w", err)
	}
	var usable []jose.JSONWebKey
	for _, k := range set.Keys {
		if k.Valid() && k.IsPublic() && k.KeyID != "" && (k.Use == "" || k.Use == "sig") {
			usable = append(usable, k)
		}
	}
	if len(usable) == 0 {
		return errors.New("auth: JWKS holds no usable public signing key (each needs a kid)")
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.keys = jose.JSONWebKeySet{Keys: usable}
	v.loaded, v.fileMod = v.cfg.Now(), mod
	return nil
}

func readFile(path string) ([]byte, time.Time, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("auth: JWKS file: %w", err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("auth: JWKS file: %w", err)
	}
	return raw, info.ModTime(), nil
}

func (v *Verifier) fetch(ctx context.Context) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.cfg.JWKSURL, nil)
	if err != nil {
		return nil, fmt.Errorf("auth: JWKS URL: %w", err)
	}
	resp, err := v.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("auth: JWKS URL: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("auth: JWKS URL answered %s", resp.Status)
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("auth: JWKS URL: %w", err)
	}
	return raw, nil
}
