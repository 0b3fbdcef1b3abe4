package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/sagasuite/sagasuite/libs/auth"
)

// runKeys writes a new token-signing key pair for a deployment that has no
// identity provider yet (compose, a test cluster): the public jwks.json goes to
// the services (<P>_AUTH_JWKS_FILE), the private key stays with whoever mints
// (`sagactl token --key`).
func runKeys(_ context.Context, args []string, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("sagactl keys", flag.ContinueOnError)
	flags.SetOutput(stderr)
	dir := flags.String("o", "", "write signing-key.jwk (0600) and jwks.json into this `directory` (created if missing; existing key files are never overwritten)")
	kid := flags.String("kid", "", "the key id (default: sagasuite-<UTC date>)")
	flags.Usage = func() {
		fmt.Fprintln(stderr, "usage: sagactl keys -o DIR [--kid ID]")
		fmt.Fprintln(stderr, "\nGenerates an ES256 token-signing key pair: DIR/jwks.json (public; mount it where")
		fmt.Fprintln(stderr, "<P>_AUTH_JWKS_FILE points, e.g. deploy/compose/auth/jwks.json or the auth-jwks Secret) and")
		fmt.Fprintln(stderr, "DIR/signing-key.jwk (private; keep it secret), which mints tokens the services accept:")
		fmt.Fprintln(stderr, "  sagactl token --key DIR/signing-key.jwk --issuer ISS --audience AUD --role operator")
		fmt.Fprintln(stderr)
		flags.PrintDefaults()
	}
	if code, ok := parseFlags(flags, args, stderr); !ok {
		return code
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "sagactl keys: "+format+"\n", a...)
		return exitError
	}
	if *dir == "" {
		flags.Usage()
		return fail("give -o DIR")
	}
	if *kid == "" {
		*kid = "sagasuite-" + time.Now().UTC().Format("2006-01-02")
	}
	// Never replace a key pair in use: tokens signed with it would stop verifying.
	for _, name := range []string{"signing-key.jwk", "jwks.json"} {
		if _, err := os.Stat(filepath.Join(*dir, name)); err == nil {
			return fail("%s already exists; remove it or pick another -o", filepath.Join(*dir, name))
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fail("%v", err)
		}
	}
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		return fail("%v", err)
	}
	files, err := auth.WriteKeyFiles(*dir, *kid)
	if err != nil {
		return fail("%v", err)
	}
	fmt.Fprintf(stdout, "public keys (give to the services): %s\nsigning key (keep secret):          %s\nkey id: %s\n", files.PublicJWKS, files.PrivateJWK, *kid)
	return exitOK
}
