package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sagasuite/sagasuite/libs/auth"
)

// `sagactl keys` writes a pair whose jwks.json verifies what `sagactl token
// --key` mints with its signing key, keeps the private key owner-only and
// never overwrites a pair in use.
func TestKeysWritesAPairTheServicesVerify(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "deploy-keys")
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"keys", "-o", dir, "--kid", "k-test"}, &out, &errOut); code != exitOK {
		t.Fatalf("keys = %d, stderr %s", code, errOut.String())
	}
	private, public := filepath.Join(dir, "signing-key.jwk"), filepath.Join(dir, "jwks.json")
	if st, err := os.Stat(private); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("signing key: %v, mode %v, want 0600", err, st)
	}
	if !strings.Contains(out.String(), public) || !strings.Contains(out.String(), "k-test") {
		t.Errorf("keys printed %q, want the jwks path and the key id", out.String())
	}

	out.Reset()
	args := []string{"token", "--key", private, "--issuer", "iss-x", "--audience", "aud-y", "--role", "operator"}
	if code := run(context.Background(), args, &out, &errOut); code != exitOK {
		t.Fatalf("token = %d, stderr %s", code, errOut.String())
	}
	v, err := auth.NewVerifier(context.Background(), auth.VerifierConfig{JWKSFile: public, Issuer: "iss-x", Audience: "aud-y"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := v.Verify(context.Background(), strings.TrimSpace(out.String()))
	if err != nil {
		t.Fatalf("a token signed with the written key does not verify against its jwks.json: %v", err)
	}
	if p.Subject != "sagactl-operator" {
		t.Errorf("subject %q, want sagactl-operator", p.Subject)
	}

	before, _ := os.ReadFile(private)
	errOut.Reset()
	if code := run(context.Background(), []string{"keys", "-o", dir}, &out, &errOut); code != exitError || !strings.Contains(errOut.String(), "already exists") {
		t.Errorf("keys over an existing pair = %d, %q; want a refusal", code, errOut.String())
	}
	if after, _ := os.ReadFile(private); !bytes.Equal(before, after) {
		t.Error("the existing signing key was changed")
	}
	errOut.Reset()
	if code := run(context.Background(), []string{"keys"}, &out, &errOut); code != exitError || !strings.Contains(errOut.String(), "give -o DIR") {
		t.Errorf("keys without -o = %d, %q", code, errOut.String())
	}
}
