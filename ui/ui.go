// Package ui is registryd's web UI: server-rendered pages (html/template,
// embedded with the binary) to browse the catalog, inspect images and
// artifacts and delete what the caller may delete. It is served on the
// registry's own listener, reads the registry's own storage and obeys the
// same authentication and access rules as the API: it shows nothing the
// API would not serve the same caller.
//
// Security model, in one place:
//   - Identity comes from a session cookie set by the login page (htpasswd
//     users, as the API and the token server know them), never from
//     Basic credentials: the browser caches those and sends them on
//     cross-site requests, and asks for them with its own dialog. The
//     cookie is HttpOnly, SameSite=Strict, Secure over TLS, and expires.
//   - Reading is GET; every change is a POST, refused when the browser
//     says it comes from another origin (http.CrossOriginProtection).
//     Nothing changes on GET.
//   - Every page carries a Content-Security-Policy without 'unsafe-inline'
//     (scripts and styles only from the hashed assets), frame-ancestors
//     'none' and nosniff. html/template escapes every name, tag, label
//     and annotation for where it appears.
//   - What is listed and shown is filtered by the caller's pull right;
//     delete controls appear where the server would allow the delete, and
//     the POST handler checks again.
package ui

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/registryd/registryd/api/admin"
	"github.com/registryd/registryd/auth"
	"github.com/registryd/registryd/notifications"
	"github.com/registryd/registryd/storage"
)

// Options configure the UI.
type Options struct {
	// Registry is the storage the registry serves.
	Registry *storage.Registry
	// Path is where the UI is mounted, with slashes at both ends ("/ui/").
	Path string
	// PullHost is the host[:port] shown in pull commands; empty means
	// the host of HTTPHost, else the Host the browser sent.
	PullHost string
	// HTTPHost is http.host, the registry's external base URL, if set.
	HTTPHost string
	// DeleteEnabled and ReadOnly are storage.delete.enabled and
	// storage.maintenance.readonly.enabled: deletes need the first and
	// not the second, as in the API.
	DeleteEnabled, ReadOnly bool
	// Authorizer is the registry's; nil means no authentication (every
	// caller may do everything), as in the API.
	Authorizer auth.Authorizer
	// Secret (http.secret) keys the session cookies, so that sessions
	// survive restarts and are valid on every instance sharing it. Empty:
	// a random key, for this process only.
	Secret string
	// SessionLifetime bounds a login; 0 selects 12 hours.
	SessionLifetime time.Duration
	// Headers are http.headers, added to every response as the API does.
	Headers http.Header
	// Version is shown in the footer.
	Version string
	// Logger receives deletes and refusals; nil discards them.
	Logger logrus.FieldLogger
	// Notifier receives a delete event for every delete done here, as
	// for the API's; nil sends none.
	Notifier *notifications.Notifier
	// Admin is the admin API's service, whose methods the pages call for
	// listings with sizes and times, search, impact, usage, repository
	// delete, GC and retention (one implementation for the UI, the API
	// and the CLI). Nil: a service over Registry without GC or retention.
	Admin *admin.Service
}

// UI is the web UI's handler.
type UI struct {
	opts     Options
	reg      *storage.Registry
	base     string     // opts.Path
	users    auth.Users // nil without local users
	external bool       // auth is on but registryd does not know the users
	sessions *sessions
	assets   *assetSet
	pages    *pageSet
	svc      *admin.Service
	cop      *http.CrossOriginProtection
	log      logrus.FieldLogger
}

