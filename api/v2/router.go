// Package v2 serves the Docker Registry HTTP API V2 / OCI Distribution API
// over a storage.Registry: routing, request validation, status codes,
// headers and error bodies as the specification states them.
package v2

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/gorilla/mux"
	"github.com/sirupsen/logrus"

	"github.com/registryd/registryd/auth"
	"github.com/registryd/registryd/errcode"
	"github.com/registryd/registryd/internal/httprec"
	"github.com/registryd/registryd/notifications"
	"github.com/registryd/registryd/proxy"
	"github.com/registryd/registryd/storage"
)

// Options configure the API handler.
type Options struct {
	// DeleteEnabled allows DELETE of manifests, tags and blobs
	// (storage.delete.enabled); otherwise they are 405 UNSUPPORTED.
	DeleteEnabled bool
	// ReadOnly refuses every write with 405 UNSUPPORTED while pulls go on
	// (storage.maintenance.readonly.enabled).
	ReadOnly bool
	// CatalogMaxEntries caps one page of /v2/_catalog (catalog.maxentries).
	CatalogMaxEntries int
	// Host is the external base URL ("https://registry.example.com") used
	// for Location headers (http.host); empty means the request's own.
	Host string
	// RelativeURLs makes Location headers relative (http.relativeurls).
	RelativeURLs bool
	// Headers are added to every response (http.headers).
	Headers http.Header
	// Version is reported in the X-Registry-Version header.
	Version string
	// Logger receives one access log entry per request; nil logs nothing.
	Logger logrus.FieldLogger
	// Authorizer decides who may do what; nil lets everyone do everything.
	Authorizer auth.Authorizer
	// Notifier receives an event for every push, pull, mount and delete;
	// nil sends none.
	Notifier *notifications.Notifier
	// Mirror, when set, makes the repositories it routes caches of
	// upstream registries (pull-through; see mirror.go); nil hosts all.
	Mirror *proxy.Proxy
	// Limiter limits requests by authenticated user once the authorizer
	// has said who it is (http.ratelimit.peruser); nil limits nothing.
	Limiter UserLimiter
}

// UserLimiter limits requests by user: it answers 429 itself and returns
// false for a request over the limit.
type UserLimiter interface {
	AllowUser(w http.ResponseWriter, r *http.Request, user string) bool
}

// allowUser asks the Limiter about the authenticated user of r.
func (a *API) allowUser(w http.ResponseWriter, r *http.Request) bool {
	if a.opts.Limiter == nil {
		return true
	}
	user, _ := auth.UserFromContext(r.Context())
	return a.opts.Limiter.AllowUser(w, r, user)
}

// API is the registry's HTTP handler.
type API struct {
	reg    *storage.Registry
	opts   Options
	router *mux.Router
	host   *url.URL
}

