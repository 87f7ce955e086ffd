package auth

import (
	"crypto"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/sirupsen/logrus"

	"github.com/registryd/registryd/errcode"
)

// IssuerConfig is auth.tokenserver: registryd's own token server, so that
// token authentication (and `docker login` against it) works with one
// binary. It authenticates against auth.htpasswd, grants what the access
// rules allow, and signs with Key, whose public key the registry trusts
// without further configuration.
type IssuerConfig struct {
	// Key is a PEM private key: EC P-256 (tokens are ES256) or RSA of at
	// least 2048 bits (RS256).
	Key string
	// Certificate, optional, is a PEM certificate (chain) for Key. Tokens
	// then carry it as x5c, so other registries (distribution 2 and 3)
	// that have it in their rootcertbundle accept them too.
	Certificate string
	// Expiration is how long a token is valid; default 5 minutes.
	Expiration time.Duration
	// Path, optional, is where the caller serves the handler; a token
	// realm that names another path is logged as a likely mistake (a
	// proxy in front may rewrite paths, so it is not an error).
	Path string
}

// DefaultTokenExpiration is the lifetime of issued tokens: short, since a
// token cannot be revoked, and clients fetch a new one when it expires.
const DefaultTokenExpiration = 5 * time.Minute

// maxTokenExpiration bounds the configured lifetime.
const maxTokenExpiration = time.Hour

// Limits on a token request, so that a request cannot make the server sign
// (and clients carry) an unbounded token.
const (
	maxScopes        = 64
	maxScopeLength   = 512
	maxTokenFormBody = 64 << 10
)

// issuer is the token endpoint's handler.
type issuer struct {
	service, name string
	realm         string // the Basic challenge's, when credentials are needed
	users         *htpasswd
	policy        *policy
	signer        crypto.Signer
	method        jwt.SigningMethod
	kid           string
	x5c           []string
	ttl           time.Duration
	now           func() time.Time
	log           logrus.FieldLogger
}

func newIssuer(cfg *IssuerConfig, tok *TokenConfig, realm string, users *htpasswd, pol *policy, log logrus.FieldLogger) (*issuer, error) {
	if cfg.Key == "" {
		return nil, errors.New("auth.tokenserver.key: a private key to sign tokens with is required (EC P-256 or RSA)")
	}
	signer, method, err := loadSigningKey(cfg.Key)
	if err != nil {
		return nil, fmt.Errorf("auth.tokenserver.key: %w", err)
	}
	ttl := cfg.Expiration
	switch {
	case ttl == 0:
		ttl = DefaultTokenExpiration
	case ttl < 10*time.Second || ttl > maxTokenExpiration:
		return nil, fmt.Errorf("auth.tokenserver.expiration: %s is outside 10s..%s", ttl, maxTokenExpiration)
	}
	if u, err := url.Parse(tok.Realm); err == nil && cfg.Path != "" && u.Path != cfg.Path {
		log.WithFields(logrus.Fields{"realm": tok.Realm, "path": cfg.Path}).Warn("auth.token.realm does not name the path auth.tokenserver is served at: clients will not find the token server unless a proxy maps one to the other")
	}
	kid, err := jwkThumbprint(signer.Public())
	if err != nil {
		return nil, fmt.Errorf("auth.tokenserver.key: %w", err)
	}
	is := &issuer{
		service: tok.Service, name: tok.Issuer, realm: realm,
		users: users, policy: pol,
		signer: signer, method: method, kid: kid, ttl: ttl,
		now: time.Now, log: log,
	}
	if cfg.Certificate != "" {
		certs, err := loadCertificates("auth.tokenserver.certificate", cfg.Certificate)
		if err != nil {
			return nil, err
		}
		if !samePublicKey(signer.Public(), certs[0].PublicKey) {
			return nil, fmt.Errorf("auth.tokenserver.certificate %s: the (first) certificate is not for the key %s", cfg.Certificate, cfg.Key)
		}
		for _, c := range certs {
			is.x5c = append(is.x5c, base64.StdEncoding.EncodeToString(c.Raw))
		}
	}
	return is, nil
}

// tokenResponse is the body of a successful token request. It has both
// "token" (Docker's spec) and "access_token" (OAuth 2), which clients
// treat as synonyms.
type tokenResponse struct {
	Token       string `json:"token"`
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type,omitempty"`
	Scope       string `json:"scope,omitempty"`
	ExpiresIn   int    `json:"expires_in"`
	IssuedAt    string `json:"issued_at"`
}