// New returns the UI's handler, to be mounted at opts.Path.
func New(opts Options) (*UI, error) {
	if opts.Registry == nil {
		return nil, errors.New("ui: no registry")
	}
	if opts.Path == "" {
		opts.Path = "/ui/"
	}
	if !strings.HasPrefix(opts.Path, "/") || !strings.HasSuffix(opts.Path, "/") {
		return nil, fmt.Errorf("ui: path %q must start and end with a slash", opts.Path)
	}
	if opts.SessionLifetime <= 0 {
		opts.SessionLifetime = 12 * time.Hour
	}
	if opts.Logger == nil {
		l := logrus.New()
		l.SetOutput(discard{})
		opts.Logger = l
	}
	u := &UI{opts: opts, reg: opts.Registry, base: opts.Path, log: opts.Logger.WithField("component", "ui")}
	if opts.Authorizer != nil {
		if users, ok := auth.UsersOf(opts.Authorizer); ok {
			u.users = users
		} else {
			u.external = true
		}
	}
	key := sessionKey(opts.Secret)
	if opts.Secret == "" && u.users != nil {
		u.log.Warn("http.secret is not set: web UI logins last until this process stops and are valid on this instance only")
	}
	u.sessions = &sessions{key: key, lifetime: opts.SessionLifetime, path: opts.Path, now: time.Now}
	var err error
	if u.assets, err = loadAssets(opts.Path + "assets/"); err != nil {
		return nil, err
	}
	if u.pages, err = loadPages(u.funcs()); err != nil {
		return nil, err
	}
	if u.opts.Admin == nil {
		u.opts.Admin = admin.NewService(opts.Registry, admin.Options{
			DeleteEnabled: opts.DeleteEnabled, ReadOnly: opts.ReadOnly, Version: opts.Version, Notifier: opts.Notifier,
		})
	}
	u.svc = u.opts.Admin
	u.cop = http.NewCrossOriginProtection()
	u.cop.SetDenyHandler(http.HandlerFunc(u.crossOrigin))
	return u, nil
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// sessionKey derives the cookie MAC key from http.secret, or makes one.
func sessionKey(secret string) []byte {
	if secret == "" {
		k := make([]byte, 32)
		_, _ = rand.Read(k)
		return k
	}
	// A key of its own: http.secret may key other things too.
	sum := sha256.Sum256([]byte("registryd ui session key v1\x00" + secret))
	return sum[:]
}

// csp is the Content-Security-Policy of every UI response: scripts and
// styles only from our own (hashed, embedded) files, no inline code or
// style, no framing, forms post only back to us.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

func (u *UI) securityHeaders(h http.Header) {
	for k, v := range u.opts.Headers {
		h[k] = append([]string(nil), v...)
	}
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=(), usb=()")
}

// ServeHTTP routes a request under the UI's path.
func (u *UI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.securityHeaders(w.Header())
	// Every state change is a POST, and every POST must come from a page
	// of this origin: a form on another site, even one the session cookie
	// is sent with (another port of the same host is the same site), is
	// refused before any handler runs.
	if err := u.cop.Check(r); err != nil {
		u.crossOrigin(w, r)
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, u.base)
	if !ok {
		u.notFound(w, r, nil)
		return
	}
	if a, ok := strings.CutPrefix(rest, "assets/"); ok {
		u.assets.serve(w, r, a)
		return
	}
	v := u.viewer(w, r)
	switch {
	case rest == "":
		u.get(w, r, v, u.catalog)
	case rest == "login":
		u.login(w, r, v)
	case rest == "logout":
		u.post(w, r, v, u.logout)
	case strings.HasPrefix(rest, "r/"):
		u.repoRoute(w, r, v, rest[2:])
	case rest == "storage":
		u.get(w, r, v, u.storagePage)
	case rest == "maintenance" || strings.HasPrefix(rest, "maintenance/"):
		u.maintenanceRoute(w, r, v, strings.TrimPrefix(strings.TrimPrefix(rest, "maintenance"), "/"))
	default:
		u.notFound(w, r, v)
	}
}

// get runs h for GET and HEAD only.
func (u *UI) get(w http.ResponseWriter, r *http.Request, v *viewer, h func(http.ResponseWriter, *http.Request, *viewer)) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		u.errorPage(w, r, v, http.StatusMethodNotAllowed, "This page can only be read.")
		return
	}
	if v.mustLogin {
		u.redirectLogin(w, r)
		return
	}
	h(w, r, v)
}

// post runs h for POST only.
func (u *UI) post(w http.ResponseWriter, r *http.Request, v *viewer, h func(http.ResponseWriter, *http.Request, *viewer)) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		u.errorPage(w, r, v, http.StatusMethodNotAllowed, "This action needs a POST from the form that offers it.")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	if err := r.ParseForm(); err != nil {
		u.errorPage(w, r, v, http.StatusBadRequest, "The form could not be read.")
		return
	}
	h(w, r, v)
}

// crossOrigin answers a cross-origin state change.
func (u *UI) crossOrigin(w http.ResponseWriter, r *http.Request) {
	u.log.WithFields(logrus.Fields{"path": r.URL.Path, "origin": r.Header.Get("Origin"), "sec_fetch_site": r.Header.Get("Sec-Fetch-Site")}).
		Warn("refused a cross-origin request to the web UI")
	u.securityHeaders(w.Header())
	u.errorPage(w, r, nil, http.StatusForbidden, "Refused: this request came from another site. Changes can only be made from the registry's own pages.")
}

// redirectLogin sends a caller who must log in to the login page, with
// the page they asked for to come back to.
func (u *UI) redirectLogin(w http.ResponseWriter, r *http.Request) {
	q := url.Values{}
	if r.Method == http.MethodGet && r.URL.Path != u.base+"login" {
		q.Set("next", r.URL.RequestURI())
	}
	target := u.base + "login"
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// safeNext keeps a post-login destination inside the UI: a path under
// base, never another host ("//evil", "/\evil") or scheme.
func (u *UI) safeNext(next string) string {
	if next == "" || !strings.HasPrefix(next, u.base) || strings.ContainsAny(next, "\\\r\n") || strings.HasPrefix(next, "//") {
		return u.base
	}
	if p, err := url.Parse(next); err != nil || p.Scheme != "" || p.Host != "" {
		return u.base
	}
	return next
}

// ctx bounds the storage work of one page.
func pageCtx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), 30*time.Second)
}

// WithRootRedirect sends a browser that opens the registry's address
// ("/") to the UI at path; every other request goes to next (the API).
func WithRootRedirect(next http.Handler, path string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			http.Redirect(w, r, path, http.StatusFound)
			return
		}
		if r.URL.Path+"/" == path && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			http.Redirect(w, r, path, http.StatusMovedPermanently)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// SetAdmin gives the UI the server's admin service (with its collector
// and retention); call it before serving.
func (u *UI) SetAdmin(svc *admin.Service) {
	u.opts.Admin, u.svc = svc, svc
}