// NewHandler returns the handler for the /v2/ API over reg.
func NewHandler(reg *storage.Registry, opts Options) http.Handler {
	if opts.CatalogMaxEntries <= 0 {
		opts.CatalogMaxEntries = 1000
	}
	if opts.Version == "" {
		opts.Version = "dev"
	}
	a := &API{reg: reg, opts: opts}
	if opts.Host != "" {
		if u, err := url.Parse(opts.Host); err == nil && u.Host != "" {
			a.host = u
		}
	}
	r := mux.NewRouter()
	// Paths are matched as sent: no cleaning (a "/../" must not be
	// resolved into another repository) and no decoding of %2F into a
	// name separator. Names are validated by the handlers.
	r.SkipClean(true)
	r.UseEncodedPath()
	r.StrictSlash(false)

	const name = "{name:[^_].*?}"
	pull, push, del := auth.ActionPull, auth.ActionPush, auth.ActionDelete
	r.HandleFunc("/v2/", a.authorized(nil, a.base)).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/v2/_catalog", a.authorized([]auth.Access{auth.Catalog}, a.catalog)).Methods(http.MethodGet)
	r.HandleFunc("/v2/"+name+"/tags/list", a.withRepo(a.tagsList, pull)).Methods(http.MethodGet)
	r.HandleFunc("/v2/"+name+"/manifests/{reference}", a.withRepo(a.getManifest, pull)).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/v2/"+name+"/manifests/{reference}", a.withRepo(a.writeGuard(a.putManifest), pull, push)).Methods(http.MethodPut)
	r.HandleFunc("/v2/"+name+"/manifests/{reference}", a.withRepo(a.deleteGuard(a.deleteManifest), del)).Methods(http.MethodDelete)
	r.HandleFunc("/v2/"+name+"/referrers/{digest}", a.withRepo(a.referrers, pull)).Methods(http.MethodGet)
	r.HandleFunc("/v2/"+name+"/blobs/uploads/", a.withRepo(a.writeGuard(a.startUpload), pull, push)).Methods(http.MethodPost)
	r.HandleFunc("/v2/"+name+"/blobs/uploads/{uuid}", a.withRepo(a.uploadStatus, pull, push)).Methods(http.MethodGet)
	r.HandleFunc("/v2/"+name+"/blobs/uploads/{uuid}", a.withRepo(a.writeGuard(a.patchUpload), pull, push)).Methods(http.MethodPatch)
	r.HandleFunc("/v2/"+name+"/blobs/uploads/{uuid}", a.withRepo(a.writeGuard(a.putUpload), pull, push)).Methods(http.MethodPut)
	r.HandleFunc("/v2/"+name+"/blobs/uploads/{uuid}", a.withRepo(a.writeGuard(a.cancelUpload), pull, push)).Methods(http.MethodDelete)
	r.HandleFunc("/v2/"+name+"/blobs/{digest}", a.withRepo(a.getBlob, pull)).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/v2/"+name+"/blobs/{digest}", a.withRepo(a.deleteGuard(a.deleteBlob), del)).Methods(http.MethodDelete)
	r.NotFoundHandler = http.HandlerFunc(notFound)
	r.MethodNotAllowedHandler = http.HandlerFunc(methodNotAllowed)
	a.router = r
	return a
}

func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	for k, v := range a.opts.Headers {
		h[k] = append([]string(nil), v...)
	}
	h.Set("Docker-Distribution-API-Version", "registry/2.0")
	// A query Go cannot read whole (a ";" in it, a bad escape) would be
	// read with pairs silently left out: "?digest=D;x" would start an
	// upload session instead of refusing the digest.
	if _, err := url.ParseQuery(r.URL.RawQuery); err != nil {
		serveError(w, r, errcode.Newf(errcode.Unsupported, "malformed query string: %v", err).WithStatus(http.StatusBadRequest))
		return
	}
	a.router.ServeHTTP(w, r)
}

func notFound(w http.ResponseWriter, r *http.Request) {
	// No endpoint has this shape: often a name the router could not split
	// (a trailing slash) or a reference with "/" in it.
	errcode.ServeJSON(w, errcode.Newf(errcode.Unsupported, "no such API endpoint: %s %s", r.Method, clip(r.URL.Path)).WithStatus(http.StatusNotFound))
}

func methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	errcode.ServeJSON(w, errcode.Newf(errcode.Unsupported, "method %s is not supported on %s", r.Method, clip(r.URL.Path)))
}

func clip(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

// repoHandler is a handler for a route under a repository name.
type repoHandler func(w http.ResponseWriter, r *http.Request, repo *storage.Repository) error

// withRepo validates the name, asks the authorizer for the actions the
// route needs on it, and renders the handler's error, if any. The name is
// validated first so that an authorizer only ever sees valid names.
func (a *API) withRepo(h repoHandler, actions ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		raw := mux.Vars(r)["name"]
		name, err := url.PathUnescape(raw)
		if err != nil || name != raw {
			// Encoded characters have no place in a valid name.
			name = raw
		}
		err = storage.ValidateName(name)
		if err == nil && a.opts.Authorizer != nil {
			access := make([]auth.Access, len(actions))
			for i, act := range actions {
				access[i] = auth.Repository(name, act)
			}
			r, err = a.opts.Authorizer.Authorize(w, r, access...)
		}
		if err == nil && !a.allowUser(w, r) {
			return
		}
		// After authorization: that a repository is being deleted is
		// only told to a caller who may act on it.
		var repo *storage.Repository
		if err == nil {
			repo, err = a.reg.Repository(name)
		}
		if err == nil && a.opts.Mirror != nil {
			r, repo, err = a.routeMirror(w, r, name, repo, actions)
		}
		if err == nil && writes(actions) {
			// A repository being deleted takes no writes, even on an
			// instance whose view of the deletions is out of date.
			err = a.reg.CheckWritable(r.Context(), name)
		}
		if err == nil {
			err = h(w, r, repo)
		}
		if err != nil {
			serveError(w, r, err)
		}
	}
}

