package auth_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/crypto/bcrypt"

	v2 "github.com/registryd/registryd/api/v2"
	"github.com/registryd/registryd/auth"
	"github.com/registryd/registryd/storage"
	"github.com/registryd/registryd/storage/driver/inmemory"
)

// ---------------------------------------------------------------- files

func writeFile(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// writeHtpasswd writes user:bcrypt lines (cheapest cost, "$2y$" as
// htpasswd -B writes) and returns the path.
func writeHtpasswd(t testing.TB, dir string, users map[string]string) string {
	t.Helper()
	var b strings.Builder
	for u, pw := range users {
		h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s:$2y$%s\n", u, h[4:])
	}
	return writeFile(t, dir, "htpasswd", []byte(b.String()))
}

// ---------------------------------------------------------------- keys

type keyPair struct {
	key      crypto.Signer
	cert     *x509.Certificate
	keyPath  string
	certPath string
}

func newKey(t testing.TB, kind string) crypto.Signer {
	t.Helper()
	var k crypto.Signer
	var err error
	switch kind {
	case "ec":
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ec384":
		k, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "rsa":
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	case "rsa1024":
		k, err = rsa.GenerateKey(rand.Reader, 1024)
	default:
		t.Fatalf("key kind %s", kind)
	}
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func keyPEM(t testing.TB, k crypto.Signer) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func certPEM(certs ...*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range certs {
		pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.Bytes()
}

// newCert makes a certificate for key, signed by parent (self-signed when
// parent is nil). isCA marks a CA; hosts become SANs of a server cert.
func newCert(t testing.TB, key crypto.Signer, cn string, parent *keyPair, isCA bool, usage []x509.ExtKeyUsage, hosts ...string) *x509.Certificate {
	t.Helper()
	sn, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		BasicConstraintsValid: true,
		IsCA:                  isCA,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           usage,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	signerCert, signerKey := tmpl, key
	if parent != nil {
		signerCert, signerKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signerCert, key.Public(), signerKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newKeyPair makes a key and a certificate for it and writes both as PEM.
func newKeyPair(t testing.TB, dir, name, kind string, parent *keyPair, isCA bool, usage []x509.ExtKeyUsage, hosts ...string) *keyPair {
	t.Helper()
	k := newKey(t, kind)
	c := newCert(t, k, name, parent, isCA, usage, hosts...)
	return &keyPair{
		key: k, cert: c,
		keyPath:  writeFile(t, dir, name+".key", keyPEM(t, k)),
		certPath: writeFile(t, dir, name+".crt", certPEM(c)),
	}
}

// thumbprint is RFC 7638's, computed independently of the package.
func thumbprint(t testing.TB, k crypto.PublicKey) string {
	t.Helper()
	var doc map[string]string
	switch k := k.(type) {
	case *ecdsa.PublicKey:
		doc = map[string]string{"crv": "P-256", "kty": "EC",
			"x": base64.RawURLEncoding.EncodeToString(k.X.FillBytes(make([]byte, 32))),
			"y": base64.RawURLEncoding.EncodeToString(k.Y.FillBytes(make([]byte, 32)))}
	case *rsa.PublicKey:
		doc = map[string]string{"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(k.E)).Bytes()), "kty": "RSA",
			"n": base64.RawURLEncoding.EncodeToString(k.N.Bytes())}
	}
	b, _ := json.Marshal(doc) // encoding/json sorts map keys, as RFC 7638 requires
	sum := sha256.Sum256(b)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// ---------------------------------------------------------------- registry

// testRegistry is the real /v2/ API over in-memory storage behind an
// Authorizer, with the token endpoint at /auth/token when there is one.
type testRegistry struct {
	t   *testing.T
	srv *httptest.Server
}

func newRegistry(t *testing.T, cfg auth.Config) *testRegistry {
	t.Helper()
	return newRegistryLog(t, cfg, nil)
}

func newRegistryLog(t *testing.T, cfg auth.Config, log logrus.FieldLogger) *testRegistry {
	t.Helper()
	a, issuer, err := auth.New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	api := v2.NewHandler(storage.New(inmemory.New(), storage.Options{}), v2.Options{Authorizer: a, DeleteEnabled: true})
	mux := http.NewServeMux()
	mux.Handle("/", api)
	if issuer != nil {
		mux.Handle("/auth/token", issuer)
	}
	srv := httptest.NewServer(v2.Middleware(mux, nil))
	t.Cleanup(srv.Close)
	return &testRegistry{t: t, srv: srv}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// errCode is the first error code of an error body, or "".
func (r response) errCode() string {
	var b struct {
		Errors []struct{ Code string } `json:"errors"`
	}
	if json.Unmarshal(r.body, &b) != nil || len(b.Errors) == 0 {
		return ""
	}
	return b.Errors[0].Code
}

func (r response) String() string {
	return fmt.Sprintf("%d %s (WWW-Authenticate %q)", r.status, bytes.TrimSpace(r.body), r.header.Get("WWW-Authenticate"))
}

// do sends a request; hdr alternates names and values. A value "" for
// Authorization sends no header.
func (tr *testRegistry) do(method, path string, body []byte, hdr ...string) response {
	tr.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, tr.srv.URL+path, rd)
	if err != nil {
		tr.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] != "" {
			req.Header.Add(hdr[i], hdr[i+1])
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tr.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tr.t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, b}
}

func basic(user, pw string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pw))
}

func bearer(tok string) string { return "Bearer " + tok }

func digestOf(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// push uploads a one-layer image to repo:tag with authz as Authorization
// and returns the status of the manifest PUT (or of the first step that
// failed).
func (tr *testRegistry) push(repo, tag, authz string) response {
	tr.t.Helper()
	layer := []byte("layer of " + repo + ":" + tag)
	config := []byte(`{"architecture":"amd64","os":"linux"}`)
	for _, blob := range [][]byte{layer, config} {
		r := tr.do(http.MethodPost, "/v2/"+repo+"/blobs/uploads/", nil, "Authorization", authz)
		if r.status != http.StatusAccepted {
			return r
		}
		loc := r.header.Get("Location")
		loc = strings.TrimPrefix(loc, tr.srv.URL)
		sep := "?"
		if strings.Contains(loc, "?") {
			sep = "&"
		}
		r = tr.do(http.MethodPut, loc+sep+"digest="+digestOf(blob), blob, "Authorization", authz, "Content-Type", "application/octet-stream")
		if r.status != http.StatusCreated {
			return r
		}
	}
	manifest := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",`+
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},`+
		`"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":%d}]}`,
		digestOf(config), len(config), digestOf(layer), len(layer))
	return tr.do(http.MethodPut, "/v2/"+repo+"/manifests/"+tag, []byte(manifest),
		"Authorization", authz, "Content-Type", "application/vnd.oci.image.manifest.v1+json")
}

// catalog returns the repositories /v2/_catalog lists for authz.
func (tr *testRegistry) catalog(authz string) (response, []string) {
	tr.t.Helper()
	r := tr.do(http.MethodGet, "/v2/_catalog", nil, "Authorization", authz)
	var body struct{ Repositories []string }
	_ = json.Unmarshal(r.body, &body)
	return r, body.Repositories
}
