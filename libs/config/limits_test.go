package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sagasuite/sagasuite/libs/config"
)

func TestGRPCLimitsAndTLSFromEnvironment(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	for _, f := range []string{cert, key} {
		if err := os.WriteFile(f, []byte("pem"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := config.LoadFrom[orderConfig]("ORDER", []string{
		"ORDER_MYSQL_DSN=dsn",
		"ORDER_GRPC_REFLECTION=true",
		"ORDER_GRPC_MAX_CONCURRENT_STREAMS=50",
		"ORDER_GRPC_MAX_RECV_MSG_BYTES=65536",
		"ORDER_GRPC_MAX_SEND_MSG_BYTES=2097152",
		"ORDER_GRPC_KEEPALIVE_MIN_TIME=1m",
		"ORDER_GRPC_KEEPALIVE_TIME=5m",
		"ORDER_GRPC_KEEPALIVE_TIMEOUT=10s",
		"ORDER_GRPC_MAX_CONNECTION_IDLE=1h",
		"ORDER_GRPC_MAX_CONNECTION_AGE=30m",
		"ORDER_GRPC_MAX_CONNECTION_AGE_GRACE=2m",
		"ORDER_TLS_CERT_FILE=" + cert,
		"ORDER_TLS_KEY_FILE=" + key,
	})
	if err != nil {
		t.Fatalf("LoadFrom: %v", err)
	}
	want := config.GRPCLimits{MaxConcurrentStreams: 50, MaxRecvMsgBytes: 65536, MaxSendMsgBytes: 2 << 20,
		KeepaliveMinTime: time.Minute, KeepaliveTime: 5 * time.Minute, KeepaliveTimeout: 10 * time.Second,
		MaxConnectionIdle: time.Hour, MaxConnectionAge: 30 * time.Minute, MaxConnectionAgeGrace: 2 * time.Minute}
	if cfg.GRPCLimits != want || !cfg.GRPCReflection || cfg.TLSCertFile != cert || cfg.TLSKeyFile != key {
		t.Errorf("Common = %+v", cfg.Common)
	}

	// Unset: reflection off, every limit zero (the server's defaults).
	cfg, err = config.LoadFrom[orderConfig]("ORDER", []string{"ORDER_MYSQL_DSN=dsn"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.GRPCReflection || cfg.GRPCLimits != (config.GRPCLimits{}) || cfg.TLSCertFile != "" {
		t.Errorf("defaults: %+v", cfg.Common)
	}
}

func TestBadGRPCLimitsAndTLSStopStartUpNamingTheVariable(t *testing.T) {
	for _, tc := range []struct {
		env  string
		want string
	}{
		{"ORDER_GRPC_MAX_CONCURRENT_STREAMS=-1", "ORDER_GRPC_MAX_CONCURRENT_STREAMS"},
		{"ORDER_GRPC_MAX_CONCURRENT_STREAMS=1000000", "ORDER_GRPC_MAX_CONCURRENT_STREAMS: must be 1 to 100000"},
		{"ORDER_GRPC_MAX_RECV_MSG_BYTES=12", "ORDER_GRPC_MAX_RECV_MSG_BYTES: must be 1024"},
		{"ORDER_GRPC_MAX_SEND_MSG_BYTES=1e12", "ORDER_GRPC_MAX_SEND_MSG_BYTES"},
		{"ORDER_GRPC_KEEPALIVE_MIN_TIME=-5s", "ORDER_GRPC_KEEPALIVE_MIN_TIME: must not be negative"},
		{"ORDER_GRPC_KEEPALIVE_TIME=10ms", "ORDER_GRPC_KEEPALIVE_TIME: must be at least 1s"},
		{"ORDER_GRPC_MAX_CONNECTION_AGE=soon", "ORDER_GRPC_MAX_CONNECTION_AGE"},
		{"ORDER_GRPC_REFLECTION=maybe", "ORDER_GRPC_REFLECTION"},
		{"ORDER_TLS_CERT_FILE=/no/such/cert", "ORDER_TLS_CERT_FILE and ORDER_TLS_KEY_FILE must be set together"},
	} {
		_, err := config.LoadFrom[orderConfig]("ORDER", []string{"ORDER_MYSQL_DSN=dsn", tc.env})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.env, err, tc.want)
		}
	}
	_, err := config.LoadFrom[orderConfig]("ORDER", []string{"ORDER_MYSQL_DSN=dsn",
		"ORDER_TLS_CERT_FILE=/no/such/cert", "ORDER_TLS_KEY_FILE=/no/such/key"})
	if err == nil || !strings.Contains(err.Error(), "ORDER_TLS_CERT_FILE: cannot read") || !strings.Contains(err.Error(), "ORDER_TLS_KEY_FILE: cannot read") {
		t.Errorf("missing TLS files: %v, want both named", err)
	}
}
