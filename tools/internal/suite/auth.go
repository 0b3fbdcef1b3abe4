package suite

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/credentials"

	"github.com/sagasuite/sagasuite/libs/auth"
)

// The issuer and audience of the tokens the tools mint for the stacks they
// run (dev stack, test stacks): the services of such a stack are told to
// accept exactly these.
const (
	DevIssuer   = "sagasuite-dev"
	DevAudience = "sagasuite"
)

// TokenSource gives the bearer token to send with a call ("" sends none).
type TokenSource interface {
	Token(ctx context.Context) (string, error)
}

// StaticToken is a token given by the user (--token, a token file).
type StaticToken string

// Token returns the token itself.
func (t StaticToken) Token(context.Context) (string, error) { return strings.TrimSpace(string(t)), nil }

// MintingSource mints tokens for one principal and mints a new one before
// the last expires, so a long bench or test run never sends an expired one.
type MintingSource struct {
	signer    *auth.Signer
	principal auth.Principal
	ttl       time.Duration

	mu      sync.Mutex
	token   string
	renewAt time.Time
}

// NewMintingSource mints for p with signer, each token valid for ttl.
func NewMintingSource(signer *auth.Signer, p auth.Principal, ttl time.Duration) *MintingSource {
	return &MintingSource{signer: signer, principal: p, ttl: ttl}
}

// Token returns the current token, minting one when none is left with at
// least a quarter of its lifetime.
func (m *MintingSource) Token(context.Context) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	if m.token != "" && now.Before(m.renewAt) {
		return m.token, nil
	}
	token, err := m.signer.Mint(m.principal, now, m.ttl)
	if err != nil {
		return "", err
	}
	m.token, m.renewAt = token, now.Add(m.ttl*3/4)
	return token, nil
}

// bearer sends a TokenSource's token as gRPC "authorization" metadata.
type bearer struct{ src TokenSource }

func (b bearer) GetRequestMetadata(ctx context.Context, _ ...string) (map[string]string, error) {
	token, err := b.src.Token(ctx)
	if err != nil {
		return nil, fmt.Errorf("bearer token: %w", err)
	}
	if token == "" {
		return nil, nil
	}
	return map[string]string{"authorization": "Bearer " + token}, nil
}

// RequireTransportSecurity is false: the tools talk plaintext gRPC to
// loopback stacks; a token for a remote suite belongs on a TLS connection.
func (bearer) RequireTransportSecurity() bool { return false }

// PerRPCCredentials sends src's token with every call of a connection
// (grpc.WithPerRPCCredentials).
func PerRPCCredentials(src TokenSource) credentials.PerRPCCredentials { return bearer{src} }

// Authorize sets req's Authorization header from src (the ops port's
// /admin/* API wants an operator or service token); a nil src or an empty
// token sets nothing.
func Authorize(req *http.Request, src TokenSource) error {
	if src == nil {
		return nil
	}
	token, err := src.Token(req.Context())
	if err != nil {
		return fmt.Errorf("bearer token: %w", err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return nil
}

// Keys is a signing key pair made for one stack: the private key mints the
// tools' tokens, the public set (JWKS file) is what its services verify.
type Keys struct {
	Files    auth.KeyFiles
	Issuer   string
	Audience string
	Signer   *auth.Signer
}

// NewKeys writes a new signing key pair into dir (DevIssuer, DevAudience).
func NewKeys(dir string) (*Keys, error) {
	var id [4]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, fmt.Errorf("key id: %w", err)
	}
	files, err := auth.WriteKeyFiles(dir, "sagasuite-dev-"+hex.EncodeToString(id[:]))
	if err != nil {
		return nil, err
	}
	return LoadKeys(files, DevIssuer, DevAudience)
}

// LoadKeys reads a key pair written by NewKeys (or auth.WriteKeyFiles).
func LoadKeys(files auth.KeyFiles, issuer, audience string) (*Keys, error) {
	signer, err := auth.LoadSigner(files.PrivateJWK, issuer, audience)
	if err != nil {
		return nil, err
	}
	return &Keys{Files: files, Issuer: issuer, Audience: audience, Signer: signer}, nil
}

// ToolTokenTTL is how long a tool's own token lives; MintingSource renews it.
const ToolTokenTTL = time.Hour

// Service is a token source for a tool's service identity (subject e.g.
// "sagactl-bench").
func (k *Keys) Service(subject string) *MintingSource {
	return NewMintingSource(k.Signer, auth.Principal{Subject: subject, Roles: []auth.Role{auth.RoleService}}, ToolTokenTTL)
}

// Tool is Service for a tool that also seeds a catalog (bench, demo, the
// test stacks, the dev stack's seed): the service role plus catalog-admin,
// whichever of the two the suite's policy asks for products and stock.
func (k *Keys) Tool(subject string) *MintingSource {
	return NewMintingSource(k.Signer, auth.Principal{Subject: subject, Roles: []auth.Role{auth.RoleService, auth.RoleCatalogAdmin}}, ToolTokenTTL)
}

// Customer is a token source for one customer.
func (k *Keys) Customer(customerID string) *MintingSource {
	return NewMintingSource(k.Signer, auth.Principal{Subject: customerID, Roles: []auth.Role{auth.RoleCustomer}}, ToolTokenTTL)
}

// Mint signs one token for p, valid from now for ttl.
func (k *Keys) Mint(p auth.Principal, ttl time.Duration) (string, error) {
	return k.Signer.Mint(p, time.Now(), ttl)
}

// ServiceEnv is the environment that tells a service binary to accept this
// pair's tokens: <P>_AUTH_JWKS_FILE, <P>_AUTH_ISSUER, <P>_AUTH_AUDIENCE for
// the service named (P its upper-case name).
func (k *Keys) ServiceEnv(name string) map[string]string {
	p := strings.ToUpper(name) + "_AUTH_"
	return map[string]string{p + "JWKS_FILE": k.Files.PublicJWKS, p + "ISSUER": k.Issuer, p + "AUDIENCE": k.Audience}
}
