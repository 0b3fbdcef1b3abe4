package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	grpcstatus "google.golang.org/grpc/status"

	"github.com/sagasuite/sagasuite/libs/auth"
	"github.com/sagasuite/sagasuite/libs/outbox"
	"github.com/sagasuite/sagasuite/tools/internal/audit/audittest"
	"github.com/sagasuite/sagasuite/tools/internal/devstack"
	"github.com/sagasuite/sagasuite/tools/internal/suite"
)

// TestMain keeps the developer's own environment out of the tests: no
// running dev stack is found (each test that wants one writes its own
// state file) and no token comes from the environment.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sagactl-test-")
	if err != nil {
		panic(err)
	}
	os.Setenv(devstack.StateFileEnv, filepath.Join(dir, "no-dev-stack.env"))
	os.Unsetenv(envToken)
	os.Unsetenv(envTokenFile)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// newKeys makes a signing key pair and a verifier of its tokens.
func newKeys(t *testing.T) (*suite.Keys, *auth.Verifier) {
	t.Helper()
	keys, err := suite.NewKeys(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	v, err := auth.NewVerifier(context.Background(), auth.VerifierConfig{JWKSFile: keys.Files.PublicJWKS, Issuer: keys.Issuer, Audience: keys.Audience})
	if err != nil {
		t.Fatal(err)
	}
	return keys, v
}

// claimsOf reads a token's exp and iat (its signature is checked by Verify).
func claimsOf(t *testing.T, token string) (exp, iat time.Time) {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWS: %q", token)
	}
	var c struct{ Exp, Iat int64 }
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	return time.Unix(c.Exp, 0), time.Unix(c.Iat, 0)
}

func TestTokenMintsVerifiableTokens(t *testing.T) {
	keys, v := newKeys(t)
	cases := []struct {
		args []string
		want auth.Principal
		ttl  time.Duration
	}{
		{[]string{"--customer", "c-42"}, auth.Principal{Subject: "c-42", Roles: []auth.Role{auth.RoleCustomer}}, time.Hour},
		{[]string{"--role", "customer", "--subject", "c-43", "--ttl", "5m"}, auth.Principal{Subject: "c-43", Roles: []auth.Role{auth.RoleCustomer}}, 5 * time.Minute},
		{[]string{"--role", "operator"}, auth.Principal{Subject: "sagactl-operator", Roles: []auth.Role{auth.RoleOperator}}, time.Hour},
		{[]string{"--role", "catalog-admin", "--subject", "shopkeeper", "--ttl", "30m"}, auth.Principal{Subject: "shopkeeper", Roles: []auth.Role{auth.RoleCatalogAdmin}}, 30 * time.Minute},
		{[]string{"--role", "service", "--subject", "nightly-audit", "--ttl", "48h"}, auth.Principal{Subject: "nightly-audit", Roles: []auth.Role{auth.RoleService}}, 48 * time.Hour},
	}
	for _, tc := range cases {
		code, out, stderr := sagactl(t, append([]string{"token", "--key", keys.Files.PrivateJWK}, tc.args...)...)
		if code != exitOK || stderr != "" || strings.Count(out, "\n") != 1 {
			t.Fatalf("%v: exit %d, stdout %q, stderr %q; want one line", tc.args, code, out, stderr)
		}
		token := strings.TrimSpace(out)
		p, err := v.Verify(context.Background(), token)
		if err != nil {
			t.Fatalf("%v: the token does not verify against the JWKS: %v", tc.args, err)
		}
		if p.Subject != tc.want.Subject || !slices.Equal(p.Roles, tc.want.Roles) {
			t.Errorf("%v: principal %+v, want %+v", tc.args, p, tc.want)
		}
		if exp, iat := claimsOf(t, token); exp.Sub(iat) != tc.ttl || time.Since(iat) > time.Minute || time.Until(iat) > time.Minute {
			t.Errorf("%v: issued %s, expires %s; want now and now+%s", tc.args, iat, exp, tc.ttl)
		}
	}

	// Another key pair's JWKS refuses them.
	_, stranger := newKeys(t)
	_, out, _ := sagactl(t, "token", "--key", keys.Files.PrivateJWK, "--role", "operator")
	if _, err := stranger.Verify(context.Background(), strings.TrimSpace(out)); err == nil {
		t.Error("a token verified against another key's JWKS")
	}
	// --audience changes the audience: the suite's verifier refuses it.
	_, out, _ = sagactl(t, "token", "--key", keys.Files.PrivateJWK, "--role", "operator", "--audience", "elsewhere")
	if _, err := v.Verify(context.Background(), strings.TrimSpace(out)); err == nil {
		t.Error("a token for another audience verified")
	}
}

