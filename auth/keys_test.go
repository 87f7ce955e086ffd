package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The example key of RFC 7638 section 3.1 and its thumbprint.
const (
	rfc7638N          = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
	rfc7638Thumbprint = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
)

func TestJWKThumbprintRFC7638(t *testing.T) {
	k, err := jsonWebKey{Kty: "RSA", N: rfc7638N, E: "AQAB"}.publicKey()
	if err != nil {
		t.Fatal(err)
	}
	tp, err := jwkThumbprint(k)
	if err != nil || tp != rfc7638Thumbprint {
		t.Fatalf("thumbprint %q (%v), want %q", tp, err, rfc7638Thumbprint)
	}
}

func TestLibtrustKeyIDShape(t *testing.T) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	id, err := libtrustKeyID(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^([A-Z2-7]{4}:){11}[A-Z2-7]{4}$`).MatchString(id) {
		t.Errorf("libtrust key ID %q is not 12 groups of 4 base32 characters", id)
	}
}

func TestJWKPublicKey(t *testing.T) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	x := b64url.EncodeToString(k.X.FillBytes(make([]byte, 32)))
	y := b64url.EncodeToString(k.Y.FillBytes(make([]byte, 32)))
	offCurve := b64url.EncodeToString(new(big.Int).Add(k.Y, big.NewInt(1)).FillBytes(make([]byte, 32)))
	tests := []struct {
		name string
		jwk  jsonWebKey
		ok   bool
	}{
		{"EC P-256", jsonWebKey{Kty: "EC", Crv: "P-256", X: x, Y: y}, true},
		{"EC point off the curve", jsonWebKey{Kty: "EC", Crv: "P-256", X: x, Y: offCurve}, false},
		{"EC short coordinate", jsonWebKey{Kty: "EC", Crv: "P-256", X: x[:10], Y: y}, false},
		{"EC P-384", jsonWebKey{Kty: "EC", Crv: "P-384", X: x, Y: y}, false},
		{"RSA", jsonWebKey{Kty: "RSA", N: rfc7638N, E: "AQAB"}, true},
		{"RSA even exponent", jsonWebKey{Kty: "RSA", N: rfc7638N, E: "Ag"}, false},
		{"RSA huge exponent", jsonWebKey{Kty: "RSA", N: rfc7638N, E: "AQIDBAUG"}, false},
		{"RSA bad base64", jsonWebKey{Kty: "RSA", N: "!!", E: "AQAB"}, false},
		{"symmetric", jsonWebKey{Kty: "oct"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.jwk.publicKey()
			if (err == nil) != tt.ok {
				t.Errorf("error %v, want ok %v", err, tt.ok)
			}
		})
	}
}

func TestLoadJWKS(t *testing.T) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecJWK := map[string]string{"kty": "EC", "crv": "P-256",
		"x": b64url.EncodeToString(k.X.FillBytes(make([]byte, 32))),
		"y": b64url.EncodeToString(k.Y.FillBytes(make([]byte, 32)))}
	with := func(extra map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range ecJWK {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	tp, _ := jwkThumbprint(k.Public())
	tests := []struct {
		name      string
		keys      []map[string]string
		kids      []string
		skipped   int
		errSubstr string
	}{
		{"kid", []map[string]string{with(map[string]string{"kid": "k1"})}, []string{"k1"}, 0, ""},
		{"no kid: thumbprint", []map[string]string{ecJWK}, []string{tp}, 0, ""},
		{"encryption key skipped", []map[string]string{with(map[string]string{"kid": "k1"}), with(map[string]string{"kid": "e", "use": "enc"})}, []string{"k1"}, 1, ""},
		{"other alg skipped", []map[string]string{with(map[string]string{"kid": "k1"}), with(map[string]string{"kid": "h", "alg": "HS256"})}, []string{"k1"}, 1, ""},
		{"duplicate kid", []map[string]string{with(map[string]string{"kid": "k1"}), with(map[string]string{"kid": "k1"})}, nil, 0, `two keys have kid "k1"`},
		{"nothing usable", []map[string]string{{"kty": "oct", "kid": "s"}}, nil, 1, "no usable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, _ := json.Marshal(map[string]any{"keys": tt.keys})
			path := filepath.Join(t.TempDir(), "jwks.json")
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			skipped := 0
			keys, err := loadJWKS(path, func(string, error) { skipped++ })
			if tt.errSubstr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errSubstr) {
					t.Fatalf("error %v, want %q", err, tt.errSubstr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(keys) != len(tt.kids) || skipped != tt.skipped {
				t.Errorf("%d keys, %d skipped; want %d, %d", len(keys), skipped, len(tt.kids), tt.skipped)
			}
			for _, kid := range tt.kids {
				if keys[kid] == nil {
					t.Errorf("no key %q", kid)
				}
			}
		})
	}
}

func TestParseScope(t *testing.T) {
	tests := []struct {
		in   string
		want ResourceActions
		ok   bool
	}{
		{"repository:samalba/my-app:pull,push", ResourceActions{Type: "repository", Name: "samalba/my-app", Actions: []string{"pull", "push"}}, true},
		{"repository:localhost:5000/app:pull", ResourceActions{Type: "repository", Name: "localhost:5000/app", Actions: []string{"pull"}}, true},
		{"repository(plugin):x:pull", ResourceActions{Type: "repository", Class: "plugin", Name: "x", Actions: []string{"pull"}}, true},
		{"registry:catalog:*", ResourceActions{Type: "registry", Name: "catalog", Actions: []string{"*"}}, true},
		{"repository:x:pull,,pull", ResourceActions{Type: "repository", Name: "x", Actions: []string{"pull"}}, true},
		{"repository:x:", ResourceActions{Type: "repository", Name: "x"}, true},
		{"repository:x", ResourceActions{}, false},
		{"repository", ResourceActions{}, false},
		{":x:pull", ResourceActions{}, false},
		{"repository::pull", ResourceActions{}, false},
		{"repository:x\x7f:pull", ResourceActions{}, false},
		{"repository:" + strings.Repeat("a", 600) + ":pull", ResourceActions{}, false},
	}
	for _, tt := range tests {
		got, err := parseScope(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("parseScope(%.40q) error %v, want ok %v", tt.in, err, tt.ok)
			continue
		}
		if tt.ok && (got.Type != tt.want.Type || got.Class != tt.want.Class || got.Name != tt.want.Name || strings.Join(got.Actions, ",") != strings.Join(tt.want.Actions, ",")) {
			t.Errorf("parseScope(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestScopeParam(t *testing.T) {
	tests := []struct {
		access []Access
		want   string
	}{
		{nil, ""},
		{[]Access{Repository("a/b", "pull"), Repository("a/b", "push")}, "repository:a/b:pull,push"},
		{[]Access{Catalog}, "registry:catalog:*"},
		{[]Access{Repository("x", "pull"), Repository("y", "pull"), Repository("x", "pull")}, "repository:x:pull repository:y:pull"},
	}
	for _, tt := range tests {
		if got := scopeParam(tt.access); got != tt.want {
			t.Errorf("scopeParam(%v) = %q, want %q", tt.access, got, tt.want)
		}
	}
}