// ServeHTTP serves Docker's token endpoint: GET with ?service=&scope= and
// optional Basic credentials, and the OAuth 2 form POST (grant_type
// password) that containerd-based clients try first. Refresh tokens are not
// issued, so offline_token is ignored and grant_type refresh_token refused;
// clients then log in with their credentials again.
func (h *issuer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	switch r.Method {
	case http.MethodGet:
		h.serveGet(w, r)
	case http.MethodPost:
		h.servePost(w, r)
	default:
		w.Header().Set("Allow", "GET, POST")
		oauthError(w, http.StatusMethodNotAllowed, "invalid_request", "the token endpoint answers GET and POST")
	}
}

func (h *issuer) serveGet(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	scopes, err := h.requestScopes(q.Get("service"), q["scope"])
	if err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	user := ""
	hdr, err := authorizationHeader(r.Header)
	switch {
	case err == nil:
		u, pw, perr := parseBasic(hdr)
		if perr != nil || !h.users.authenticate(u, pw) {
			h.refused(r, u)
			h.challenge(w)
			errcode.ServeJSON(w, errcode.Newf(errcode.Unauthorized, "incorrect username or password"))
			return
		}
		user = u
	case errors.Is(err, errNoCredentials):
		if !h.anonymousAllowed() {
			h.challenge(w)
			errcode.ServeJSON(w, errcode.Newf(errcode.Unauthorized, "authentication required"))
			return
		}
	default:
		h.challenge(w)
		errcode.ServeJSON(w, errcode.Newf(errcode.Unauthorized, "malformed Authorization header"))
		return
	}
	h.issue(w, r, user, scopes, false)
}

func (h *issuer) servePost(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxTokenFormBody)
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "the body must be an application/x-www-form-urlencoded form")
		return
	}
	f := r.PostForm
	switch f.Get("grant_type") {
	case "password":
	case "refresh_token":
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "this token server issues no refresh tokens; use grant_type password")
		return
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "grant_type must be password")
		return
	}
	// The OAuth 2 form's scope is one space-separated list.
	scopes, err := h.requestScopes(f.Get("service"), f["scope"])
	if err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	user := f.Get("username")
	if user == "" || !h.users.authenticate(user, f.Get("password")) {
		h.refused(r, user)
		// RFC 6749 section 5.2: bad resource owner credentials are an
		// invalid_grant, answered 400.
		oauthError(w, http.StatusBadRequest, "invalid_grant", "incorrect username or password")
		return
	}
	h.issue(w, r, user, scopes, true)
}

func (h *issuer) challenge(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", "Basic realm="+quote(h.realm))
}

// refused logs a failed login, naming the user only if it exists (a
// password typed in the user field is not a user).
func (h *issuer) refused(r *http.Request, user string) {
	entry := h.log.WithField("remote", r.RemoteAddr)
	if user != "" && h.users.known(user) {
		entry = entry.WithField("user", user)
	}
	entry.Info("token request: authentication failed")
}

// anonymousAllowed tells whether a request without credentials may get a
// token at all: only where some anonymous rule exists. Otherwise a 401
// makes the client ask its user for credentials, as a registry would.
func (h *issuer) anonymousAllowed() bool {
	return h.policy != nil && len(h.policy.anonymous) > 0
}

// requestScopes checks the service and parses the scopes asked for. Each
// value may hold several scopes separated by spaces (OAuth 2 form, and some
// clients' GETs).
func (h *issuer) requestScopes(service string, values []string) ([]ResourceActions, error) {
	if service != "" && service != h.service {
		return nil, fmt.Errorf("this token server issues tokens for service %q, not %.100q", h.service, service)
	}
	var out []ResourceActions
	for _, v := range values {
		for _, s := range strings.Fields(v) {
			if len(out) == maxScopes {
				return nil, fmt.Errorf("more than %d scopes requested", maxScopes)
			}
			ra, err := parseScope(s)
			if err != nil {
				return nil, err
			}
			out = append(out, ra)
		}
	}
	return out, nil
}

