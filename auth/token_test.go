package auth_test

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"

	"github.com/registryd/registryd/auth"
)

const (
	testRealm   = "https://auth.example.com/token"
	testService = "registry.test"
	testIssuer  = "test-issuer"
)

// tokenSetup is an external token server's trust material: a self-signed
// ES256 signer, a CA whose leaf signs with x5c, an RS256 key published in
// a JWKS, and a registry trusting all three.
type tokenSetup struct {
	signer, ca, leaf *keyPair
	rsaKey           crypto.Signer
	tr               *testRegistry
	logs             *test.Hook
}

func newTokenSetup(t *testing.T) *tokenSetup {
	t.Helper()
	dir := t.TempDir()
	s := &tokenSetup{}
	s.signer = newKeyPair(t, dir, "signer", "ec", nil, false, nil)
	s.ca = newKeyPair(t, dir, "ca", "rsa", nil, true, nil)
	s.leaf = newKeyPair(t, dir, "leaf", "ec", s.ca, false, nil)
	s.rsaKey = newKey(t, "rsa")
	pub := s.rsaKey.Public().(*rsa.PublicKey)
	jwks, _ := json.Marshal(map[string]any{"keys": []map[string]string{
		{"kty": "RSA", "kid": "rsa-1", "use": "sig", "alg": "RS256",
			"n": base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
			"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes())},
		// An encryption key and an unsupported curve are skipped, not fatal.
		{"kty": "RSA", "kid": "enc-1", "use": "enc", "n": "AQAB", "e": "AQAB"},
		{"kty": "EC", "kid": "p384", "crv": "P-384", "x": "AA", "y": "AA"},
	}})
	bundle := writeFile(t, dir, "bundle.pem", certPEM(s.signer.cert, s.ca.cert))
	var log *logrus.Logger
	log, s.logs = test.NewNullLogger()
	s.tr = newRegistryLog(t, auth.Config{Token: &auth.TokenConfig{
		Realm: testRealm, Service: testService, Issuer: testIssuer,
		RootCertBundle: bundle, JWKS: writeFile(t, dir, "jwks.json", jwks),
	}}, log)
	return s
}

// claims are valid claims for access, to be altered by a test case.
func claims(access ...auth.ResourceActions) jwt.MapClaims {
	now := time.Now()
	if access == nil {
		access = []auth.ResourceActions{}
	}
	return jwt.MapClaims{
		"iss": testIssuer, "sub": "alice", "aud": testService,
		"exp": now.Add(5 * time.Minute).Unix(), "nbf": now.Unix(), "iat": now.Unix(),
		"jti": fmt.Sprint(now.UnixNano()), "access": access,
	}
}

func repoAccess(name string, actions ...string) auth.ResourceActions {
	return auth.ResourceActions{Type: "repository", Name: name, Actions: actions}
}

// mint signs c with key under method, with the given header fields.
func mint(t testing.TB, method jwt.SigningMethod, key any, hdr map[string]any, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, c)
	for k, v := range hdr {
		tok.Header[k] = v
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func b64der(certs ...*x509.Certificate) []string {
	out := make([]string, len(certs))
	for i, c := range certs {
		out[i] = base64.StdEncoding.EncodeToString(c.Raw)
	}
	return out
}

func libtrustID(t testing.TB, k crypto.PublicKey) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	s := base32.StdEncoding.EncodeToString(sum[:30])
	var parts []string
	for i := 0; i < len(s); i += 4 {
		parts = append(parts, s[i:i+4])
	}
	return strings.Join(parts, ":")
}

func challenge(scope, errParam string) string {
	c := fmt.Sprintf(`Bearer realm=%q,service=%q`, testRealm, testService)
	if scope != "" {
		c += fmt.Sprintf(`,scope=%q`, scope)
	}
	if errParam != "" {
		c += fmt.Sprintf(`,error=%q`, errParam)
	}
	return c
}

func TestTokenValidation(t *testing.T) {
	s := newTokenSetup(t)
	es := jwt.SigningMethodES256
	kid := map[string]any{"kid": thumbprint(t, s.signer.key.Public())}
	pull := func() jwt.MapClaims { return claims(repoAccess("team-a/app", "pull")) }
	with := func(k string, v any) jwt.MapClaims { c := pull(); c[k] = v; return c }
	without := func(k string) jwt.MapClaims { c := pull(); delete(c, k); return c }
	other := newKey(t, "ec")
	hmacKey := certPEM(s.signer.cert) // the classic confusion: the public key as an HMAC secret
	ec384 := newKey(t, "ec384")

	tests := []struct {
		name   string
		token  string
		ok     bool
		reason string // what the log says was wrong
	}{
		{"ES256, kid thumbprint", mint(t, es, s.signer.key, kid, pull()), true, ""},
		{"ES256, libtrust kid", mint(t, es, s.signer.key, map[string]any{"kid": libtrustID(t, s.signer.key.Public())}, pull()), true, ""},
		{"RS256, JWKS kid", mint(t, jwt.SigningMethodRS256, s.rsaKey, map[string]any{"kid": "rsa-1"}, pull()), true, ""},
		{"x5c chain to the CA", mint(t, es, s.leaf.key, map[string]any{"x5c": b64der(s.leaf.cert)}, pull()), true, ""},
		{"aud as a list", mint(t, es, s.signer.key, kid, with("aud", []string{"other", testService})), true, ""},
		{"expired within leeway", mint(t, es, s.signer.key, kid, with("exp", time.Now().Add(-30*time.Second).Unix())), true, ""},
		{"expired", mint(t, es, s.signer.key, kid, with("exp", time.Now().Add(-2*time.Minute).Unix())), false, "token is expired"},
		{"not yet valid", mint(t, es, s.signer.key, kid, with("nbf", time.Now().Add(5*time.Minute).Unix())), false, "not valid yet"},
		{"no exp", mint(t, es, s.signer.key, kid, without("exp")), false, "exp claim is required"},
		{"wrong issuer", mint(t, es, s.signer.key, kid, with("iss", "evil")), false, "invalid issuer"},
		{"no issuer", mint(t, es, s.signer.key, kid, without("iss")), false, "iss claim is required"},
		{"wrong audience", mint(t, es, s.signer.key, kid, with("aud", "other-registry")), false, "invalid audience"},
		{"no audience", mint(t, es, s.signer.key, kid, without("aud")), false, "aud claim is required"},
		{"alg none", mint(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, kid, pull()), false, "signing method none is invalid"},
		{"HS256 with the public cert as secret", mint(t, jwt.SigningMethodHS256, hmacKey, kid, pull()), false, "signing method HS256 is invalid"},
		{"HS256 no kid", mint(t, jwt.SigningMethodHS256, []byte("secret"), nil, pull()), false, "signing method HS256 is invalid"},
		{"signed by another key under a trusted kid", mint(t, es, other, kid, pull()), false, "verification error"},
		{"RS256 kid naming an EC key", mint(t, jwt.SigningMethodRS256, s.rsaKey, kid, pull()), false, "RSA verify expects"},
		{"unknown kid", mint(t, es, s.signer.key, map[string]any{"kid": "nope"}, pull()), false, "untrusted key"},
		{"no kid and no x5c", mint(t, es, s.signer.key, nil, pull()), false, "neither x5c nor kid"},
		{"x5c self-signed, untrusted", mint(t, es, other, map[string]any{"x5c": b64der(newCert(t, other, "x", nil, false, nil))}, pull()), false, "unknown authority"},
		{"x5c garbage", mint(t, es, s.signer.key, map[string]any{"x5c": []string{"!!"}}, pull()), false, "malformed x5c"},
		{"x5c not a list", mint(t, es, s.signer.key, map[string]any{"x5c": "abc"}, pull()), false, "malformed x5c"},
		{"ES384", mint(t, jwt.SigningMethodES384, ec384, map[string]any{"kid": "p384"}, pull()), false, "signing method ES384 is invalid"},
		{"tampered claims", tamper(mint(t, es, s.signer.key, kid, pull())), false, "verification error"},
		{"three junk segments", "a.b.c", false, "malformed"},
		{"not a JWT", "hello", false, "invalid number of segments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.logs.Reset()
			r := s.tr.do(http.MethodGet, "/v2/team-a/app/tags/list", nil, "Authorization", bearer(tt.token))
			if tt.ok {
				// Authorized: the repository does not exist, which only an
				// authorized caller gets to learn.
				if r.status != http.StatusNotFound {
					t.Fatalf("%v, want the 404 of an authorized request", r)
				}
				return
			}
			if r.status != http.StatusUnauthorized || r.errCode() != "UNAUTHORIZED" {
				t.Fatalf("%v, want 401 UNAUTHORIZED", r)
			}
			if got, want := r.header.Get("WWW-Authenticate"), challenge("repository:team-a/app:pull", "invalid_token"); got != want {
				t.Errorf("challenge %q, want %q", got, want)
			}
			// Refused for the reason the case is about, not another.
			e := s.logs.LastEntry()
			if e == nil || !strings.Contains(fmt.Sprint(e.Data["error"]), tt.reason) {
				t.Errorf("logged %v, want a reason containing %q", e, tt.reason)
			} else if strings.Contains(e.Message+fmt.Sprint(e.Data), tt.token) {
				t.Errorf("the token was logged")
			}
		})
	}
}

