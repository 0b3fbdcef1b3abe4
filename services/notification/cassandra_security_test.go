package notification_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sagasuite/sagasuite/libs/config"
	"github.com/sagasuite/sagasuite/libs/tlsfiles/tlstest"
	"github.com/sagasuite/sagasuite/services/notification"
)

func TestCassandraCredentialsAndTLSConfig(t *testing.T) {
	dir := t.TempDir()
	pair := tlstest.SelfSigned(t, "cassandra-ca")
	ca, pw := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "password")
	if err := os.WriteFile(ca, pair.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pw, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := []string{"NOTIFICATION_KAFKA_BROKERS=k:9093", "NOTIFICATION_CASSANDRA_HOSTS=c:9142"}
	cfg, err := config.LoadFrom[notification.Config]("NOTIFICATION", append(base,
		"NOTIFICATION_CASSANDRA_USERNAME=notification", "NOTIFICATION_CASSANDRA_PASSWORD_FILE="+pw,
		"NOTIFICATION_CASSANDRA_TLS_CA_FILE="+ca, "NOTIFICATION_CASSANDRA_TLS_SERVER_NAME=cassandra.internal"))
	if err != nil {
		t.Fatalf("LoadFrom: %v", err)
	}
	if cfg.CassandraPasswordFile != pw || cfg.CassandraTLSCAFile != ca || cfg.CassandraTLSServerName != "cassandra.internal" {
		t.Errorf("config = %+v", cfg)
	}

	for _, tc := range []struct {
		env  []string
		want string
	}{
		{[]string{"NOTIFICATION_CASSANDRA_PASSWORD_FILE=" + pw}, "without NOTIFICATION_CASSANDRA_USERNAME"},
		{[]string{"NOTIFICATION_CASSANDRA_USERNAME=u", "NOTIFICATION_CASSANDRA_PASSWORD_FILE=/no/such"}, "NOTIFICATION_CASSANDRA_PASSWORD_FILE: cannot read"},
		{[]string{"NOTIFICATION_CASSANDRA_USERNAME=u", "NOTIFICATION_CASSANDRA_PASSWORD=p", "NOTIFICATION_CASSANDRA_PASSWORD_FILE=" + pw}, "must not be set together"},
		{[]string{"NOTIFICATION_CASSANDRA_TLS_CA_FILE=" + pw}, "NOTIFICATION_CASSANDRA_TLS_CA_FILE"},
		{[]string{"NOTIFICATION_CASSANDRA_TLS_CERT_FILE=" + ca}, "NOTIFICATION_CASSANDRA_TLS_CA_FILE/_CERT_FILE/_KEY_FILE"},
	} {
		_, err := config.LoadFrom[notification.Config]("NOTIFICATION", append(base, tc.env...))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error containing %q", tc.env, err, tc.want)
		}
	}
}
