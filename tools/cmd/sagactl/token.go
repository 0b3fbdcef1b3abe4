package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/sagasuite/sagasuite/libs/auth"
	"github.com/sagasuite/sagasuite/tools/internal/devstack"
	"github.com/sagasuite/sagasuite/tools/internal/suite"
)

// Environment variables every command that calls the services reads when
// neither --token nor --token-file is given.
const (
	envToken     = "SAGASUITE_TOKEN"
	envTokenFile = "SAGASUITE_TOKEN_FILE"
)

// tokenFlags are --token and --token-file of a command that calls the
// services' gRPC API or ops admin API.
type tokenFlags struct {
	subject          string // the service identity a self-minted token names
	seedsCatalog     bool   // a self-minted token also carries catalog-admin
	token, tokenFile *string
}

// addTokenFlags registers the flags; a command that seeds products and
// stock (bench, demo) says so with seedsCatalog.
func addTokenFlags(fs *flag.FlagSet, subject string, seedsCatalog bool) *tokenFlags {
	return &tokenFlags{
		subject:      subject,
		seedsCatalog: seedsCatalog,
		token:        fs.String("token", "", "bearer `token` sent with every call (default $"+envToken+"; without one: a service token minted with the running dev stack's key, if any)"),
		tokenFile:    fs.String("token-file", "", "read the bearer token from this `file` (default $"+envTokenFile+")"),
	}
}

// source picks the token to send: --token, --token-file, $SAGASUITE_TOKEN,
// $SAGASUITE_TOKEN_FILE, else one minted (service role) with the key of the
// dev stack that `sagactl dev` runs, else none (the call then goes without;
// a suite that checks tokens refuses it with Unauthenticated).
func (f *tokenFlags) source(stderr io.Writer) (suite.TokenSource, error) {
	if *f.token != "" && *f.tokenFile != "" {
		return nil, errors.New("give --token or --token-file, not both")
	}
	if *f.token != "" {
		return suite.StaticToken(*f.token), nil
	}
	if *f.tokenFile != "" {
		return readTokenFile(*f.tokenFile)
	}
	if t := os.Getenv(envToken); t != "" {
		return suite.StaticToken(t), nil
	}
	if path := os.Getenv(envTokenFile); path != "" {
		return readTokenFile(path)
	}
	state, err := devstack.ReadStateFile(devstack.DefaultStateFile())
	if err != nil {
		if !errors.Is(err, devstack.ErrNoDevStack) {
			fmt.Fprintf(stderr, "sagactl: dev stack state: %v; calling without a token\n", err)
		}
		return nil, nil
	}
	keys, err := state.Keys()
	if err != nil {
		return nil, fmt.Errorf("the dev stack's key: %w", err)
	}
	if f.seedsCatalog {
		return keys.Tool(f.subject), nil
	}
	return keys.Service(f.subject), nil
}

func readTokenFile(path string) (suite.TokenSource, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("token file: %w", err)
	}
	token := strings.TrimSpace(string(raw))
	if token == "" {
		return nil, fmt.Errorf("token file %s is empty", path)
	}
	return suite.StaticToken(token), nil
}

// dialOptions turns a token source (possibly none) into Dial's options.
func dialOptions(src suite.TokenSource) []suite.DialOption {
	if src == nil {
		return nil
	}
	return []suite.DialOption{suite.WithToken(src)}
}

func runToken(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sagactl token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	customer := fs.String("customer", "", "mint a customer token for this customer `id` (the token's subject)")
	role := fs.String("role", "", "mint a token with this `role`: operator, catalog-admin, service (or customer, with --subject)")
	subject := fs.String("subject", "", "the token's `subject` (default: the customer id, or sagactl-<role>)")
	ttl := fs.Duration("ttl", time.Hour, "how `long` the token is valid")
	key := fs.String("key", "", "sign with this private JWK `file` (default: the running dev stack's key, found through "+devstack.DefaultStateFile()+")")
	issuer := fs.String("issuer", "", "the token's `issuer` (default: the dev stack's, "+suite.DevIssuer+")")
	audience := fs.String("audience", "", "the token's `audience` (default: the dev stack's, "+suite.DevAudience+")")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: sagactl token (--customer ID | --role operator|catalog-admin|service) [--subject S] [--ttl 1h] [--key FILE]")
		fmt.Fprintln(stderr, "\nPrints a signed bearer token (JWT, ES256) on stdout. Without --key it signs with the key of the")
		fmt.Fprintln(stderr, "dev stack `make run` is running, whose services accept it:")
		fmt.Fprintln(stderr, "  grpcurl -plaintext -H \"authorization: Bearer $(go run ./tools/cmd/sagactl token --role operator)\" …")
		fmt.Fprintln(stderr)
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args, stderr); !ok {
		return code
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "sagactl token: "+format+"\n", a...)
		return exitError
	}
	p := auth.Principal{Subject: *subject}
	switch {
	case *customer != "" && *role != "" && *role != string(auth.RoleCustomer):
		return fail("--customer mints a customer token; give --role %s with --subject instead", *role)
	case *customer != "" && *subject != "" && *subject != *customer:
		return fail("--customer %s and --subject %s disagree (a customer token's subject is the customer id)", *customer, *subject)
	case *customer != "":
		p = auth.Principal{Subject: *customer, Roles: []auth.Role{auth.RoleCustomer}}
	case *role == "":
		fs.Usage()
		return fail("give --customer ID or --role ROLE")
	default:
		r := auth.Role(*role)
		if !slices.Contains(auth.Roles, r) {
			return fail("unknown role %q (want one of %v)", *role, auth.Roles)
		}
		if r == auth.RoleCustomer && p.Subject == "" {
			return fail("a customer token needs the customer id: --customer ID")
		}
		if p.Subject == "" {
			p.Subject = "sagactl-" + *role
		}
		p.Roles = []auth.Role{r}
	}
	if *ttl <= 0 {
		return fail("--ttl must be positive, got %s", *ttl)
	}

	var signer *auth.Signer
	if *key != "" {
		iss, aud := *issuer, *audience
		if iss == "" {
			iss = suite.DevIssuer
		}
		if aud == "" {
			aud = suite.DevAudience
		}
		s, err := auth.LoadSigner(*key, iss, aud)
		if err != nil {
			return fail("%v", err)
		}
		signer = s
	} else {
		state, err := devstack.ReadStateFile(devstack.DefaultStateFile())
		if err != nil {
			return fail("no --key and %v", err)
		}
		iss, aud := state.Issuer, state.Audience
		if *issuer != "" {
			iss = *issuer
		}
		if *audience != "" {
			aud = *audience
		}
		if signer, err = auth.LoadSigner(state.SigningKey, iss, aud); err != nil {
			return fail("the dev stack's key: %v", err)
		}
	}
	token, err := signer.Mint(p, time.Now(), *ttl)
	if err != nil {
		return fail("%v", err)
	}
	fmt.Fprintln(stdout, token)
	return exitOK
}
