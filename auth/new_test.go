package auth_test

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/registryd/registryd/auth"
)

func TestNewDisabled(t *testing.T) {
	a, h, err := auth.New(auth.Config{}, nil)
	if err != nil || a != nil || h != nil {
		t.Fatalf("zero Config: %v, %v, %v; want nothing", a, h, err)
	}
}

func TestNewErrors(t *testing.T) {
	dir := t.TempDir()
	htp := writeHtpasswd(t, dir, map[string]string{"u": "p"})
	ec := newKeyPair(t, dir, "ec", "ec", nil, false, nil)
	other := newKeyPair(t, dir, "other", "ec", nil, false, nil)
	weak := newKeyPair(t, dir, "weak", "rsa1024", nil, false, nil)
	p384 := newKeyPair(t, dir, "p384", "ec384", nil, false, nil)
	notPEM := writeFile(t, dir, "not.pem", []byte("hello"))
	badCert := writeFile(t, dir, "bad.crt", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("junk")}))
	encrypted := writeFile(t, dir, "enc.key", pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte("junk")}))
	badJWKS := writeFile(t, dir, "jwks.json", []byte(`{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}`))
	md5 := writeFile(t, dir, "md5", []byte("u:$apr1$x$y\n"))
	tok := func(mod func(*auth.TokenConfig)) *auth.TokenConfig {
		c := &auth.TokenConfig{Realm: "https://r.example/token", Service: "s", Issuer: "i", RootCertBundle: ec.certPath}
		if mod != nil {
			mod(c)
		}
		return c
	}
	hp := &auth.HtpasswdConfig{Path: htp}
	tests := []struct {
		name      string
		cfg       auth.Config
		errSubstr string
	}{
		{"unreadable htpasswd", auth.Config{Htpasswd: &auth.HtpasswdConfig{Path: dir + "/missing"}}, "auth.htpasswd: htpasswd file: stat"},
		{"htpasswd without path", auth.Config{Htpasswd: &auth.HtpasswdConfig{}}, "auth.htpasswd.path"},
		{"md5 htpasswd", auth.Config{Htpasswd: &auth.HtpasswdConfig{Path: md5}}, "line 1"},
		{"realm with a newline", auth.Config{Htpasswd: &auth.HtpasswdConfig{Path: htp, Realm: "a\nb"}}, "auth.htpasswd.realm"},
		{"rules without users", auth.Config{Access: &auth.AccessConfig{}}, "access rules need"},
		{"bad rule", auth.Config{Htpasswd: hp, Access: &auth.AccessConfig{Rules: []auth.Rule{{Repositories: []string{"a"}, Users: []string{"u"}, Actions: []string{"fly"}}}}}, `access.rules[0].actions: unknown action "fly"`},
		{"token server alone", auth.Config{Issuer: &auth.IssuerConfig{Key: ec.keyPath}}, "configure both"},
		{"token server without token", auth.Config{Htpasswd: hp, Issuer: &auth.IssuerConfig{Key: ec.keyPath}}, "configure auth.token"},
		{"htpasswd and token", auth.Config{Htpasswd: hp, Token: tok(nil)}, "both configured"},
		{"token server without htpasswd", auth.Config{Token: tok(nil), Issuer: &auth.IssuerConfig{Key: ec.keyPath}}, "against auth.htpasswd"},
		{"rules with an external token server", auth.Config{Token: tok(nil), Access: &auth.AccessConfig{}}, "that server decides"},
		{"relative realm", auth.Config{Token: tok(func(c *auth.TokenConfig) { c.Realm = "/auth/token" })}, "auth.token.realm"},
		{"no service", auth.Config{Token: tok(func(c *auth.TokenConfig) { c.Service = "" })}, "auth.token.service"},
		{"no issuer", auth.Config{Token: tok(func(c *auth.TokenConfig) { c.Issuer = "" })}, "auth.token.issuer"},
		{"no keys", auth.Config{Token: tok(func(c *auth.TokenConfig) { c.RootCertBundle = "" })}, "no key to verify tokens"},
		{"unreadable bundle", auth.Config{Token: tok(func(c *auth.TokenConfig) { c.RootCertBundle = dir + "/nope.pem" })}, "auth.token.rootcertbundle: open"},
		{"bundle not PEM", auth.Config{Token: tok(func(c *auth.TokenConfig) { c.RootCertBundle = notPEM })}, "no PEM certificate found"},
		{"bundle bad certificate", auth.Config{Token: tok(func(c *auth.TokenConfig) { c.RootCertBundle = badCert })}, "certificate 1"},
		{"bundle is a key", auth.Config{Token: tok(func(c *auth.TokenConfig) { c.RootCertBundle = ec.keyPath })}, "no PEM certificate found"},
		{"jwks unusable", auth.Config{Token: tok(func(c *auth.TokenConfig) { c.JWKS = badJWKS })}, "no usable RS256 or ES256"},
		{"jwks not JSON", auth.Config{Token: tok(func(c *auth.TokenConfig) { c.JWKS = notPEM })}, "not a JSON Web Key Set"},
		{"issuer without key", auth.Config{Htpasswd: hp, Token: tok(nil), Issuer: &auth.IssuerConfig{}}, "auth.tokenserver.key: a private key"},
		{"issuer key not PEM", auth.Config{Htpasswd: hp, Token: tok(nil), Issuer: &auth.IssuerConfig{Key: notPEM}}, "no PEM private key"},
		{"issuer key encrypted", auth.Config{Htpasswd: hp, Token: tok(nil), Issuer: &auth.IssuerConfig{Key: encrypted}}, "encrypted keys are not supported"},
		{"issuer key a certificate", auth.Config{Htpasswd: hp, Token: tok(nil), Issuer: &auth.IssuerConfig{Key: ec.certPath}}, "no PEM private key"},
		{"issuer RSA 1024", auth.Config{Htpasswd: hp, Token: tok(nil), Issuer: &auth.IssuerConfig{Key: weak.keyPath}}, "too small"},
		{"issuer P-384", auth.Config{Htpasswd: hp, Token: tok(nil), Issuer: &auth.IssuerConfig{Key: p384.keyPath}}, "only P-256"},
		{"issuer cert for another key", auth.Config{Htpasswd: hp, Token: tok(nil), Issuer: &auth.IssuerConfig{Key: ec.keyPath, Certificate: other.certPath}}, "is not for the key"},
		{"issuer expiration too long", auth.Config{Htpasswd: hp, Token: tok(nil), Issuer: &auth.IssuerConfig{Key: ec.keyPath, Expiration: 48 * time.Hour}}, "auth.tokenserver.expiration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, h, err := auth.New(tt.cfg, nil)
			if err == nil || !strings.Contains(err.Error(), tt.errSubstr) {
				t.Fatalf("error %v, want one containing %q", err, tt.errSubstr)
			}
			if a != nil || h != nil {
				t.Errorf("returned %v, %v with an error", a, h)
			}
		})
	}
}

