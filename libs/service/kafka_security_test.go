package service_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go/sasl/plain"

	"github.com/sagasuite/sagasuite/libs/config"
	"github.com/sagasuite/sagasuite/libs/service"
	"github.com/sagasuite/sagasuite/libs/tlsfiles/tlstest"
)

type kafkaOnly struct {
	config.Common
	service.KafkaConfig
}

func load(t *testing.T, env ...string) (kafkaOnly, error) {
	t.Helper()
	return config.LoadFrom[kafkaOnly]("PAYMENT", append([]string{"PAYMENT_KAFKA_BROKERS=kafka-0:9093"}, env...))
}

func TestKafkaSecurityFromEnvironment(t *testing.T) {
	dir := t.TempDir()
	pair := tlstest.SelfSigned(t, "kafka-ca")
	ca, cert, key, pw := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"), filepath.Join(dir, "password")
	pair.Write(t, cert, key, time.Now())
	if err := os.WriteFile(ca, pair.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pw, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	// None: plaintext, no SASL (the local and the dev stack).
	cfg, err := load(t)
	if err != nil {
		t.Fatal(err)
	}
	sec, err := cfg.Security()
	if err != nil || sec.TLS != nil || sec.SASL != nil {
		t.Fatalf("unset: %+v %v, want plaintext", sec, err)
	}

	// TLS with a private CA and a client certificate, SASL PLAIN from a file.
	cfg, err = load(t, "PAYMENT_KAFKA_TLS_CA_FILE="+ca, "PAYMENT_KAFKA_TLS_CERT_FILE="+cert, "PAYMENT_KAFKA_TLS_KEY_FILE="+key,
		"PAYMENT_KAFKA_TLS_SERVER_NAME=kafka.internal", "PAYMENT_KAFKA_SASL_MECHANISM=plain",
		"PAYMENT_KAFKA_SASL_USERNAME=payment", "PAYMENT_KAFKA_SASL_PASSWORD_FILE="+pw)
	if err != nil {
		t.Fatal(err)
	}
	sec, err = cfg.Security()
	if err != nil {
		t.Fatal(err)
	}
	if sec.TLS == nil || sec.TLS.RootCAs == nil || len(sec.TLS.Certificates) != 1 || sec.TLS.ServerName != "kafka.internal" {
		t.Errorf("TLS = %+v", sec.TLS)
	}
	if m, ok := sec.SASL.(plain.Mechanism); !ok || m.Username != "payment" || m.Password != "s3cret" {
		t.Errorf("SASL = %#v, want PLAIN payment/s3cret (the file's newline dropped)", sec.SASL)
	}
	d := sec.Dialer()
	if d.TLS != sec.TLS || d.SASLMechanism != sec.SASL {
		t.Error("the dialer does not carry the security settings")
	}
	if tr := sec.Transport(time.Second); tr.TLS != sec.TLS || tr.SASL != sec.SASL {
		t.Error("the transport does not carry the security settings")
	}
	p, err := cfg.NewProducer()
	if err != nil {
		t.Fatal(err)
	}
	p.Close()

	// TLS with the system roots; SCRAM.
	for mech, name := range map[string]string{"SCRAM-SHA-256": "SCRAM-SHA-256", "scram-sha-512": "SCRAM-SHA-512"} {
		cfg, err = load(t, "PAYMENT_KAFKA_TLS_ENABLED=true", "PAYMENT_KAFKA_SASL_MECHANISM="+mech,
			"PAYMENT_KAFKA_SASL_USERNAME=payment", "PAYMENT_KAFKA_SASL_PASSWORD=pw")
		if err != nil {
			t.Fatal(err)
		}
		sec, err = cfg.Security()
		if err != nil || sec.TLS == nil || sec.TLS.RootCAs != nil || sec.SASL == nil || sec.SASL.Name() != name {
			t.Errorf("%s: %+v %v", mech, sec, err)
		}
	}
}

func TestBadKafkaSecurityStopsStartUpNamingTheVariable(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk")
	if err := os.WriteFile(junk, []byte("not pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		env  []string
		want string
	}{
		{[]string{"PAYMENT_KAFKA_SASL_MECHANISM=GSSAPI", "PAYMENT_KAFKA_SASL_USERNAME=u", "PAYMENT_KAFKA_SASL_PASSWORD=p"}, "PAYMENT_KAFKA_SASL_MECHANISM: invalid mechanism"},
		{[]string{"PAYMENT_KAFKA_SASL_MECHANISM=PLAIN", "PAYMENT_KAFKA_SASL_PASSWORD=p"}, "PAYMENT_KAFKA_SASL_USERNAME is required"},
		{[]string{"PAYMENT_KAFKA_SASL_MECHANISM=PLAIN", "PAYMENT_KAFKA_SASL_USERNAME=u"}, "PAYMENT_KAFKA_SASL_PASSWORD is required"},
		{[]string{"PAYMENT_KAFKA_SASL_USERNAME=u", "PAYMENT_KAFKA_SASL_PASSWORD=p"}, "PAYMENT_KAFKA_SASL_MECHANISM is required"},
		{[]string{"PAYMENT_KAFKA_SASL_MECHANISM=PLAIN", "PAYMENT_KAFKA_SASL_USERNAME=u", "PAYMENT_KAFKA_SASL_PASSWORD_FILE=/no/such/file"}, "PAYMENT_KAFKA_SASL_PASSWORD_FILE: cannot read"},
		{[]string{"PAYMENT_KAFKA_SASL_MECHANISM=PLAIN", "PAYMENT_KAFKA_SASL_USERNAME=u", "PAYMENT_KAFKA_SASL_PASSWORD=p", "PAYMENT_KAFKA_SASL_PASSWORD_FILE=" + junk}, "must not be set together"},
		{[]string{"PAYMENT_KAFKA_TLS_CA_FILE=" + junk}, "PAYMENT_KAFKA_TLS_CA_FILE"},
		{[]string{"PAYMENT_KAFKA_TLS_CERT_FILE=" + junk}, "needs both"},
		{[]string{"PAYMENT_KAFKA_PARTITIONS=0"}, "PAYMENT_KAFKA_PARTITIONS: must be positive"},
	} {
		_, err := load(t, tc.env...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want one containing %q", tc.env, err, tc.want)
		}
	}
}
