package servicetest

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/sagasuite/sagasuite/libs/auth"
)

// The issuer and audience of the test tokens.
const (
	Issuer   = "https://auth.sagasuite.test"
	Audience = "sagasuite"
)

// ServiceIdentity is who the connections Start and WaitReady return call
// as: a tool's service identity, allowed every method, so the services'
// tests read like before authentication existed.
var ServiceIdentity = auth.Principal{Subject: "servicetest", Roles: []auth.Role{auth.RoleService}}

// testKeys is one signing key per test process: every service a test
// starts (replicas included) trusts it.
var testKeys = sync.OnceValues(func() (*testKeyPair, error) {
	key, err := auth.GenerateSigningKey("servicetest")
	if err != nil {
		return nil, err
	}
	signer, err := auth.NewSigner(key, Issuer, Audience)
	if err != nil {
		return nil, err
	}
	public := signer.PublicJWKS()
	verifier, err := auth.NewVerifier(context.Background(), auth.VerifierConfig{Keys: &public, Issuer: Issuer, Audience: Audience})
	if err != nil {
		return nil, err
	}
	return &testKeyPair{key: key, signer: signer, verifier: verifier}, nil
})

type testKeyPair struct {
	key      jose.JSONWebKey
	signer   *auth.Signer
	verifier *auth.Verifier
}

func keys(t testing.TB) *testKeyPair {
	t.Helper()
	k, err := testKeys()
	if err != nil {
		t.Fatalf("servicetest: signing key: %v", err)
	}
	return k
}

// Verifier accepts the tokens Token and Mint sign; Launch hands it to a
// service whose Runtime has none.
func Verifier(t testing.TB) *auth.Verifier { return keys(t).verifier }

// Token is a token for p, valid for a day (longer than any test).
func Token(t testing.TB, p auth.Principal) string {
	t.Helper()
	return Mint(t, p, Audience, time.Now(), 24*time.Hour)
}

// Mint signs a token for p with any audience and validity, e.g. an expired
// one or one meant for another API.
func Mint(t testing.TB, p auth.Principal, audience string, issued time.Time, ttl time.Duration) string {
	t.Helper()
	k := keys(t)
	signer := k.signer
	if audience != Audience {
		var err error
		if signer, err = auth.NewSigner(k.key, Issuer, audience); err != nil {
			t.Fatal(err)
		}
	}
	token, err := signer.Mint(p, issued, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return token
}

// Dial connects to a gRPC address sending token with every call; an empty
// token sends none. The connection is closed when the test ends.
func Dial(t testing.TB, addr, token string) *grpc.ClientConn {
	t.Helper()
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(auth.TokenCredentials{Token: token, AllowInsecure: true}))
	}
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// AuthEnv is the <prefix>_AUTH_* environment for a service binary that
// trusts the test tokens: the public key set is written to a file of the
// test's temp dir.
func AuthEnv(t testing.TB, prefix string) []string {
	t.Helper()
	raw, err := json.Marshal(keys(t).signer.PublicJWKS())
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(file, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	prefix = strings.TrimSuffix(prefix, "_") + "_AUTH_"
	return []string{prefix + "JWKS_FILE=" + file, prefix + "ISSUER=" + Issuer, prefix + "AUDIENCE=" + Audience}
}