// tamper changes the claims of a signed token and keeps the signature.
func tamper(tok string) string {
	parts := strings.Split(tok, ".")
	c, _ := base64.RawURLEncoding.DecodeString(parts[1])
	c = []byte(strings.Replace(string(c), `"pull"`, `"push"`, 1))
	parts[1] = base64.RawURLEncoding.EncodeToString(c)
	return strings.Join(parts, ".")
}

func TestTokenScopes(t *testing.T) {
	s := newTokenSetup(t)
	kid := map[string]any{"kid": thumbprint(t, s.signer.key.Public())}
	tok := func(access ...auth.ResourceActions) string {
		return bearer(mint(t, jwt.SigningMethodES256, s.signer.key, kid, claims(access...)))
	}
	pusher := tok(repoAccess("repo-a", "pull", "push"), repoAccess("repo-b", "pull", "push"), repoAccess("repo-b", "delete"))
	for _, repo := range []string{"repo-a", "repo-b"} {
		if r := s.tr.push(repo, "v1", pusher); r.status != http.StatusCreated {
			t.Fatalf("push %s: %v", repo, r)
		}
	}
	repoA := tok(repoAccess("repo-a", "pull"))
	tests := []struct {
		name      string
		method    string
		path      string
		authz     string
		status    int
		challenge string
	}{
		{"no token on /v2/", "GET", "/v2/", "", 401, challenge("", "")},
		{"any valid token on /v2/", "GET", "/v2/", tok(), 200, ""},
		{"basic credentials to a token registry", "GET", "/v2/", basic("alice", "pw"), 401, challenge("", "")},
		{"repo-a token pulls repo-a", "GET", "/v2/repo-a/manifests/v1", repoA, 200, ""},
		{"repo-a token cannot pull repo-b", "GET", "/v2/repo-b/manifests/v1", repoA, 401, challenge("repository:repo-b:pull", "insufficient_scope")},
		{"repo-a token cannot list repo-b tags", "GET", "/v2/repo-b/tags/list", repoA, 401, challenge("repository:repo-b:pull", "insufficient_scope")},
		{"pull token cannot push", "POST", "/v2/repo-a/blobs/uploads/", repoA, 401, challenge("repository:repo-a:pull,push", "insufficient_scope")},
		{"pull token cannot delete", "DELETE", "/v2/repo-a/manifests/v1", repoA, 401, challenge("repository:repo-a:delete", "insufficient_scope")},
		{"no token for a pull", "GET", "/v2/repo-a/manifests/v1", "", 401, challenge("repository:repo-a:pull", "")},
		{"catalog needs its scope", "GET", "/v2/_catalog", repoA, 401, challenge("registry:catalog:*", "insufficient_scope")},
		{"catalog with its scope", "GET", "/v2/_catalog", tok(auth.ResourceActions{Type: "registry", Name: "catalog", Actions: []string{"*"}}), 200, ""},
		{"star is not every action", "GET", "/v2/repo-a/manifests/v1", tok(repoAccess("repo-a", "*")), 401, challenge("repository:repo-a:pull", "insufficient_scope")},
		{"delete with delete scope", "DELETE", "/v2/repo-b/manifests/v1", pusher, 202, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := s.tr.do(tt.method, tt.path, nil, "Authorization", tt.authz)
			if r.status != tt.status {
				t.Fatalf("%v, want %d", r, tt.status)
			}
			if got := r.header.Get("WWW-Authenticate"); got != tt.challenge {
				t.Errorf("challenge %q, want %q", got, tt.challenge)
			}
		})
	}

	// The catalog of an external token server's caller lists what its
	// token grants pull on, nothing else.
	r, repos := s.tr.catalog(tok(auth.ResourceActions{Type: "registry", Name: "catalog", Actions: []string{"*"}}, repoAccess("repo-a", "pull")))
	if r.status != 200 || len(repos) != 1 || repos[0] != "repo-a" {
		t.Errorf("catalog %v %v, want [repo-a]", r, repos)
	}
}
