package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// testCA is a certificate authority made by the test, and a server
// certificate it signed for 127.0.0.1: clients verify the registry for real
// (no --insecure) by trusting only this CA.
type testCA struct {
	CAFile   string // the CA certificate (PEM), for SSL_CERT_FILE
	CertDir  string // ca.crt in a directory, for skopeo --*-cert-dir
	CertFile string // the server certificate (PEM)
	KeyFile  string // its key
	Pool     *x509.CertPool
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "registryd e2e test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	must(t, err)
	caCert, err := x509.ParseCertificate(caDER)
	must(t, err)

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	must(t, err)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	must(t, err)

	ca := &testCA{
		CAFile:   filepath.Join(dir, "ca.pem"),
		CertDir:  filepath.Join(dir, "certs.d"),
		CertFile: filepath.Join(dir, "server.pem"),
		KeyFile:  filepath.Join(dir, "server.key"),
		Pool:     x509.NewCertPool(),
	}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	must(t, os.WriteFile(ca.CAFile, caPEM, 0o644))
	must(t, os.MkdirAll(ca.CertDir, 0o755))
	must(t, os.WriteFile(filepath.Join(ca.CertDir, "ca.crt"), caPEM, 0o644))
	must(t, os.WriteFile(ca.CertFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644))
	must(t, os.WriteFile(ca.KeyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600))
	ca.Pool.AddCert(caCert)
	return ca
}

// TestAuthTLS is the setup every seed document assumes: HTTPS with Basic
// credentials. Clients verify the server against the test's CA, log in,
// push and pull within the access rules; the OCI conformance suite passes
// with OCI_USERNAME/OCI_PASSWORD over TLS.
func TestAuthTLS(t *testing.T) {
	ca := newTestCA(t)
	srv := startAuthRegistrydTLS(t, "htpasswd", ca)
	c := srv.client()

	get := func(user string) *http.Response {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, srv.URL("/v2/"), nil)
		must(t, err)
		if user != "" {
			req.SetBasicAuth(user, authUsers[user])
		}
		resp, err := c.Do(req)
		must(t, err)
		resp.Body.Close()
		return resp
	}
	if r := get(""); r.StatusCode != http.StatusUnauthorized || r.Header.Get("WWW-Authenticate") != `Basic realm="registryd-e2e"` {
		t.Fatalf("GET /v2/ over TLS without credentials: %s, challenge %q", r.Status, r.Header.Get("WWW-Authenticate"))
	}
	if r := get("alice"); r.StatusCode != http.StatusOK {
		t.Fatalf("GET /v2/ over TLS as alice: %s", r.Status)
	}

	// TLS 1.1 and below are refused; so is plain HTTP on the TLS port.
	old := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool, MaxVersion: tls.VersionTLS11}}}
	if resp, err := old.Get(srv.URL("/v2/")); err == nil {
		resp.Body.Close()
		t.Errorf("a TLS 1.1 client got %s", resp.Status)
	}
	if resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + srv.Addr + "/v2/"); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("plain HTTP to the TLS port: %s, expected 400", resp.Status)
		}
	}
	// A client that does not trust the CA fails the handshake.
	if _, err := (&http.Client{Timeout: 10 * time.Second}).Get(srv.URL("/v2/")); err == nil {
		t.Error("a client without the test CA connected")
	} else if !errors.As(err, new(*tls.CertificateVerificationError)) && !strings.Contains(err.Error(), "certificate") {
		t.Errorf("a client without the test CA: %v, expected a certificate error", err)
	}

	img := newTestImage(t, t.TempDir(), "v1", "auth-tls")
	env := append(clientEnv(t), "SSL_CERT_FILE="+ca.CAFile)

	// crane verifies the certificate (no --insecure): login, push, read.
	crane := tool(t, "crane")
	craneAs := func(args ...string) (cmdResult, error) { return tryCmd(env, clientTimeout, crane, args...) }
	if _, err := craneAs("auth", "login", srv.Addr, "-u", "alice", "-p", authUsers["alice"]); err != nil {
		t.Fatalf("crane auth login over TLS: %v", err)
	}
	if _, err := craneAs("push", img.Layout, srv.Addr+"/team-a/app:v1"); err != nil {
		t.Fatalf("crane push over TLS as alice: %v", err)
	}
	r, err := craneAs("digest", srv.Addr+"/team-a/app:v1")
	if err != nil || strings.TrimSpace(r.Stdout) != img.Digest {
		t.Fatalf("crane digest over TLS: %q %v, expected %s", r.Stdout, err, img.Digest)
	}
	if _, err := craneAs("push", img.Layout, srv.Addr+"/team-b/app:v1"); err == nil {
		t.Error("alice pushed to team-b over TLS")
	}

	// skopeo with credentials on the command line and the CA in a cert dir.
	skopeo := system(t, "skopeo", "/usr/bin/skopeo")
	out := filepath.Join(t.TempDir(), "oci")
	if _, err := tryCmd(env, clientTimeout, skopeo, "--insecure-policy", "copy", "--src-cert-dir", ca.CertDir,
		"--src-creds", "bob:"+authUsers["bob"], "docker://"+srv.Addr+"/team-a/app:v1", "oci:"+out+":v1"); err != nil {
		t.Fatalf("skopeo copy over TLS as bob: %v", err)
	}
	if got := layoutManifestDigest(t, out, "v1"); got != img.Digest {
		t.Errorf("skopeo pulled %s, expected %s", got, img.Digest)
	}
	if _, err := tryCmd(env, clientTimeout, skopeo, "--insecure-policy", "copy", "--dest-cert-dir", ca.CertDir,
		"--dest-creds", "alice:"+authUsers["alice"], "oci:"+out+":v1", "docker://"+srv.Addr+"/team-a/skopeo:v1"); err != nil {
		t.Errorf("skopeo push over TLS as alice: %v", err)
	}
	if _, err := tryCmd(env, clientTimeout, skopeo, "--insecure-policy", "copy", "--dest-cert-dir", ca.CertDir,
		"--dest-creds", "bob:"+authUsers["bob"], "oci:"+out+":v1", "docker://"+srv.Addr+"/team-a/skopeo:v2"); err == nil {
		t.Error("skopeo push over TLS as bob (pull only) succeeded")
	}

	// The conformance suite as root (every action everywhere), over TLS.
	bin := tool(t, "conformance")
	for _, version := range []string{"1.1", "dev"} {
		t.Run("conformance OCI_VERSION="+version, func(t *testing.T) {
			runConformance(t, bin, srv.Addr, version, t.TempDir(),
				"OCI_TLS=enabled", "SSL_CERT_FILE="+ca.CAFile,
				"OCI_USERNAME=root", "OCI_PASSWORD="+authUsers["root"])
		})
	}
	checkNoPasswordsLogged(t, srv)
}

