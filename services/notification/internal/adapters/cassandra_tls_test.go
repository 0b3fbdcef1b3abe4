package adapters

import (
	"crypto/tls"
	"testing"
)

// The cluster carries the credentials and TLS it was configured with, and
// verifies the nodes' certificates and host names.
func TestClusterCarriesCredentialsAndTLS(t *testing.T) {
	plain := CassandraConfig{Hosts: []string{"c:9042"}}.cluster("ks")
	if plain.SslOpts != nil || plain.Authenticator != nil {
		t.Fatalf("no settings: SslOpts %v, Authenticator %v; want neither", plain.SslOpts, plain.Authenticator)
	}
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: "cassandra.internal"}
	c := CassandraConfig{Hosts: []string{"c:9142"}, Username: "notification", Password: "pw", TLS: tlsConfig}.cluster("ks")
	if c.SslOpts == nil || c.SslOpts.Config == nil || c.SslOpts.Config.ServerName != "cassandra.internal" || !c.SslOpts.EnableHostVerification {
		t.Fatalf("SslOpts = %+v, want the TLS config with host verification", c.SslOpts)
	}
	if c.Authenticator == nil {
		t.Fatal("no authenticator with a username")
	}
}
