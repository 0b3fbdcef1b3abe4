package adapters

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sagasuite/sagasuite/libs/tlsfiles/tlstest"
)

// TLS and credentials come with the URI: a CA file it names is loaded at
// Connect (no dial yet), a bad one is an error that does not show the
// password.
func TestConnectTakesTLSAndCredentialsFromTheURI(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(ca, tlstest.SelfSigned(t, "mongo-ca").CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	client, err := Connect("mongodb://shipping:s3cret@127.0.0.1:27017/?authSource=admin&tls=true&tlsCAFile=" + ca)
	if err != nil {
		t.Fatalf("Connect with TLS and credentials: %v", err)
	}
	_ = client.Disconnect(t.Context())

	_, err = Connect("mongodb://shipping:s3cret@127.0.0.1:27017/?tls=true&tlsCAFile=" + filepath.Join(dir, "missing.crt"))
	if err == nil {
		t.Fatal("Connect with a missing CA file: no error")
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("the error shows the password: %v", err)
	}
}