// TestTLSReloadOnSIGHUP renews the certificate the way certbot does (new
// files at the same paths) and sends SIGHUP: new connections get the new
// certificate, a connection opened before keeps working, and a broken key
// pair is refused while the old certificate goes on being served.
func TestTLSReloadOnSIGHUP(t *testing.T) {
	ca1 := newTestCA(t)
	srv := startAuthRegistrydTLS(t, "htpasswd", ca1)
	before := srv.client() // trusts ca1 only; keeps its connection alive
	var reused bool        // whether the last ping went over an existing connection
	ping := func(c *http.Client) error {
		req, err := http.NewRequest(http.MethodGet, srv.URL("/v2/"), nil)
		must(t, err)
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
			GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused },
		}))
		req.SetBasicAuth("alice", authUsers["alice"])
		resp, err := c.Do(req)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body) // read to the end, so the connection is reused
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return errors.New(resp.Status)
		}
		return nil
	}
	must(t, ping(before))

	ca2 := newTestCA(t)
	fresh := func(ca *testCA) *http.Client {
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool}, DisableKeepAlives: true}}
	}
	if err := ping(fresh(ca2)); err == nil {
		t.Fatal("a client trusting only the new CA connected before the reload")
	}
	copyFile := func(src, dst string) {
		b, err := os.ReadFile(src)
		must(t, err)
		must(t, os.WriteFile(dst, b, 0o600))
	}
	copyFile(ca2.CertFile, ca1.CertFile)
	copyFile(ca2.KeyFile, ca1.KeyFile)
	must(t, srv.proc.Signal(syscall.SIGHUP))
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if err = ping(fresh(ca2)); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("after SIGHUP, the new certificate is not served: %v", err)
	}
	if err := ping(before); err != nil || !reused {
		t.Errorf("a connection opened before the reload: %v (reused: %v)", err, reused)
	}

	// A mismatched pair (ca2's certificate with a fresh key) is refused
	// and the server keeps the certificate it had.
	ca3 := newTestCA(t)
	copyFile(ca3.KeyFile, ca1.KeyFile)
	must(t, srv.proc.Signal(syscall.SIGHUP))
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(tail(srv.LogPath, 20), "not reloaded") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(tail(srv.LogPath, 20), "not reloaded") {
		t.Errorf("a broken key pair on SIGHUP was not reported in the log:\n%s", tail(srv.LogPath, 20))
	}
	if err := ping(fresh(ca2)); err != nil {
		t.Errorf("after a failed reload the previous certificate must still be served: %v", err)
	}
}
