package auth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

const (
	testIssuer   = "sagasuite-test"
	testAudience = "sagasuite"
)

type testClock struct{ now atomic.Int64 }

func newTestClock() *testClock {
	c := &testClock{}
	c.now.Store(time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC).UnixNano())
	return c
}
func (c *testClock) Now() time.Time          { return time.Unix(0, c.now.Load()).UTC() }
func (c *testClock) Advance(d time.Duration) { c.now.Add(int64(d)) }

func newKeyFiles(t *testing.T, kid string) (KeyFiles, *Signer) {
	t.Helper()
	files, err := WriteKeyFiles(t.TempDir(), kid)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := LoadSigner(files.PrivateJWK, testIssuer, testAudience)
	if err != nil {
		t.Fatal(err)
	}
	return files, signer
}

func newFileVerifier(t *testing.T, jwks string, clk *testClock) *Verifier {
	t.Helper()
	v, err := NewVerifier(context.Background(), VerifierConfig{JWKSFile: jwks, Issuer: testIssuer, Audience: testAudience, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestMintedTokenVerifies(t *testing.T) {
	clk := newTestClock()
	files, signer := newKeyFiles(t, "k1")
	v := newFileVerifier(t, files.PublicJWKS, clk)
	want := Principal{Subject: "0193a000-0000-7000-8000-000000000001", Roles: []Role{RoleCustomer}}
	token, err := signer.Mint(want, clk.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	got, err := v.Verify(context.Background(), token)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if got.Subject != want.Subject || len(got.Roles) != 1 || got.Roles[0] != RoleCustomer {
		t.Errorf("principal %+v, want %+v", got, want)
	}
	if scope, ok := got.CustomerScope(); !ok || scope != want.Subject {
		t.Errorf("customer scope %q %v", scope, ok)
	}
}

// signWith signs arbitrary claims with key (for tokens the Signer refuses
// to make).
func signWith(t *testing.T, alg jose.SignatureAlgorithm, key any, kid string, c any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if kid != "" {
		opts = opts.WithHeader("kid", kid)
	}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	token, err := jwt.Signed(sig).Claims(c).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return token
}

func TestVerifyRefusesBadTokens(t *testing.T) {
	clk := newTestClock()
	files, signer := newKeyFiles(t, "k1")
	_, stranger := newKeyFiles(t, "k1") // same kid, another key
	v := newFileVerifier(t, files.PublicJWKS, clk)
	customer := Principal{Subject: "c1", Roles: []Role{RoleCustomer}}
	mint := func(s *Signer, p Principal, at time.Time, ttl time.Duration) string {
		token, err := s.Mint(p, at, ttl)
		if err != nil {
			t.Fatal(err)
		}
		return token
	}
	now := clk.Now()
	base := jwt.Claims{Issuer: testIssuer, Subject: "c1", Audience: jwt.Audience{testAudience},
		IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(time.Hour))}
	withRoles := func(c jwt.Claims, roles ...string) map[string]any {
		raw, _ := json.Marshal(c)
		m := map[string]any{}
		_ = json.Unmarshal(raw, &m)
		if roles != nil {
			m["roles"] = roles
		}
		return m
	}
	private := signer.key
	noExpiry := base
	noExpiry.Expiry = nil
	wrongAudience := base
	wrongAudience.Audience = jwt.Audience{"someone-else"}
	wrongIssuer := base
	wrongIssuer.Issuer = "evil"
	noSubject := base
	noSubject.Subject = ""
	good := mint(signer, customer, now, time.Hour)
	parts := strings.Split(good, ".")
	flipped := []byte(parts[2])
	flipped[5] ^= 1
	hs := signWith(t, jose.HS256, []byte("0123456789abcdef0123456789abcdef"), "k1", withRoles(base, "customer"))
	unsigned := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + "."

	cases := map[string]string{
		"empty":           "",
		"garbage":         "not.a.token",
		"expired":         mint(signer, customer, now.Add(-2*time.Hour), time.Hour),
		"not yet valid":   mint(signer, customer, now.Add(time.Hour), time.Hour),
		"another key":     mint(stranger, customer, now, time.Hour),
		"tampered":        parts[0] + "." + parts[1] + "." + string(flipped),
		"alg none":        unsigned,
		"HS256":           hs,
		"no kid":          signWith(t, jose.ES256, private.Key, "", withRoles(base, "customer")),
		"unknown kid":     signWith(t, jose.ES256, private.Key, "k9", withRoles(base, "customer")),
		"no expiry":       signWith(t, jose.ES256, private.Key, "k1", withRoles(noExpiry, "customer")),
		"wrong audience":  signWith(t, jose.ES256, private.Key, "k1", withRoles(wrongAudience, "customer")),
		"wrong issuer":    signWith(t, jose.ES256, private.Key, "k1", withRoles(wrongIssuer, "customer")),
		"no subject":      signWith(t, jose.ES256, private.Key, "k1", withRoles(noSubject, "customer")),
		"no roles":        signWith(t, jose.ES256, private.Key, "k1", withRoles(base)),
		"unknown role":    signWith(t, jose.ES256, private.Key, "k1", withRoles(base, "root")),
		"roles of a kind": signWith(t, jose.ES256, private.Key, "k1", map[string]any{"iss": testIssuer, "sub": "c1", "aud": testAudience, "exp": now.Add(time.Hour).Unix(), "roles": "operator"}),
	}
	for name, token := range cases {
		if p, err := v.Verify(context.Background(), token); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("%s: Verify = %+v, %v; want ErrInvalidToken", name, p, err)
		}
	}
	// Within the leeway a just-expired token still passes (clock skew).
	if _, err := v.Verify(context.Background(), mint(signer, customer, now.Add(-time.Hour-10*time.Second), time.Hour)); err != nil {
		t.Errorf("token expired 10 s ago (leeway 30 s): %v", err)
	}
}

// A rotated key set is picked up from the file: the new key is accepted
// as soon as a token names it, the retired one once it leaves the file.
func TestVerifierFollowsKeyRotationInTheFile(t *testing.T) {
	clk := newTestClock()
	files, oldSigner := newKeyFiles(t, "k1")
	newFiles, newSigner := newKeyFiles(t, "k2")
	v := newFileVerifier(t, files.PublicJWKS, clk)
	p := Principal{Subject: "ops", Roles: []Role{RoleOperator}}
	oldToken, _ := oldSigner.Mint(p, clk.Now(), time.Hour)
	newToken, _ := newSigner.Mint(p, clk.Now(), time.Hour)
	if _, err := v.Verify(context.Background(), newToken); err == nil {
		t.Fatal("a token of a key not yet published verified")
	}
	both := jose.JSONWebKeySet{Keys: append(oldSigner.PublicJWKS().Keys, newSigner.PublicJWKS().Keys...)}
	writeJWKS(t, files.PublicJWKS, both)
	clk.Advance(11 * time.Second) // past MinRefresh since the refused token's re-read
	if _, err := v.Verify(context.Background(), newToken); err != nil {
		t.Fatalf("new key after rotation: %v", err)
	}
	if _, err := v.Verify(context.Background(), oldToken); err != nil {
		t.Fatalf("old key still published: %v", err)
	}
	raw, _ := os.ReadFile(newFiles.PublicJWKS)
	writeRaw(t, files.PublicJWKS, raw)
	clk.Advance(2 * time.Second)
	if _, err := v.Verify(context.Background(), oldToken); err == nil {
		t.Fatal("a retired key still verifies")
	}
}

func writeJWKS(t *testing.T, path string, set jose.JSONWebKeySet) {
	t.Helper()
	raw, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	writeRaw(t, path, raw)
}

// writeRaw replaces the file with a later modification time (file systems
// with coarse timestamps would otherwise hide the change).
func writeRaw(t *testing.T, path string, raw []byte) {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(filepath.Dir(path), ".jwks.tmp")
	if err := os.WriteFile(tmp, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	later := info.ModTime().Add(time.Second)
	if err := os.Chtimes(tmp, later, later); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// From a URL: fetched at start, re-fetched for an unknown key id (at most
// once per MinRefresh), and an outage of the URL keeps the keys held.
func TestVerifierFetchesTheJWKSURL(t *testing.T) {
	clk := newTestClock()
	_, oldSigner := newKeyFiles(t, "k1")
	_, newSigner := newKeyFiles(t, "k2")
	var published atomic.Value
	published.Store(oldSigner.PublicJWKS())
	var fetches, failing atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		if failing.Load() == 1 {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		_ = json.NewEncoder(w).Encode(published.Load())
	}))
	defer srv.Close()
	v, err := NewVerifier(context.Background(), VerifierConfig{JWKSURL: srv.URL, Issuer: testIssuer, Audience: testAudience, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	p := Principal{Subject: "audit", Roles: []Role{RoleService}}
	oldToken, _ := oldSigner.Mint(p, clk.Now(), time.Hour)
	newToken, _ := newSigner.Mint(p, clk.Now(), time.Hour)
	if _, err := v.Verify(context.Background(), oldToken); err != nil {
		t.Fatal(err)
	}
	published.Store(jose.JSONWebKeySet{Keys: append(oldSigner.PublicJWKS().Keys, newSigner.PublicJWKS().Keys...)})
	clk.Advance(11 * time.Second)
	if _, err := v.Verify(context.Background(), newToken); err != nil {
		t.Fatalf("new key after rotation: %v", err)
	}
	// Unknown kids do not turn into a fetch each.
	before := fetches.Load()
	for range 20 {
		stray := signWith(t, jose.ES256, newSigner.key.Key, "k-unknown", map[string]any{"iss": testIssuer, "sub": "x", "aud": testAudience, "exp": clk.Now().Add(time.Hour).Unix(), "roles": []string{"customer"}})
		if _, err := v.Verify(context.Background(), stray); err == nil {
			t.Fatal("unknown kid verified")
		}
	}
	if n := fetches.Load() - before; n > 1 {
		t.Errorf("20 tokens with an unknown kid caused %d fetches, want at most 1", n)
	}
	failing.Store(1)
	clk.Advance(6 * time.Minute)
	if _, err := v.Verify(context.Background(), oldToken); err != nil {
		t.Errorf("JWKS URL down: held keys refused a good token: %v", err)
	}
}

func TestNewVerifierRefusesBadConfig(t *testing.T) {
	files, _ := newKeyFiles(t, "k1")
	for name, cfg := range map[string]VerifierConfig{
		"no source":   {Issuer: testIssuer, Audience: testAudience},
		"two sources": {JWKSFile: files.PublicJWKS, JWKSURL: "http://127.0.0.1:1/", Issuer: testIssuer, Audience: testAudience},
		"no issuer":   {JWKSFile: files.PublicJWKS, Audience: testAudience},
		"no audience": {JWKSFile: files.PublicJWKS, Issuer: testIssuer},
		"missing":     {JWKSFile: filepath.Join(t.TempDir(), "none.json"), Issuer: testIssuer, Audience: testAudience},
		"private key": {JWKSFile: files.PrivateJWK, Issuer: testIssuer, Audience: testAudience},
	} {
		if _, err := NewVerifier(context.Background(), cfg); err == nil {
			t.Errorf("%s: NewVerifier accepted it", name)
		}
	}
}

// Malformed input never panics and never verifies.
func FuzzVerify(f *testing.F) {
	dir := f.TempDir()
	files, err := WriteKeyFiles(dir, "k1")
	if err != nil {
		f.Fatal(err)
	}
	signer, err := LoadSigner(files.PrivateJWK, testIssuer, testAudience)
	if err != nil {
		f.Fatal(err)
	}
	clk := newTestClock()
	v, err := NewVerifier(context.Background(), VerifierConfig{JWKSFile: files.PublicJWKS, Issuer: testIssuer, Audience: testAudience, Now: clk.Now})
	if err != nil {
		f.Fatal(err)
	}
	good, _ := signer.Mint(Principal{Subject: "c1", Roles: []Role{RoleCustomer}}, clk.Now(), time.Hour)
	for _, seed := range []string{"", ".", "..", "a.b.c", good, good + "x", strings.Replace(good, ".", "..", 1), "eyJhbGciOiJub25lIn0.e30."} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, token string) {
		p, err := v.Verify(context.Background(), token)
		if err == nil && token != good {
			// Only the signed token (or a representation go-jose accepts as
			// the same signed bytes) may verify.
			if p.Subject != "c1" {
				t.Fatalf("forged token verified: %q → %+v", token, p)
			}
		}
	})
}