func TestTokenRefusesBadUsage(t *testing.T) {
	keys, _ := newKeys(t)
	k := keys.Files.PrivateJWK
	for name, tc := range map[string]struct {
		args []string
		say  string
	}{
		"nothing":               {[]string{"--key", k}, "give --customer ID or --role ROLE"},
		"unknown role":          {[]string{"--key", k, "--role", "root"}, `unknown role "root"`},
		"customer role no id":   {[]string{"--key", k, "--role", "customer"}, "needs the customer id"},
		"customer and operator": {[]string{"--key", k, "--customer", "c", "--role", "operator"}, "--customer mints a customer token"},
		"subject disagrees":     {[]string{"--key", k, "--customer", "c", "--subject", "d"}, "disagree"},
		"zero ttl":              {[]string{"--key", k, "--role", "operator", "--ttl", "0s"}, "--ttl must be positive"},
		"missing key":           {[]string{"--key", filepath.Join(t.TempDir(), "none.jwk"), "--role", "operator"}, "no such file"},
		"public key as key":     {[]string{"--key", keys.Files.PublicJWKS, "--role", "operator"}, "signing key"},
		"no key, no dev stack":  {[]string{"--role", "operator"}, "no running dev stack found"},
	} {
		code, out, stderr := sagactl(t, append([]string{"token"}, tc.args...)...)
		if code != exitError || out != "" || !strings.Contains(stderr, tc.say) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit 2 saying %q", name, code, out, stderr, tc.say)
		}
	}
}

// writeDevState makes the running test look like a `sagactl dev` that uses
// keys, for the commands that find the dev stack by itself.
func writeDevState(t *testing.T, keys *suite.Keys) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "dev-stack.env")
	st := devstack.State{PID: os.Getpid(), SigningKey: keys.Files.PrivateJWK, JWKS: keys.Files.PublicJWKS,
		Issuer: keys.Issuer, Audience: keys.Audience, CustomerID: devstack.DemoCustomer, GRPC: devstack.DefaultGRPC, Ops: devstack.DefaultOps}
	if err := st.Write(path); err != nil {
		t.Fatal(err)
	}
	t.Setenv(devstack.StateFileEnv, path)
}

func TestTokenUsesTheDevStacksKey(t *testing.T) {
	keys, v := newKeys(t)
	writeDevState(t, keys)
	code, out, stderr := sagactl(t, "token", "--customer", devstack.DemoCustomer, "--ttl", "10m")
	if code != exitOK {
		t.Fatalf("exit %d, stderr %s", code, stderr)
	}
	p, err := v.Verify(context.Background(), strings.TrimSpace(out))
	if err != nil || p.Subject != devstack.DemoCustomer {
		t.Fatalf("principal %+v, %v", p, err)
	}
}

// verifyingServer serves a consistent audit world behind an interceptor
// that, like the services', refuses a call without a valid token, and
// records who called.
type verifyingServer struct {
	addr string
	mu   sync.Mutex
	seen []auth.Principal
}

func serveVerifying(t *testing.T, v *auth.Verifier) *verifyingServer {
	t.Helper()
	s := &verifyingServer{}
	check := func(ctx context.Context) error {
		md, _ := metadata.FromIncomingContext(ctx)
		values := md.Get("authorization")
		if len(values) != 1 || !strings.HasPrefix(values[0], "Bearer ") {
			return grpcstatus.Error(codes.Unauthenticated, "unauthenticated")
		}
		p, err := v.Verify(ctx, strings.TrimPrefix(values[0], "Bearer "))
		if err != nil {
			return grpcstatus.Error(codes.Unauthenticated, "unauthenticated")
		}
		s.mu.Lock()
		s.seen = append(s.seen, p)
		s.mu.Unlock()
		return nil
	}
	s.addr = audittest.ServeWith(t, audittest.Consistent(), grpc.ChainUnaryInterceptor(
		func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
			if err := check(ctx); err != nil {
				return nil, err
			}
			return next(ctx, req)
		}))
	return s
}

