package auth

import (
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/sirupsen/logrus"
)

// TokenConfig is auth.token, as distribution has it: tokens from the token
// server at Realm, for Service, signed by Issuer with a key that a
// certificate of RootCertBundle or a key of JWKS holds.
type TokenConfig struct {
	Realm          string
	Service        string
	Issuer         string
	RootCertBundle string
	JWKS           string
}

// tokenLeeway absorbs clock skew between the token server and the registry
// when checking exp and nbf (distribution allows the same minute).
const tokenLeeway = 60 * time.Second

// ResourceActions is one entry of a token's "access" claim.
type ResourceActions struct {
	Type    string   `json:"type"`
	Class   string   `json:"class,omitempty"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// tokenClaims is what a registry token claims (Docker's token spec).
type tokenClaims struct {
	jwt.RegisteredClaims
	Access []ResourceActions `json:"access"`
}

// resource is a typed, named resource of the access claim.
type resource struct{ typ, name string }

// accessSet is a token's access: actions by resource.
type accessSet map[resource]map[string]bool

func accessSetOf(list []ResourceActions) accessSet {
	s := accessSet{}
	for _, ra := range list {
		r := resource{ra.Type, ra.Name}
		if s[r] == nil {
			s[r] = map[string]bool{}
		}
		for _, a := range ra.Actions {
			s[r][a] = true
		}
	}
	return s
}

// contains is an exact match, as distribution does it: a token granting
// "*" on a repository grants the action named "*", nothing else.
func (s accessSet) contains(a Access) bool {
	return s[resource{a.Type, a.Name}][a.Action]
}

// verifier checks bearer tokens.
type verifier struct {
	issuer, service string
	// roots verifies a token's x5c chain; nil without a rootcertbundle.
	roots *x509.CertPool
	// keys are the trusted keys by the IDs a token's "kid" may name.
	keys map[string]crypto.PublicKey
	now  func() time.Time
}

func newVerifier(cfg *TokenConfig, log logrus.FieldLogger) (*verifier, error) {
	if err := checkRealmURL(cfg.Realm); err != nil {
		return nil, fmt.Errorf("auth.token.realm: %w", err)
	}
	if cfg.Service == "" {
		return nil, errors.New("auth.token.service: required (the audience tokens are issued for, usually the registry's host name)")
	}
	if err := checkQuotable(cfg.Service); err != nil {
		return nil, fmt.Errorf("auth.token.service: %w", err)
	}
	if cfg.Issuer == "" {
		return nil, errors.New("auth.token.issuer: required (the iss claim of valid tokens)")
	}
	v := &verifier{issuer: cfg.Issuer, service: cfg.Service, keys: map[string]crypto.PublicKey{}, now: time.Now}
	if cfg.RootCertBundle != "" {
		certs, err := loadCertificates("auth.token.rootcertbundle", cfg.RootCertBundle)
		if err != nil {
			return nil, err
		}
		v.roots = x509.NewCertPool()
		for _, c := range certs {
			v.roots.AddCert(c)
			// A bundle may hold a CA whose own key never signs tokens
			// (only x5c chains lead to it): that is not an error.
			if err := checkTokenKey(c.PublicKey); err != nil {
				log.WithField("subject", c.Subject.String()).Debugf("rootcertbundle certificate kept for x5c chains only: %v", err)
				continue
			}
			if err := v.trust(c.PublicKey); err != nil {
				return nil, fmt.Errorf("auth.token.rootcertbundle: %w", err)
			}
		}
	}
	if cfg.JWKS != "" {
		keys, err := loadJWKS(cfg.JWKS, func(kid string, err error) {
			log.WithField("kid", kid).Warnf("jwks: key ignored: %v", err)
		})
		if err != nil {
			return nil, fmt.Errorf("auth.token.jwks: %w", err)
		}
		for kid, k := range keys {
			if old, dup := v.keys[kid]; dup && !samePublicKey(old, k) {
				return nil, fmt.Errorf("auth.token.jwks: kid %q names another key too", kid)
			}
			v.keys[kid] = k
		}
	}
	return v, nil
}

// trust adds a key under both IDs token servers use for it: the RFC 7638
// thumbprint (distribution 3) and libtrust's ID (distribution 2).
func (v *verifier) trust(k crypto.PublicKey) error {
	if err := checkTokenKey(k); err != nil {
		return err
	}
	tp, err := jwkThumbprint(k)
	if err != nil {
		return err
	}
	lt, err := libtrustKeyID(k)
	if err != nil {
		return err
	}
	for _, id := range []string{tp, lt} {
		if old, dup := v.keys[id]; dup && !samePublicKey(old, k) {
			return fmt.Errorf("key ID %q names two keys", id)
		}
		v.keys[id] = k
	}
	return nil
}

// verify checks a token's algorithm, signature, issuer, audience and times,
// and returns its claims.
func (v *verifier) verify(raw string) (*tokenClaims, error) {
	var c tokenClaims
	p := jwt.NewParser(
		jwt.WithValidMethods(tokenAlgorithms),
		jwt.WithIssuer(v.issuer),
		jwt.WithAudience(v.service),
		jwt.WithLeeway(tokenLeeway),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(v.now),
	)
	if _, err := p.ParseWithClaims(raw, &c, v.key); err != nil {
		return nil, err
	}
	return &c, nil
}

// key finds the key a token claims to be signed with, in the order
// distribution looks: an x5c chain that leads to a root of the bundle, else
// the key its kid names. The key's type must fit the algorithm.
func (v *verifier) key(t *jwt.Token) (any, error) {
	var k crypto.PublicKey
	if raw, ok := t.Header["x5c"]; ok {
		leaf, err := v.verifyChain(raw)
		if err != nil {
			return nil, err
		}
		k = leaf
	} else if kid, ok := t.Header["kid"].(string); ok && kid != "" {
		if k = v.keys[kid]; k == nil {
			return nil, fmt.Errorf("token signed by an untrusted key (kid %.80q)", kid)
		}
	} else {
		return nil, errors.New("token names no signing key (neither x5c nor kid)")
	}
	if err := checkTokenKey(k); err != nil {
		return nil, err
	}
	return k, nil
}

// verifyChain checks an x5c header (base64 DER certificates, leaf first)
// and returns the leaf's key: directly if that key is trusted (the issuer's
// own, a rootcertbundle certificate's), else if the chain leads to a root
// of the bundle.
func (v *verifier) verifyChain(raw any) (crypto.PublicKey, error) {
	list, ok := raw.([]any)
	if !ok || len(list) == 0 || len(list) > 10 {
		return nil, errors.New("malformed x5c header")
	}
	var certs []*x509.Certificate
	for _, e := range list {
		s, ok := e.(string)
		if !ok {
			return nil, errors.New("malformed x5c header")
		}
		der, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, errors.New("malformed x5c certificate")
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("x5c certificate: %w", err)
		}
		certs = append(certs, c)
	}
	leaf := certs[0].PublicKey
	if tp, err := jwkThumbprint(leaf); err == nil && v.keys[tp] != nil && samePublicKey(v.keys[tp], leaf) {
		return leaf, nil
	}
	if v.roots == nil {
		return nil, errors.New("token carries an x5c chain to an untrusted key and no rootcertbundle is configured")
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	_, err := certs[0].Verify(x509.VerifyOptions{
		Roots:         v.roots,
		Intermediates: inter,
		CurrentTime:   v.now(),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		return nil, fmt.Errorf("x5c chain: %w", err)
	}
	return leaf, nil
}

// ---------------------------------------------------------------- authorizer

// tokenAuthorizer admits requests carrying a valid bearer token whose
// access claim covers what the route needs.
type tokenAuthorizer struct {
	realm, service string
	verifier       *verifier
	// localPolicy is set when registryd's own token server issues the
	// tokens: policy then also answers Allowed for the token's subject
	// (the catalog's filter), since the server would grant it anyway.
	localPolicy bool
	policy      *policy
	// users are the token server's (with localPolicy), for the web UI's
	// login (UsersOf).
	users *htpasswd
	log   logrus.FieldLogger
}

// challenge sets the Bearer challenge of Docker's token spec: where to get
// a token, for which service, with which scope, and why the one sent (if
// any) did not do.
func (a *tokenAuthorizer) challenge(w http.ResponseWriter, access []Access, errParam string) {
	c := "Bearer realm=" + quote(a.realm) + ",service=" + quote(a.service)
	if s := scopeParam(access); s != "" {
		c += ",scope=" + quote(s)
	}
	if errParam != "" {
		c += ",error=" + quote(errParam)
	}
	w.Header().Set("WWW-Authenticate", c)
}

// scopeParam renders access as token scopes ("repository:a/b:pull,push"),
// one per resource in the order first asked, separated by spaces.
func scopeParam(access []Access) string {
	var order []resource
	actions := map[resource][]string{}
	for _, a := range access {
		r := resource{a.Type, a.Name}
		if _, seen := actions[r]; !seen {
			order = append(order, r)
		}
		if !containsString(actions[r], a.Action) {
			actions[r] = append(actions[r], a.Action)
		}
	}
	scopes := make([]string, len(order))
	for i, r := range order {
		scopes[i] = r.typ + ":" + r.name + ":" + strings.Join(actions[r], ",")
	}
	return strings.Join(scopes, " ")
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func (a *tokenAuthorizer) Authorize(w http.ResponseWriter, r *http.Request, access ...Access) (*http.Request, error) {
	hdr, err := authorizationHeader(r.Header)
	if errors.Is(err, errNoCredentials) {
		a.challenge(w, access, "")
		return nil, unauthorized(access)
	}
	var raw string
	if err == nil {
		raw, err = parseBearer(hdr)
	}
	if errors.Is(err, errNotBearer) {
		// Basic credentials sent to a token registry: the client has not
		// been through the token server yet; point it there.
		a.challenge(w, access, "")
		return nil, unauthorized(access)
	}
	var claims *tokenClaims
	if err == nil {
		claims, err = a.verifier.verify(raw)
	}
	if err != nil {
		// Why is logged (never the token); the client only learns that
		// its token is invalid and where to get another.
		a.log.WithField("remote", r.RemoteAddr).WithError(err).Info("bearer token refused")
		a.challenge(w, access, "invalid_token")
		return nil, unauthorized(access)
	}
	id := &identity{name: claims.Subject, token: accessSetOf(claims.Access)}
	for _, acc := range access {
		if !id.token.contains(acc) {
			// Docker's spec answers a valid token that lacks the scope
			// with 401 and insufficient_scope, so the client fetches a
			// token with the scope in the challenge rather than give up.
			a.challenge(w, access, "insufficient_scope")
			return nil, unauthorized(access)
		}
	}
	return withIdentity(r, id), nil
}

func (a *tokenAuthorizer) Allowed(r *http.Request, access Access) bool {
	id := identityOf(r)
	if id == nil {
		return false
	}
	if id.token.contains(access) {
		return true
	}
	return a.localPolicy && a.policy.allowed(id.name, access)
}