// writes reports whether a route needing actions changes the repository.
func writes(actions []string) bool {
	for _, a := range actions {
		if a == auth.ActionPush || a == auth.ActionDelete {
			return true
		}
	}
	return false
}

// authorized guards a route that is not under a repository.
func (a *API) authorized(access []auth.Access, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if a.opts.Authorizer != nil {
			var err error
			if r, err = a.opts.Authorizer.Authorize(w, r, access...); err != nil {
				serveError(w, r, err)
				return
			}
		}
		if !a.allowUser(w, r) {
			return
		}
		h(w, r)
	}
}

// allowed asks the authorizer a question while serving.
func (a *API) allowed(r *http.Request, access auth.Access) bool {
	return a.opts.Authorizer == nil || a.opts.Authorizer.Allowed(r, access)
}

// writeGuard refuses writes in read-only mode.
func (a *API) writeGuard(h repoHandler) repoHandler {
	return func(w http.ResponseWriter, r *http.Request, repo *storage.Repository) error {
		if a.opts.ReadOnly {
			return errcode.Newf(errcode.Unsupported, "the registry is in read-only mode (storage.maintenance.readonly): pulls are served, pushes and deletes are not")
		}
		return h(w, r, repo)
	}
}

// deleteGuard refuses deletes unless enabled, and in read-only mode.
func (a *API) deleteGuard(h repoHandler) repoHandler {
	return a.writeGuard(func(w http.ResponseWriter, r *http.Request, repo *storage.Repository) error {
		if !a.opts.DeleteEnabled {
			return errcode.Newf(errcode.Unsupported, "deletes are disabled on this registry (storage.delete.enabled is false)")
		}
		return h(w, r, repo)
	})
}

// serveError renders err and records it for the access log. A storage
// fault anywhere in err's chain (full, throttled, unreachable) is answered
// as such, 503 UNAVAILABLE, whatever code it was given on the way up.
func serveError(w http.ResponseWriter, r *http.Request, err error) {
	err = storage.Unavailable(err)
	for _, rec := range httprec.Find(w) {
		rec.Err = err
	}
	errcode.ServeJSON(w, err)
}

func (a *API) base(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Registry-Version", a.opts.Version)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", "2")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write([]byte("{}"))
	}
}

// location turns a path into what goes in a Location header.
func (a *API) location(r *http.Request, p string) string {
	if a.opts.RelativeURLs {
		return p
	}
	if a.host != nil {
		return strings.TrimSuffix(a.host.String(), "/") + p
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if fp := r.Header.Get("X-Forwarded-Proto"); fp == "http" || fp == "https" {
		scheme = fp
	}
	host := r.Host
	if fh := r.Header.Get("X-Forwarded-Host"); validHost(fh) {
		host = fh
	}
	if !validHost(host) {
		// An HTTP/1.0 request without Host, or a Host that would make
		// the URL name another authority ("a@b", "a?"): a relative
		// Location is still correct.
		return p
	}
	return scheme + "://" + host + p
}

// validHost reports whether h is a host[:port] a URL can be built on:
// a name or IPv4 address, or a bracketed IPv6 one, without userinfo,
// path, query or anything else that would change what the URL means.
func validHost(h string) bool {
	if h == "" || len(h) > 261 {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte(".-_:[]", c) >= 0) {
			return false
		}
	}
	return true
}
