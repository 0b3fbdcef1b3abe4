package service

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"

	"github.com/sagasuite/sagasuite/libs/bus"
	"github.com/sagasuite/sagasuite/libs/config"
	"github.com/sagasuite/sagasuite/libs/tlsfiles"
)

// KafkaSecurity is how a service connects to the brokers: TLS and SASL.
// Everything unset is a plaintext, unauthenticated client (the local and
// the dev stack). Production gives each service its own SASL user, and the
// cluster's ACLs confine it to its topics and groups (services/README.md).
type KafkaSecurity struct {
	// TLSEnabled turns TLS on; the files below imply it.
	TLSEnabled bool `env:"KAFKA_TLS_ENABLED" envDefault:"false"`
	// TLSCAFile is the PEM bundle of the brokers' CA (empty: system roots).
	TLSCAFile string `env:"KAFKA_TLS_CA_FILE"`
	// TLSCertFile and TLSKeyFile are a client certificate (mutual TLS).
	TLSCertFile string `env:"KAFKA_TLS_CERT_FILE"`
	TLSKeyFile  string `env:"KAFKA_TLS_KEY_FILE"`
	// TLSServerName overrides the name checked in the brokers' certificates.
	TLSServerName string `env:"KAFKA_TLS_SERVER_NAME"`
	// SASLMechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (empty: none).
	// PLAIN sends the password as is: use it over TLS only.
	SASLMechanism string `env:"KAFKA_SASL_MECHANISM"`
	SASLUsername  string `env:"KAFKA_SASL_USERNAME"`
	// SASLPassword, or SASLPasswordFile (a mounted Secret; one trailing
	// newline is ignored), not both.
	SASLPassword     string `env:"KAFKA_SASL_PASSWORD"`
	SASLPasswordFile string `env:"KAFKA_SASL_PASSWORD_FILE"`
}

// tlsOn reports whether TLS is asked for, explicitly or by a file.
func (s KafkaSecurity) tlsOn() bool {
	return s.TLSEnabled || s.TLSCAFile != "" || s.TLSCertFile != "" || s.TLSKeyFile != ""
}

// Build reads the files and returns the bus's Security; errors name the
// variable (under prefix, e.g. "ORDER_") to fix.
func (s KafkaSecurity) Build(prefix string) (bus.Security, error) {
	var sec bus.Security
	var errs []error
	if s.tlsOn() {
		cfg, err := tlsfiles.Client{CAFile: s.TLSCAFile, CertFile: s.TLSCertFile, KeyFile: s.TLSKeyFile, ServerName: s.TLSServerName}.Config()
		if err != nil {
			errs = append(errs, fmt.Errorf("%sKAFKA_TLS_CA_FILE/_CERT_FILE/_KEY_FILE: %w", prefix, err))
		}
		sec.TLS = cfg
	}
	mechanism, err := s.saslMechanism(prefix)
	if err != nil {
		errs = append(errs, err)
	}
	sec.SASL = mechanism
	if err := errors.Join(errs...); err != nil {
		return bus.Security{}, err
	}
	return sec, nil
}

func (s KafkaSecurity) saslMechanism(prefix string) (sasl.Mechanism, error) {
	name := strings.ToUpper(strings.TrimSpace(s.SASLMechanism))
	if name == "" {
		if s.SASLUsername != "" || s.SASLPassword != "" || s.SASLPasswordFile != "" {
			return nil, &config.VarError{Key: prefix + "KAFKA_SASL_MECHANISM", Problem: "is required when a SASL username or password is set"}
		}
		return nil, nil
	}
	if name != "PLAIN" && name != "SCRAM-SHA-256" && name != "SCRAM-SHA-512" {
		return nil, &config.VarError{Key: prefix + "KAFKA_SASL_MECHANISM",
			Problem: fmt.Sprintf(": invalid mechanism %q (want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)", s.SASLMechanism)}
	}
	if s.SASLUsername == "" {
		return nil, &config.VarError{Key: prefix + "KAFKA_SASL_USERNAME", Problem: "is required with a SASL mechanism"}
	}
	password := s.SASLPassword
	switch {
	case s.SASLPassword != "" && s.SASLPasswordFile != "":
		return nil, &config.VarError{Key: prefix + "KAFKA_SASL_PASSWORD_FILE", Problem: "must not be set together with " + prefix + "KAFKA_SASL_PASSWORD"}
	case s.SASLPasswordFile != "":
		b, err := os.ReadFile(s.SASLPasswordFile)
		if err != nil {
			return nil, &config.VarError{Key: prefix + "KAFKA_SASL_PASSWORD_FILE", Problem: fmt.Sprintf(": cannot read %q: %v", s.SASLPasswordFile, err), Err: err}
		}
		password = strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	}
	if password == "" {
		return nil, &config.VarError{Key: prefix + "KAFKA_SASL_PASSWORD", Problem: "is required with a SASL mechanism (or " + prefix + "KAFKA_SASL_PASSWORD_FILE)"}
	}
	switch name {
	case "PLAIN":
		return plain.Mechanism{Username: s.SASLUsername, Password: password}, nil
	case "SCRAM-SHA-256":
		return scram.Mechanism(scram.SHA256, s.SASLUsername, password)
	default:
		return scram.Mechanism(scram.SHA512, s.SASLUsername, password)
	}
}