func TestNewAcceptsKeyFormats(t *testing.T) {
	dir := t.TempDir()
	htp := writeHtpasswd(t, dir, map[string]string{"u": "p"})
	ecKey := newKey(t, "ec")
	sec1, _ := x509.MarshalECPrivateKey(ecKey.(*ecdsa.PrivateKey))
	rsaKey := newKey(t, "rsa")
	tests := map[string][]byte{
		"pkcs8 ec":  keyPEM(t, ecKey),
		"sec1 ec":   pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1}),
		"pkcs8 rsa": keyPEM(t, rsaKey),
		"pkcs1 rsa": pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey.(*rsa.PrivateKey))}),
		"with params": append(pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: []byte{6, 8, 42, 134, 72, 206, 61, 3, 1, 7}}),
			pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1})...),
	}
	for name, data := range tests {
		t.Run(name, func(t *testing.T) {
			key := writeFile(t, dir, strings.ReplaceAll(name, " ", "_")+".key", data)
			_, h, err := auth.New(auth.Config{
				Htpasswd: &auth.HtpasswdConfig{Path: htp},
				Token:    &auth.TokenConfig{Realm: "https://r.example/token", Service: "s", Issuer: "i"},
				Issuer:   &auth.IssuerConfig{Key: key},
			}, nil)
			if err != nil || h == nil {
				t.Fatalf("%v, handler %v", err, h)
			}
		})
	}
}
