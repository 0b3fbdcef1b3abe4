package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Algorithms a token may be signed with: asymmetric only, so holding the
// verification keys never lets anyone mint a token (no HS256, no "none").
var Algorithms = []jose.SignatureAlgorithm{jose.ES256, jose.EdDSA, jose.RS256}

// claims are the token's registered claims plus the roles.
type claims struct {
	jwt.Claims
	Roles []Role `json:"roles,omitempty"`
}

// Signer mints tokens with one private key (the dev stack's, sagactl
// token's); production tokens come from the deployment's identity provider.
type Signer struct {
	key      jose.JSONWebKey
	signer   jose.Signer
	issuer   string
	audience string
}

// GenerateSigningKey makes a new ES256 (P-256) private key named kid.
func GenerateSigningKey(kid string) (jose.JSONWebKey, error) {
	private, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return jose.JSONWebKey{}, fmt.Errorf("generate signing key: %w", err)
	}
	return jose.JSONWebKey{Key: private, KeyID: kid, Algorithm: string(jose.ES256), Use: "sig"}, nil
}

// KeyFiles names a signing key pair on disk: the private key as a JWK (kept
// by whoever mints) and the public set as a JWKS (given to the services).
type KeyFiles struct {
	PrivateJWK string
	PublicJWKS string
}

// WriteKeyFiles generates a signing key and writes it into dir as
// signing-key.jwk (0600) and jwks.json.
func WriteKeyFiles(dir, kid string) (KeyFiles, error) {
	key, err := GenerateSigningKey(kid)
	if err != nil {
		return KeyFiles{}, err
	}
	files := KeyFiles{PrivateJWK: filepath.Join(dir, "signing-key.jwk"), PublicJWKS: filepath.Join(dir, "jwks.json")}
	private, err := json.Marshal(key)
	if err != nil {
		return KeyFiles{}, fmt.Errorf("encode signing key: %w", err)
	}
	public, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{key.Public()}})
	if err != nil {
		return KeyFiles{}, fmt.Errorf("encode public keys: %w", err)
	}
	if err := os.WriteFile(files.PrivateJWK, private, 0o600); err != nil {
		return KeyFiles{}, fmt.Errorf("write signing key: %w", err)
	}
	if err := os.WriteFile(files.PublicJWKS, public, 0o644); err != nil {
		return KeyFiles{}, fmt.Errorf("write public keys: %w", err)
	}
	return files, nil
}

// NewSigner signs with a private key for one issuer and audience.
func NewSigner(key jose.JSONWebKey, issuer, audience string) (*Signer, error) {
	if key.IsPublic() || !key.Valid() {
		return nil, errors.New("signing key: need a valid private key")
	}
	if key.KeyID == "" {
		return nil, errors.New("signing key: need a key id (kid), verifiers pick keys by it")
	}
	alg := jose.SignatureAlgorithm(key.Algorithm)
	if alg == "" {
		alg = jose.ES256
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	return &Signer{key: key, signer: signer, issuer: issuer, audience: audience}, nil
}

// LoadSigner reads a private JWK file written by WriteKeyFiles.
func LoadSigner(privateJWKFile, issuer, audience string) (*Signer, error) {
	raw, err := os.ReadFile(privateJWKFile)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	var key jose.JSONWebKey
	if err := key.UnmarshalJSON(raw); err != nil {
		return nil, fmt.Errorf("signing key %s: %w", privateJWKFile, err)
	}
	return NewSigner(key, issuer, audience)
}

// PublicJWKS is the key set that verifies this signer's tokens.
func (s *Signer) PublicJWKS() jose.JSONWebKeySet {
	return jose.JSONWebKeySet{Keys: []jose.JSONWebKey{s.key.Public()}}
}

// Mint signs a token for p valid from now for ttl.
func (s *Signer) Mint(p Principal, now time.Time, ttl time.Duration) (string, error) {
	if p.Subject == "" {
		return "", errors.New("mint: a token needs a subject")
	}
	if len(p.Roles) == 0 {
		return "", errors.New("mint: a token needs at least one role")
	}
	if ttl <= 0 {
		return "", errors.New("mint: ttl must be positive")
	}
	c := claims{
		Claims: jwt.Claims{
			Issuer:    s.issuer,
			Subject:   p.Subject,
			Audience:  jwt.Audience{s.audience},
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			Expiry:    jwt.NewNumericDate(now.Add(ttl)),
		},
		Roles: p.Roles,
	}
	token, err := jwt.Signed(s.signer).Claims(c).Serialize()
	if err != nil {
		return "", fmt.Errorf("mint: %w", err)
	}
	return token, nil
}

// ErrInvalidToken is every verification failure; the reason is wrapped for
// logs, never sent to the caller.
var ErrInvalidToken = errors.New("invalid token")

// parseToken checks a token's signature against keys and returns its claims
// (not yet validated against time, issuer or audience).
func parseToken(raw string, keys jose.JSONWebKeySet) (claims, error) {
	var c claims
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return c, fmt.Errorf("%w: empty", ErrInvalidToken)
	}
	tok, err := jwt.ParseSigned(raw, Algorithms)
	if err != nil {
		return c, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	if err := tok.Claims(keys, &c); err != nil {
		return c, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	return c, nil
}
