package auth

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"sync/atomic"
)

// TLSConfig builds the server's TLS configuration from http.tls: the
// certificate and key (PEM files), optional client CAs, which make clients
// present a certificate signed by one of them (mutual TLS), and the minimum
// version ("tls1.2", the default, or "tls1.3").
//
// The certificate is served through GetCertificate from an atomically
// swapped value, so reload (call it on SIGHUP) can replace a renewed
// certificate without a restart or a dropped connection; a reload that
// fails keeps the certificate in use and returns why.
func TLSConfig(certFile, keyFile string, clientCAs []string, minVersion string) (*tls.Config, func() error, error) {
	var minV uint16
	switch minVersion {
	case "", "tls1.2":
		minV = tls.VersionTLS12
	case "tls1.3":
		minV = tls.VersionTLS13
	default:
		return nil, nil, fmt.Errorf("http.tls.minimumtls: %q is not tls1.2 or tls1.3", minVersion)
	}
	if certFile == "" || keyFile == "" {
		return nil, nil, fmt.Errorf("http.tls: certificate and key are both required")
	}
	load := func() (*tls.Certificate, error) {
		// Read separately first so that an unreadable file is reported as
		// such, rather than as a PEM problem.
		for _, f := range []string{certFile, keyFile} {
			if _, err := os.Stat(f); err != nil {
				return nil, fmt.Errorf("http.tls: %w", err)
			}
		}
		c, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("http.tls: certificate %s and key %s: %w", certFile, keyFile, err)
		}
		return &c, nil
	}
	first, err := load()
	if err != nil {
		return nil, nil, err
	}
	var current atomic.Pointer[tls.Certificate]
	current.Store(first)

	cfg := &tls.Config{
		MinVersion: minV,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return current.Load(), nil
		},
	}
	if len(clientCAs) > 0 {
		pool := x509.NewCertPool()
		for _, f := range clientCAs {
			certs, err := loadCertificates("http.tls.clientcas", f)
			if err != nil {
				return nil, nil, err
			}
			for _, c := range certs {
				pool.AddCert(c)
			}
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	reload := func() error {
		c, err := load()
		if err != nil {
			return err
		}
		current.Store(c)
		return nil
	}
	return cfg, reload, nil
}
