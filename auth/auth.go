package auth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/sirupsen/logrus"

	"github.com/registryd/registryd/errcode"
)

// Config selects how requests are authenticated and authorized. The zero
// Config turns authentication off (New returns a nil Authorizer).
//
// The combinations that make sense, and the only ones New accepts:
//
//   - Htpasswd: HTTP Basic against the file; Access rules (or, without
//     them, everything for every authenticated user).
//   - Token: bearer tokens from an external token server, whose "access"
//     claim alone decides.
//   - Token + Issuer + Htpasswd: the same, with registryd's own token
//     server authenticating against the file and granting per Access.
type Config struct {
	Htpasswd *HtpasswdConfig
	Token    *TokenConfig
	Issuer   *IssuerConfig
	Access   *AccessConfig
}

// HtpasswdConfig is auth.htpasswd.
type HtpasswdConfig struct {
	// Realm goes in the Basic challenge (and the token server's).
	Realm string
	// Path of a file of user:bcrypt-hash lines (`htpasswd -B`), re-read
	// when it changes.
	Path string
}

// New builds the Authorizer cfg describes and, when cfg.Issuer is set, the
// token endpoint's handler (to be served at the path that cfg.Token.Realm
// names). Startup problems (unreadable files, bad keys, inconsistent
// settings) are errors that say which setting to fix. log receives reloads
// and refusals; nil discards them.
func New(cfg Config, log logrus.FieldLogger) (Authorizer, http.Handler, error) {
	if log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		log = l
	}
	log = log.WithField("component", "auth")
	if cfg.Htpasswd == nil && cfg.Token == nil {
		switch {
		case cfg.Issuer != nil:
			return nil, nil, errors.New("auth.tokenserver issues the tokens of auth.token and authenticates against auth.htpasswd: configure both")
		case cfg.Access != nil:
			return nil, nil, errors.New("access rules need a way to know users: configure auth.htpasswd (or auth.token with auth.tokenserver)")
		}
		return nil, nil, nil
	}
	pol, err := compilePolicy(cfg.Access)
	if err != nil {
		return nil, nil, err
	}
	var users *htpasswd
	realm := ""
	if h := cfg.Htpasswd; h != nil {
		if h.Path == "" {
			return nil, nil, errors.New("auth.htpasswd.path: the htpasswd file is required")
		}
		realm = h.Realm
		if realm == "" {
			realm = "registryd"
		}
		if err := checkQuotable(realm); err != nil {
			return nil, nil, fmt.Errorf("auth.htpasswd.realm: %w", err)
		}
		if users, err = newHtpasswd(h.Path, log); err != nil {
			return nil, nil, fmt.Errorf("auth.htpasswd: %w", err)
		}
	}

	if cfg.Token == nil {
		if cfg.Issuer != nil {
			return nil, nil, errors.New("auth.tokenserver issues the tokens of auth.token: configure auth.token (realm, service, issuer) too")
		}
		log.WithField("rules", pol.String()).Info("authentication: htpasswd (HTTP Basic)")
		return &basicAuthorizer{realm: realm, users: users, policy: pol, log: log}, nil, nil
	}

	switch {
	case cfg.Htpasswd != nil && cfg.Issuer == nil:
		return nil, nil, errors.New("auth.htpasswd and auth.token are both configured: with auth.token, requests carry tokens; add auth.tokenserver to issue them against htpasswd, or remove one of the two")
	case cfg.Issuer != nil && cfg.Htpasswd == nil:
		return nil, nil, errors.New("auth.tokenserver authenticates users against auth.htpasswd: configure it")
	case cfg.Access != nil && cfg.Issuer == nil:
		return nil, nil, errors.New("access rules are enforced by registryd's own token server (auth.tokenserver); with an external token server, that server decides access")
	}
	v, err := newVerifier(cfg.Token, log)
	if err != nil {
		return nil, nil, err
	}
	ta := &tokenAuthorizer{realm: cfg.Token.Realm, service: cfg.Token.Service, verifier: v, log: log}
	var handler http.Handler
	if cfg.Issuer != nil {
		iss, err := newIssuer(cfg.Issuer, cfg.Token, realm, users, pol, log)
		if err != nil {
			return nil, nil, err
		}
		if err := v.trust(iss.signer.Public()); err != nil {
			return nil, nil, fmt.Errorf("auth.tokenserver.key: %w", err)
		}
		ta.localPolicy, ta.policy, ta.users = true, pol, users
		handler = iss
	}
	if len(v.keys) == 0 && v.roots == nil {
		return nil, nil, errors.New("auth.token: no key to verify tokens with: set rootcertbundle (PEM certificates of the token signer) or jwks")
	}
	log.WithFields(logrus.Fields{"realm": cfg.Token.Realm, "service": cfg.Token.Service, "issuer": cfg.Token.Issuer, "token_server": handler != nil}).Info("authentication: bearer tokens")
	return ta, handler, nil
}

