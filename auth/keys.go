package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"strings"

	"github.com/golang-jwt/jwt/v5"
)

// Only RS256 and ES256 are accepted: asymmetric, so the registry holds no
// secret that could mint tokens, and what Docker's token servers use.
// "none" and the HMAC family are never valid, whatever a token's header says.
var tokenAlgorithms = []string{jwt.SigningMethodRS256.Alg(), jwt.SigningMethodES256.Alg()}

// minRSABits is the smallest RSA modulus trusted or used for tokens.
const minRSABits = 2048

// checkTokenKey tells whether k can verify RS256 or ES256 tokens.
func checkTokenKey(k crypto.PublicKey) error {
	switch k := k.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return fmt.Errorf("RSA key of %d bits is too small (at least %d)", k.N.BitLen(), minRSABits)
		}
		return nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return fmt.Errorf("EC key on %s: only P-256 (ES256) is supported", k.Curve.Params().Name)
		}
		return nil
	default:
		return fmt.Errorf("%T keys are not supported (RSA for RS256, EC P-256 for ES256)", k)
	}
}

// loadSigningKey reads a PEM private key (PKCS#8, PKCS#1 RSA or SEC 1 EC)
// and returns it with the algorithm it signs with.
func loadSigningKey(path string) (crypto.Signer, jwt.SigningMethod, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("token signing key: %w", err)
	}
	var key any
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type == "ENCRYPTED PRIVATE KEY" || b.Headers["Proc-Type"] != "" {
			return nil, nil, fmt.Errorf("token signing key %s: encrypted keys are not supported", path)
		}
		switch b.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(b.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(b.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(b.Bytes)
		default:
			continue // EC PARAMETERS, certificates...
		}
		if err != nil {
			return nil, nil, fmt.Errorf("token signing key %s: %w", path, err)
		}
		break
	}
	if key == nil {
		return nil, nil, fmt.Errorf("token signing key %s: no PEM private key found", path)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, nil, fmt.Errorf("token signing key %s: %T keys cannot sign", path, key)
	}
	if err := checkTokenKey(signer.Public()); err != nil {
		return nil, nil, fmt.Errorf("token signing key %s: %w", path, err)
	}
	if _, isEC := signer.(*ecdsa.PrivateKey); isEC {
		return signer, jwt.SigningMethodES256, nil
	}
	return signer, jwt.SigningMethodRS256, nil
}

// loadCertificates reads every certificate of a PEM bundle; a bundle with
// none is an error (a typo'd path to a key file, typically).
func loadCertificates(what, path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	var certs []*x509.Certificate
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s %s: certificate %d: %w", what, path, len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%s %s: no PEM certificate found", what, path)
	}
	return certs, nil
}

// samePublicKey reports whether two public keys are equal.
func samePublicKey(a, b crypto.PublicKey) bool {
	ka, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ka.Equal(b)
}

// b64url is the unpadded base64url of JOSE.
var b64url = base64.RawURLEncoding

// jwkThumbprint is the RFC 7638 thumbprint of k: the key ID distribution
// (v3) gives the keys of its rootcertbundle, so a token server's "kid" of
// this form finds its key there.
func jwkThumbprint(k crypto.PublicKey) (string, error) {
	var doc string
	switch k := k.(type) {
	case *rsa.PublicKey:
		e := big.NewInt(int64(k.E)).Bytes()
		doc = fmt.Sprintf(`{"e":%q,"kty":"RSA","n":%q}`, b64url.EncodeToString(e), b64url.EncodeToString(k.N.Bytes()))
	case *ecdsa.PublicKey:
		size := (k.Curve.Params().BitSize + 7) / 8
		doc = fmt.Sprintf(`{"crv":%q,"kty":"EC","x":%q,"y":%q}`, k.Curve.Params().Name,
			b64url.EncodeToString(k.X.FillBytes(make([]byte, size))), b64url.EncodeToString(k.Y.FillBytes(make([]byte, size))))
	default:
		return "", fmt.Errorf("no thumbprint for %T keys", k)
	}
	sum := sha256.Sum256([]byte(doc))
	return b64url.EncodeToString(sum[:]), nil
}

