package tlsfiles_test

import (
	"crypto/tls"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sagasuite/sagasuite/libs/tlsfiles"
	"github.com/sagasuite/sagasuite/libs/tlsfiles/tlstest"
)

// serve accepts TLS connections on loopback until the test ends, writing
// "ok" to each.
func serve(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	lis, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	t.Cleanup(func() { lis.Close() })
	go func() {
		for {
			conn, err := lis.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				_ = conn.SetDeadline(time.Now().Add(time.Minute))
				_, _ = conn.Write([]byte("ok"))
			}()
		}
	}()
	return lis.Addr().String()
}

// peerCN dials addr trusting pool and returns the server certificate's CN.
func peerCN(addr string, trusted tlstest.Pair) (string, error) {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Minute}, "tcp", addr,
		&tls.Config{RootCAs: trusted.Pool(), ServerName: "localhost"})
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if _, err := io.ReadAll(conn); err != nil {
		return "", err
	}
	return conn.ConnectionState().PeerCertificates[0].Subject.CommonName, nil
}

func TestReloaderServesRenewedCertificate(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	first, second := tlstest.SelfSigned(t, "first"), tlstest.SelfSigned(t, "second")
	stamp := time.Now().Add(-time.Hour)
	first.Write(t, certFile, keyFile, stamp)

	r, err := tlsfiles.NewReloader(certFile, keyFile)
	if err != nil {
		t.Fatalf("NewReloader: %v", err)
	}
	addr := serve(t, r.ServerConfig())
	if cn, err := peerCN(addr, first); err != nil || cn != "first" {
		t.Fatalf("before renewal: CN %q, error %v; want first", cn, err)
	}

	// A renewal, as a Secret update lands: new files, a new time.
	second.Write(t, certFile, keyFile, stamp.Add(time.Minute))
	if cn, err := peerCN(addr, second); err != nil || cn != "second" {
		t.Fatalf("after renewal: CN %q, error %v; want second", cn, err)
	}
	if _, err := peerCN(addr, first); err == nil {
		t.Fatal("a client trusting only the old certificate still connects after the renewal")
	}

	// A half-written update keeps the last good pair and says why.
	if err := os.WriteFile(keyFile, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(keyFile, stamp.Add(2*time.Minute), stamp.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if cn, err := peerCN(addr, second); err != nil || cn != "second" {
		t.Fatalf("after a broken update: CN %q, error %v; want the last good (second)", cn, err)
	}
	if r.LastError() == nil {
		t.Error("LastError is nil after a failed re-read")
	}
}

func TestNewReloaderRefusesBadFiles(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if _, err := tlsfiles.NewReloader(certFile, keyFile); err == nil {
		t.Error("NewReloader with missing files: no error")
	}
	if err := os.WriteFile(certFile, []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := tlsfiles.NewReloader(certFile, keyFile); err == nil {
		t.Error("NewReloader with junk files: no error")
	}
	if _, err := tlsfiles.NewReloader(certFile, ""); err == nil {
		t.Error("NewReloader without a key file: no error")
	}
}

func TestClientConfig(t *testing.T) {
	dir := t.TempDir()
	pair := tlstest.SelfSigned(t, "ca")
	caFile, certFile, keyFile := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	pair.Write(t, certFile, keyFile, time.Now())
	if err := os.WriteFile(caFile, pair.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := tlsfiles.Client{CAFile: caFile, CertFile: certFile, KeyFile: keyFile, ServerName: "kafka-0"}.Config()
	if err != nil {
		t.Fatalf("Config: %v", err)
	}
	if cfg.RootCAs == nil || len(cfg.Certificates) != 1 || cfg.ServerName != "kafka-0" || cfg.MinVersion != tls.VersionTLS12 {
		t.Errorf("Config = roots %v, %d certificates, server name %q, min version %x", cfg.RootCAs != nil, len(cfg.Certificates), cfg.ServerName, cfg.MinVersion)
	}
	// It trusts the CA: a handshake with a server using the pair works.
	r, err := tlsfiles.NewReloader(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, r.ServerConfig())
	cfg.ServerName = "localhost"
	conn, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		t.Fatalf("dial with the client config: %v", err)
	}
	conn.Close()

	for name, c := range map[string]tlsfiles.Client{
		"missing CA":       {CAFile: filepath.Join(dir, "none")},
		"CA without PEM":   {CAFile: keyFile + ".txt"},
		"cert without key": {CertFile: certFile},
		"key without cert": {KeyFile: keyFile},
		"mismatched pair":  {CertFile: certFile, KeyFile: caFile},
	} {
		if name == "CA without PEM" {
			_ = os.WriteFile(c.CAFile, []byte("nothing"), 0o600)
		}
		if _, err := c.Config(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
