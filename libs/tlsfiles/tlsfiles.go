// Package tlsfiles builds TLS configurations from PEM files, the way
// Kubernetes hands them over (a Secret mounted as a volume): a server
// certificate that is re-read when its files change, so a renewed Secret
// (cert-manager, a rotated key) takes effect without a restart, and client
// configurations that trust a private CA and may present a client
// certificate (mutual TLS).
package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// Reloader serves a certificate and key read from files, re-reading them
// when either file's modification time or size changes. A failed re-read
// (a half-written pair during a Secret update) keeps the last good
// certificate; the next handshake tries again.
type Reloader struct {
	certFile, keyFile string

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   fileStamp
	lastErr error
}

type fileStamp struct {
	certMod, keyMod   time.Time
	certSize, keySize int64
}

// NewReloader reads the pair once, so a bad file stops start-up.
func NewReloader(certFile, keyFile string) (*Reloader, error) {
	if certFile == "" || keyFile == "" {
		return nil, errors.New("tls: both a certificate file and a key file are needed")
	}
	r := &Reloader{certFile: certFile, keyFile: keyFile}
	if _, err := r.current(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Reloader) stampNow() (fileStamp, error) {
	ci, err := os.Stat(r.certFile)
	if err != nil {
		return fileStamp{}, fmt.Errorf("tls: certificate file: %w", err)
	}
	ki, err := os.Stat(r.keyFile)
	if err != nil {
		return fileStamp{}, fmt.Errorf("tls: key file: %w", err)
	}
	return fileStamp{certMod: ci.ModTime(), keyMod: ki.ModTime(), certSize: ci.Size(), keySize: ki.Size()}, nil
}

// current returns the certificate, re-reading the files if they changed.
func (r *Reloader) current() (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	stamp, err := r.stampNow()
	if err == nil && r.cert != nil && stamp == r.stamp {
		return r.cert, nil
	}
	if err == nil {
		var cert tls.Certificate
		cert, err = tls.LoadX509KeyPair(r.certFile, r.keyFile)
		if err == nil {
			r.cert, r.stamp, r.lastErr = &cert, stamp, nil
			return r.cert, nil
		}
		err = fmt.Errorf("tls: load %s and %s: %w", r.certFile, r.keyFile, err)
	}
	r.lastErr = err
	if r.cert != nil {
		return r.cert, nil // keep serving the last good pair
	}
	return nil, err
}

// LastError is the error of the latest failed re-read, nil after a good one.
func (r *Reloader) LastError() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastErr
}

// GetCertificate is for tls.Config.GetCertificate.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) { return r.current() }

// ServerConfig is a TLS 1.2+ server configuration serving r's certificate.
// nextProtos are the ALPN protocols (gRPC wants "h2").
func (r *Reloader) ServerConfig(nextProtos ...string) *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: r.GetCertificate, NextProtos: nextProtos}
}

// Client describes a client's TLS settings; every file is optional.
type Client struct {
	// CAFile is a PEM bundle of the CAs that sign the server's certificate;
	// empty: the system's roots.
	CAFile string
	// CertFile and KeyFile are a client certificate (mutual TLS); both or neither.
	CertFile, KeyFile string
	// ServerName overrides the name checked in the server's certificate.
	ServerName string
}

// Config builds a TLS 1.2+ client configuration.
func (c Client) Config() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls: CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls: CA file %s holds no PEM certificate", c.CAFile)
		}
		cfg.RootCAs = pool
	}
	switch {
	case c.CertFile != "" && c.KeyFile != "":
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls: client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	case c.CertFile != "" || c.KeyFile != "":
		return nil, errors.New("tls: a client certificate needs both its certificate file and its key file")
	}
	return cfg, nil
}
