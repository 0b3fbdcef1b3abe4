package devstack_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sagasuite/sagasuite/libs/auth"
	"github.com/sagasuite/sagasuite/tools/internal/devstack"
	"github.com/sagasuite/sagasuite/tools/internal/suite"
)

// grpcurlCall is one printed grpcurl line, taken apart.
type grpcurlCall struct {
	token, body, addr string
	principal         auth.Principal
}

// checkGRPCurlLines parses every grpcurl line of the banner as a shell
// would, checks its flags, JSON body and address, verifies its bearer token
// against the stack's JWKS (issuer, audience, expiry) and returns the calls
// by method. CreateOrder and WatchOrder must go as the demo customer,
// GetSagaLog as the operator.
func checkGRPCurlLines(ctx context.Context, t *testing.T, st *devstack.Stack, banner string) map[string]grpcurlCall {
	t.Helper()
	verifier, err := auth.NewVerifier(ctx, auth.VerifierConfig{JWKSFile: st.Keys.Files.PublicJWKS, Issuer: suite.DevIssuer, Audience: suite.DevAudience})
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string]grpcurlCall{}
	for _, line := range strings.Split(banner, "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "grpcurl ") {
			continue
		}
		words, err := shellWords(line)
		if err != nil {
			t.Fatalf("%v: %s", err, line)
		}
		var c grpcurlCall
		var positional []string
		plaintext := false
		for i := 1; i < len(words); i++ {
			switch words[i] {
			case "-plaintext":
				plaintext = true
			case "-H", "-d":
				if i+1 == len(words) {
					t.Fatalf("%s without a value: %s", words[i], line)
				}
				if words[i] == "-d" {
					c.body = words[i+1]
				} else if v, ok := strings.CutPrefix(words[i+1], "authorization: Bearer "); ok {
					c.token = v
				} else {
					t.Errorf("unexpected header %q: %s", words[i+1], line)
				}
				i++
			default:
				positional = append(positional, words[i])
			}
		}
		if !plaintext || len(positional) != 2 || c.token == "" || !json.Valid([]byte(c.body)) {
			t.Fatalf("want grpcurl -plaintext -H 'authorization: Bearer …' -d JSON ADDR METHOD, got %q", words)
		}
		c.addr = positional[0]
		method := positional[1]
		if !slices.ContainsFunc(suite.Services, func(name string) bool { return st.GRPC.Of(name) == c.addr }) {
			t.Errorf("%s: address %s is none of the stack's %+v", method, c.addr, st.GRPC)
		}
		if c.principal, err = verifier.Verify(ctx, c.token); err != nil {
			t.Fatalf("%s: the printed token does not verify: %v", method, err)
		}
		calls[method] = c
	}
	for method, want := range map[string]auth.Principal{
		"sagasuite.order.v1.OrderService/CreateOrder":              {Subject: devstack.DemoCustomer, Roles: []auth.Role{auth.RoleCustomer}},
		"sagasuite.order.v1.OrderService/WatchOrder":               {Subject: devstack.DemoCustomer, Roles: []auth.Role{auth.RoleCustomer}},
		"sagasuite.notification.v1.NotificationService/GetSagaLog": {Subject: devstack.DemoOperator, Roles: []auth.Role{auth.RoleOperator}},
	} {
		got, ok := calls[method]
		if !ok {
			t.Errorf("no grpcurl line calls %s", method)
			continue
		}
		if got.principal.Subject != want.Subject || !slices.Equal(got.principal.Roles, want.Roles) {
			t.Errorf("%s goes as %+v, want %+v", method, got.principal, want)
		}
	}
	// The printed tokens last the advertised day (minus the seconds the
	// test has taken so far), not minutes.
	if exp := tokenExpiry(t, st.CustomerToken); time.Until(exp) < devstack.BannerTokenTTL-time.Hour {
		t.Errorf("customer token expires at %s, want about %s from now", exp, devstack.BannerTokenTTL)
	}
	return calls
}

// shellWords splits a command line as sh does for words and single quotes
// (all the banner uses); anything else a shell would treat specially fails.
func shellWords(line string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord, quoted := false, false
	for _, r := range line {
		switch {
		case quoted && r == '\'':
			quoted = false
		case quoted:
			cur.WriteRune(r)
		case r == '\'':
			quoted, inWord = true, true
		case r == ' ':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case strings.ContainsRune("\"\\$`;&|<>(){}*?", r):
			return nil, &shellError{r}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quoted {
		return nil, &shellError{'\''}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

type shellError struct{ r rune }

func (e *shellError) Error() string {
	return "a shell would treat " + string(e.r) + " specially (unquoted or unclosed)"
}

// tokenExpiry reads a JWT's exp claim (the signature is checked elsewhere).
func tokenExpiry(t *testing.T, token string) time.Time {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q is not a JWS compact serialization", token)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Exp int64 `json:"exp"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	return time.Unix(c.Exp, 0)
}