// libtrustKeyID is the key ID of Docker's libtrust ("ABCD:EFGH:..."): the
// first 240 bits of the SHA-256 of the DER public key, in base32 groups of
// four. Token servers built on libtrust (distribution 2.x era, and some
// still running) put it in "kid".
func libtrustKeyID(k crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(der)
	s := base32.StdEncoding.EncodeToString(sum[:30])
	var b strings.Builder
	for i := 0; i < len(s); i += 4 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(s[i : i+4])
	}
	return b.String(), nil
}

// jsonWebKey is the subset of RFC 7517 that describes RSA and EC public keys.
type jsonWebKey struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
	N   string `json:"n"`
	E   string `json:"e"`
}

// loadJWKS reads a JSON Web Key Set file into keys by "kid" (or, for a key
// without one, by its thumbprint). Keys registryd cannot use (encryption
// keys, other curves) are reported through skip and left out; a set with no
// usable key is an error.
func loadJWKS(path string, skip func(kid string, err error)) (map[string]crypto.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("jwks %s: not a JSON Web Key Set: %w", path, err)
	}
	keys := map[string]crypto.PublicKey{}
	for i, raw := range set.Keys {
		var k jsonWebKey
		if err := json.Unmarshal(raw, &k); err != nil {
			return nil, fmt.Errorf("jwks %s: key %d: %w", path, i, err)
		}
		pub, err := k.publicKey()
		if err == nil && k.Use != "" && k.Use != "sig" {
			err = fmt.Errorf("use %q is not signing", k.Use)
		}
		if err == nil && k.Alg != "" && k.Alg != "RS256" && k.Alg != "ES256" {
			err = fmt.Errorf("alg %q is not RS256 or ES256", k.Alg)
		}
		if err == nil {
			err = checkTokenKey(pub)
		}
		if err != nil {
			skip(k.Kid, err)
			continue
		}
		kid := k.Kid
		if kid == "" {
			kid, _ = jwkThumbprint(pub)
		}
		if _, dup := keys[kid]; dup {
			return nil, fmt.Errorf("jwks %s: two keys have kid %q", path, kid)
		}
		keys[kid] = pub
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("jwks %s: no usable RS256 or ES256 signing key", path)
	}
	return keys, nil
}

// publicKey builds the key a JWK describes, validating it: an EC point must
// be on its curve, an RSA exponent sane.
func (k jsonWebKey) publicKey() (crypto.PublicKey, error) {
	switch k.Kty {
	case "RSA":
		n, err1 := b64url.DecodeString(k.N)
		e, err2 := b64url.DecodeString(k.E)
		if err1 != nil || err2 != nil || len(n) == 0 || len(e) == 0 || len(e) > 4 {
			return nil, errors.New("malformed RSA key")
		}
		exp := int(new(big.Int).SetBytes(e).Int64())
		if exp < 3 || exp%2 == 0 {
			return nil, errors.New("RSA exponent is not valid")
		}
		return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: exp}, nil
	case "EC":
		if k.Crv != "P-256" {
			return nil, fmt.Errorf("curve %q: only P-256 (ES256) is supported", k.Crv)
		}
		x, err1 := b64url.DecodeString(k.X)
		y, err2 := b64url.DecodeString(k.Y)
		if err1 != nil || err2 != nil || len(x) != 32 || len(y) != 32 {
			return nil, errors.New("malformed EC key")
		}
		// Parsing the uncompressed point checks that it is on the curve.
		pt := append(append([]byte{4}, x...), y...)
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), pt)
		if err != nil {
			return nil, fmt.Errorf("EC key: %w", err)
		}
		return pub, nil
	default:
		return nil, fmt.Errorf("key type %q is not supported", k.Kty)
	}
}