// parseScope parses "type[(class)]:name:action,action". The name may hold
// ":" (a host:port prefix), so the type ends at the first ":" and the
// actions start after the last.
func parseScope(s string) (ResourceActions, error) {
	if len(s) > maxScopeLength {
		return ResourceActions{}, fmt.Errorf("scope %.60q... is too long", s)
	}
	i, j := strings.Index(s, ":"), strings.LastIndex(s, ":")
	if i < 0 || i == j {
		return ResourceActions{}, fmt.Errorf("scope %q is not type:name:actions", s)
	}
	typ, name, acts := s[:i], s[i+1:j], s[j+1:]
	class := ""
	if k := strings.IndexByte(typ, '('); k >= 0 && strings.HasSuffix(typ, ")") {
		typ, class = typ[:k], typ[k+1:len(typ)-1]
	}
	if typ == "" || name == "" {
		return ResourceActions{}, fmt.Errorf("scope %q is not type:name:actions", s)
	}
	for _, c := range s {
		if c <= 0x20 || c >= 0x7f {
			return ResourceActions{}, fmt.Errorf("scope %q has characters no scope has", s)
		}
	}
	ra := ResourceActions{Type: typ, Class: class, Name: name}
	for _, a := range strings.Split(acts, ",") {
		if a != "" && !containsString(ra.Actions, a) {
			ra.Actions = append(ra.Actions, a)
		}
	}
	return ra, nil
}

// grant intersects what was asked with what user may do. What is not
// granted is silently left out, as Docker's spec has it: the registry
// then answers insufficient_scope, which is where the client learns.
func (h *issuer) grant(user string, asked []ResourceActions) []ResourceActions {
	var out []ResourceActions
	index := map[resource]int{}
	for _, ra := range asked {
		var actions []string
		for _, a := range ra.Actions {
			if ra.Type == "repository" && a == "*" {
				// "*" on a repository asks for whatever may be had.
				for _, each := range actAll.names() {
					if h.policy.allowed(user, Repository(ra.Name, each)) {
						actions = append(actions, each)
					}
				}
				continue
			}
			if h.policy.allowed(user, Access{Type: ra.Type, Name: ra.Name, Action: a}) {
				actions = append(actions, a)
			}
		}
		if len(actions) == 0 {
			continue
		}
		r := resource{ra.Type, ra.Name}
		k, seen := index[r]
		if !seen {
			k = len(out)
			index[r] = k
			out = append(out, ResourceActions{Type: ra.Type, Name: ra.Name})
		}
		for _, a := range actions {
			if !containsString(out[k].Actions, a) {
				out[k].Actions = append(out[k].Actions, a)
			}
		}
	}
	return out
}

// issue signs a token for user with the granted part of scopes.
func (h *issuer) issue(w http.ResponseWriter, r *http.Request, user string, scopes []ResourceActions, oauth bool) {
	recordUser(r.Context(), user) // for the access log
	granted := h.grant(user, scopes)
	now := h.now()
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		errcode.ServeJSON(w, errcode.New(errcode.Unknown).Wrap(err))
		return
	}
	access := make([]any, len(granted))
	for i, g := range granted {
		access[i] = g
	}
	// MapClaims so that "aud" is a plain string: distribution 2.x reads it
	// into a string and would refuse the array form.
	claims := jwt.MapClaims{
		"iss":    h.name,
		"sub":    user,
		"aud":    h.service,
		"exp":    now.Add(h.ttl).Unix(),
		"nbf":    now.Unix(),
		"iat":    now.Unix(),
		"jti":    hex.EncodeToString(jti[:]),
		"access": access,
	}
	t := jwt.NewWithClaims(h.method, claims)
	t.Header["kid"] = h.kid
	if len(h.x5c) > 0 {
		t.Header["x5c"] = h.x5c
	}
	signed, err := t.SignedString(h.signer)
	if err != nil {
		h.log.WithError(err).Error("signing a token")
		errcode.ServeJSON(w, errcode.New(errcode.Unknown).Wrap(err))
		return
	}
	resp := tokenResponse{
		Token:       signed,
		AccessToken: signed,
		ExpiresIn:   int(h.ttl / time.Second),
		IssuedAt:    now.UTC().Format(time.RFC3339),
	}
	if oauth {
		resp.TokenType = "Bearer"
		scopes := make([]string, len(granted))
		for i, g := range granted {
			scopes[i] = g.Type + ":" + g.Name + ":" + strings.Join(g.Actions, ",")
		}
		resp.Scope = strings.Join(scopes, " ")
	}
	h.log.WithFields(logrus.Fields{"user": user, "granted": len(granted), "asked": len(scopes)}).Debug("token issued")
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_ = json.NewEncoder(w).Encode(resp)
}

// oauthError writes an RFC 6749 error body, which Docker's and containerd's
// clients both parse.
func oauthError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(struct {
		Error       string `json:"error"`
		Description string `json:"error_description,omitempty"`
	}{code, desc})
}