// checkQuotable refuses what cannot go in a quoted-string of a challenge.
func checkQuotable(s string) error {
	for _, c := range s {
		if c < 0x20 || c == 0x7f || c > 0x7e {
			return fmt.Errorf("%q: only printable ASCII can go in a WWW-Authenticate challenge", s)
		}
	}
	return nil
}

// quote renders s as an HTTP quoted-string (RFC 9110 section 5.6.4).
func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// checkRealmURL checks a token realm: clients fetch tokens from it, so it
// must be an absolute http(s) URL.
func checkRealmURL(realm string) error {
	u, err := url.Parse(realm)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("%q must be the absolute URL of the token endpoint, such as https://registry.example.com/auth/token", realm)
	}
	return checkQuotable(realm)
}

// ---------------------------------------------------------------- identity

type ctxKey int

const (
	identityKey ctxKey = iota
	userSlotKey
)

// identity is who a request comes from, as Authorize established it.
type identity struct {
	name string // "" for an anonymous caller
	// token is the access a bearer token grants; nil with Basic auth.
	token accessSet
}

// UserFromContext returns the authenticated user name of a request that
// Authorize let through; ok is false for an anonymous caller.
func UserFromContext(ctx context.Context) (name string, ok bool) {
	id, _ := ctx.Value(identityKey).(*identity)
	if id == nil || id.name == "" {
		return "", false
	}
	return id.name, true
}

type userSlot struct {
	mu   sync.Mutex
	name string
}

// TrackUser returns a context in which Authorize records the authenticated
// user, and a function that reads it once the request is served. It exists
// for the access log: the middleware that writes it holds the request as it
// came in, not the one Authorize returned.
func TrackUser(ctx context.Context) (context.Context, func() string) {
	s := &userSlot{}
	return context.WithValue(ctx, userSlotKey, s), func() string {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.name
	}
}

func withIdentity(r *http.Request, id *identity) *http.Request {
	recordUser(r.Context(), id.name)
	return r.WithContext(context.WithValue(r.Context(), identityKey, id))
}

// recordUser fills the slot of TrackUser, if the context has one.
func recordUser(ctx context.Context, name string) {
	if s, ok := ctx.Value(userSlotKey).(*userSlot); ok && name != "" {
		s.mu.Lock()
		s.name = name
		s.mu.Unlock()
	}
}

func identityOf(r *http.Request) *identity {
	id, _ := r.Context().Value(identityKey).(*identity)
	return id
}

// ---------------------------------------------------------------- errors

// unauthorized is the 401 body, listing the access that was asked for as
// distribution does, so that a client can tell what it lacked.
func unauthorized(access []Access) error {
	e := errcode.New(errcode.Unauthorized)
	if len(access) > 0 {
		e = e.WithDetail(access)
	}
	return e
}

// denied is the 403 for an authenticated caller lacking access.
func denied(missing []Access) error {
	return errcode.New(errcode.Denied).WithDetail(missing)
}

// ---------------------------------------------------------------- Basic

// basicAuthorizer authenticates with htpasswd and authorizes with a policy.
type basicAuthorizer struct {
	realm  string
	users  *htpasswd
	policy *policy
	log    logrus.FieldLogger
}

func (a *basicAuthorizer) challenge(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", "Basic realm="+quote(a.realm))
}

func (a *basicAuthorizer) Authorize(w http.ResponseWriter, r *http.Request, access ...Access) (*http.Request, error) {
	id := &identity{}
	hdr, err := authorizationHeader(r.Header)
	if err == nil {
		var user, password string
		user, password, err = parseBasic(hdr)
		if err == nil && !a.users.authenticate(user, password) {
			entry := a.log.WithField("remote", r.RemoteAddr)
			// A user name that is not in the file may be a password typed
			// in the wrong field: it is not logged.
			if a.users.known(user) {
				entry = entry.WithField("user", user)
			}
			entry.Info("authentication failed")
			err = errors.New("wrong user name or password")
		}
		if err != nil {
			// Wrong or malformed credentials are refused outright, even
			// where an anonymous caller would be let in: silently serving
			// a mistyped login as anonymous hides the mistake.
			a.challenge(w)
			return nil, unauthorized(access)
		}
		id.name = user
	} else if !errors.Is(err, errNoCredentials) {
		a.challenge(w)
		return nil, unauthorized(access)
	}
	if len(access) == 0 && id.name == "" {
		// GET /v2/ without credentials: tell the client to log in.
		a.challenge(w)
		return nil, unauthorized(nil)
	}
	var missing []Access
	for _, acc := range access {
		if !a.policy.allowed(id.name, acc) {
			missing = append(missing, acc)
		}
	}
	if len(missing) > 0 {
		if id.name == "" {
			a.challenge(w)
			return nil, unauthorized(access)
		}
		return nil, denied(missing)
	}
	return withIdentity(r, id), nil
}

func (a *basicAuthorizer) Allowed(r *http.Request, access Access) bool {
	name := ""
	if id := identityOf(r); id != nil {
		name = id.name
	}
	return a.policy.allowed(name, access)
}