func (s *verifyingServer) callers() []auth.Principal {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.seen)
}

// sagactl audit sends its token from --token, --token-file, the
// environment, or mints a service token with the dev stack's key; with
// none, a checking suite refuses it.
func TestAuditSendsItsToken(t *testing.T) {
	keys, v := newKeys(t)
	srv := serveVerifying(t, v)
	operator, err := keys.Mint(auth.Principal{Subject: "ops-1", Roles: []auth.Role{auth.RoleOperator}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(operator+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	if code, _, stderr := sagactl(t, auditArgs(srv.addr, "--timeout", "10s")...); code != exitError || !strings.Contains(stderr, "Unauthenticated") {
		t.Fatalf("without a token: exit %d, stderr %s; want exit 2, Unauthenticated", code, stderr)
	}
	if code, _, stderr := sagactl(t, auditArgs(srv.addr, "--token", "not-a-token")...); code != exitError || !strings.Contains(stderr, "Unauthenticated") {
		t.Fatalf("with a bad token: exit %d, stderr %s; want exit 2, Unauthenticated", code, stderr)
	}
	if code, _, stderr := sagactl(t, auditArgs(srv.addr, "--token", operator, "--token-file", tokenFile)...); code != exitError || !strings.Contains(stderr, "not both") {
		t.Fatalf("--token and --token-file: exit %d, stderr %s", code, stderr)
	}
	for name, setup := range map[string]func(t *testing.T) []string{
		"--token":       func(*testing.T) []string { return []string{"--token", operator} },
		"--token-file":  func(*testing.T) []string { return []string{"--token-file", tokenFile} },
		"env token":     func(t *testing.T) []string { t.Setenv(envToken, operator); return nil },
		"env tokenfile": func(t *testing.T) []string { t.Setenv(envTokenFile, tokenFile); return nil },
	} {
		t.Run(name, func(t *testing.T) {
			before := len(srv.callers())
			code, out, stderr := sagactl(t, auditArgs(srv.addr, setup(t)...)...)
			if code != exitOK {
				t.Fatalf("exit %d\n%s\n%s", code, out, stderr)
			}
			calls := srv.callers()[before:]
			if len(calls) == 0 || slices.ContainsFunc(calls, func(p auth.Principal) bool { return p.Subject != "ops-1" }) {
				t.Fatalf("callers %+v, want ops-1 on every call", calls)
			}
		})
	}

	t.Run("dev stack key", func(t *testing.T) {
		writeDevState(t, keys)
		before := len(srv.callers())
		code, out, stderr := sagactl(t, auditArgs(srv.addr)...)
		if code != exitOK {
			t.Fatalf("exit %d\n%s\n%s", code, out, stderr)
		}
		calls := srv.callers()[before:]
		if len(calls) == 0 || slices.ContainsFunc(calls, func(p auth.Principal) bool {
			return p.Subject != "sagactl-audit" || !slices.Equal(p.Roles, []auth.Role{auth.RoleService})
		}) {
			t.Fatalf("callers %+v, want the service identity sagactl-audit on every call", calls)
		}
	})
}

// sagactl outbox sends the token to the ops admin API in the
// Authorization header.
func TestOutboxSendsItsToken(t *testing.T) {
	keys, v := newKeys(t)
	writeDevState(t, keys)
	var mu sync.Mutex
	var got []string
	ln := listenLoopback(t)
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Header.Get("Authorization"))
		mu.Unlock()
		_ = json.NewEncoder(w).Encode(outbox.AdminRetried{Service: "order", Retried: 2})
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	code, out, stderr := sagactl(t, "outbox", "retry", "--service", "order", "--ops", ln.Addr().String(), "--all")
	if code != exitOK || !strings.Contains(out, "2 parked rows un-parked") {
		t.Fatalf("exit %d\n%s\n%s", code, out, stderr)
	}
	code, _, stderr = sagactl(t, "outbox", "retry", "--service", "order", "--ops", ln.Addr().String(), "--all", "--token", "given")
	if code != exitOK {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 || got[1] != "Bearer given" {
		t.Fatalf("Authorization headers %q", got)
	}
	p, err := v.Verify(context.Background(), strings.TrimPrefix(got[0], "Bearer "))
	if err != nil || p.Subject != "sagactl-outbox" || !p.Has(auth.RoleService) {
		t.Fatalf("minted admin token: %+v, %v", p, err)
	}
}
