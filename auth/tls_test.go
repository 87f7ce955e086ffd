package auth_test

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/registryd/registryd/auth"
)

// tlsSetup is a test CA with a server certificate for 127.0.0.1 and a
// client certificate, all generated here.
type tlsSetup struct {
	dir            string
	ca             *keyPair
	server, client *keyPair
}

func newTLSSetup(t *testing.T) *tlsSetup {
	t.Helper()
	dir := t.TempDir()
	ca := newKeyPair(t, dir, "ca", "ec", nil, true, nil)
	return &tlsSetup{
		dir:    dir,
		ca:     ca,
		server: newKeyPair(t, dir, "server", "ec", ca, false, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, "127.0.0.1"),
		client: newKeyPair(t, dir, "client", "ec", ca, false, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}),
	}
}

// serveTLS starts an HTTPS server with cfg, as serve does (a TLS listener
// under an http.Server), and returns its URL. httptest's StartTLS would add
// a certificate of its own, which hides GetCertificate.
func serveTLS(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "ok")
		}),
		// Refused handshakes are what some cases test; keep them quiet.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	go srv.Serve(tls.NewListener(ln, cfg))
	t.Cleanup(func() { srv.Close() })
	return "https://" + ln.Addr().String()
}

func (s *tlsSetup) httpClient(t *testing.T, withCert bool) *http.Client {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(s.ca.cert)
	cfg := &tls.Config{RootCAs: roots}
	if withCert {
		c, err := tls.LoadX509KeyPair(s.client.certPath, s.client.keyPath)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{c}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
}

// servedCert returns the serial of the certificate the server presents.
func servedSerial(t *testing.T, c *http.Client, url string) string {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	c.CloseIdleConnections()
	return resp.TLS.PeerCertificates[0].SerialNumber.String()
}

func TestTLSConfigMutual(t *testing.T) {
	s := newTLSSetup(t)
	cfg, _, err := auth.TLSConfig(s.server.certPath, s.server.keyPath, []string{s.ca.certPath}, "tls1.3")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MinVersion != tls.VersionTLS13 || cfg.ClientAuth != tls.RequireAndVerifyClientCert {
		t.Errorf("MinVersion %x, ClientAuth %v", cfg.MinVersion, cfg.ClientAuth)
	}
	url := serveTLS(t, cfg)
	tests := []struct {
		name     string
		withCert bool
		ok       bool
	}{
		{"client certificate from the CA", true, true},
		{"no client certificate", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := s.httpClient(t, tt.withCert).Get(url)
			if resp != nil {
				resp.Body.Close()
			}
			if (err == nil) != tt.ok {
				t.Errorf("error %v, want ok %v", err, tt.ok)
			}
		})
	}
	// A certificate from another CA is refused too.
	other := newKeyPair(t, s.dir, "other-ca", "ec", nil, true, nil)
	stranger := newKeyPair(t, s.dir, "stranger", "ec", other, false, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth})
	c := s.httpClient(t, false)
	kp, _ := tls.LoadX509KeyPair(stranger.certPath, stranger.keyPath)
	c.Transport.(*http.Transport).TLSClientConfig.Certificates = []tls.Certificate{kp}
	if resp, err := c.Get(url); err == nil {
		resp.Body.Close()
		t.Error("a client certificate of another CA was accepted")
	}
}

func TestTLSConfigReload(t *testing.T) {
	s := newTLSSetup(t)
	cfg, reload, err := auth.TLSConfig(s.server.certPath, s.server.keyPath, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MinVersion != tls.VersionTLS12 || cfg.ClientAuth != tls.NoClientCert {
		t.Errorf("defaults: MinVersion %x, ClientAuth %v", cfg.MinVersion, cfg.ClientAuth)
	}
	url := serveTLS(t, cfg)
	c := s.httpClient(t, false)
	first := servedSerial(t, c, url)
	if first != s.server.cert.SerialNumber.String() {
		t.Fatalf("served %s, want %s", first, s.server.cert.SerialNumber)
	}

	// A renewed certificate is served after reload, without a restart.
	renewed := newKeyPair(t, t.TempDir(), "server", "ec", s.ca, false, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, "127.0.0.1")
	copyFile(t, renewed.certPath, s.server.certPath)
	copyFile(t, renewed.keyPath, s.server.keyPath)
	if got := servedSerial(t, c, url); got != first {
		t.Fatalf("certificate changed before reload")
	}
	if err := reload(); err != nil {
		t.Fatal(err)
	}
	if got := servedSerial(t, c, url); got != renewed.cert.SerialNumber.String() {
		t.Fatalf("served %s after reload, want %s", got, renewed.cert.SerialNumber)
	}

	// A bad reload (key of another pair) fails and keeps serving.
	copyFile(t, s.client.keyPath, s.server.keyPath)
	if err := reload(); err == nil || !strings.Contains(err.Error(), "private key does not match public key") {
		t.Fatalf("reload with a mismatched key: %v", err)
	}
	if got := servedSerial(t, c, url); got != renewed.cert.SerialNumber.String() {
		t.Fatalf("served %s after a failed reload, want %s", got, renewed.cert.SerialNumber)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestTLSConfigErrors(t *testing.T) {
	s := newTLSSetup(t)
	notPEM := writeFile(t, s.dir, "junk.pem", []byte("junk"))
	tests := []struct {
		name          string
		cert, key     string
		cas           []string
		min           string
		errSubstrings []string
	}{
		{"unreadable certificate", s.dir + "/missing.crt", s.server.keyPath, nil, "", []string{"http.tls", "missing.crt", "no such file"}},
		{"unreadable key", s.server.certPath, s.dir + "/missing.key", nil, "", []string{"missing.key", "no such file"}},
		{"mismatched pair", s.server.certPath, s.client.keyPath, nil, "", []string{"private key does not match public key", "server.crt", "client.key"}},
		{"key as certificate", s.server.keyPath, s.server.keyPath, nil, "", []string{"http.tls"}},
		{"unreadable client CA", s.server.certPath, s.server.keyPath, []string{s.dir + "/nope.pem"}, "", []string{"http.tls.clientcas", "no such file"}},
		{"client CA not PEM", s.server.certPath, s.server.keyPath, []string{notPEM}, "", []string{"http.tls.clientcas", "no PEM certificate"}},
		{"bad minimum version", s.server.certPath, s.server.keyPath, nil, "tls1.0", []string{"http.tls.minimumtls"}},
		{"no key", s.server.certPath, "", nil, "", []string{"both required"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := auth.TLSConfig(tt.cert, tt.key, tt.cas, tt.min)
			if err == nil {
				t.Fatal("no error")
			}
			for _, sub := range tt.errSubstrings {
				if !strings.Contains(err.Error(), sub) {
					t.Errorf("error %q lacks %q", err, sub)
				}
			}
		})
	}
}
