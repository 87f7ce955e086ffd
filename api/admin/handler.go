package admin

import (
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/registryd/registryd/auth"
	"github.com/registryd/registryd/errcode"
	"github.com/registryd/registryd/internal/httprec"
	"github.com/registryd/registryd/notifications"
)

// HandlerOptions configure the HTTP handler.
type HandlerOptions struct {
	// Authorizer decides who may do what; nil lets everyone do
	// everything (as the V2 API without auth).
	Authorizer auth.Authorizer
	// RequestIDHeader names the header holding the request's id, for
	// events.
	RequestIDHeader string
	// Limiter limits requests by authenticated user, as the V2 API's
	// (http.ratelimit.peruser); nil limits nothing.
	Limiter UserLimiter
}

// UserLimiter limits requests by user: it answers 429 itself and returns
// false for a request over the limit (v2.UserLimiter).
type UserLimiter interface {
	AllowUser(w http.ResponseWriter, r *http.Request, user string) bool
}

// Handler serves the admin API (docs/admin-api.md) at Prefix and the
// discovery document at DiscoverPath. Mount it for both paths.
type Handler struct {
	svc  *Service
	opts HandlerOptions
}

// NewHandler returns the HTTP handler over svc.
func NewHandler(svc *Service, opts HandlerOptions) *Handler {
	if opts.RequestIDHeader == "" {
		opts.RequestIDHeader = "X-Request-Id"
	}
	return &Handler{svc: svc, opts: opts}
}

// impactPath is NAME/manifests/DIGEST/impact below repositories/.
var impactPath = regexp.MustCompile(`^(.+)/manifests/([^/]+)/impact$`)

// ServeHTTP routes by the path as sent (never cleaned; names are
// validated by the storage).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	p := r.URL.EscapedPath()
	if p == DiscoverPath {
		h.only(w, r, http.MethodGet, func() { h.discover(w, r) })
		return
	}
	if p == Prefix || p == Prefix+"/" {
		h.only(w, r, http.MethodGet, func() { h.info(w, r) })
		return
	}
	rest, ok := strings.CutPrefix(p, Prefix+"/")
	if !ok {
		h.fail(w, r, notFound(r))
		return
	}
	switch {
	case rest == "repositories":
		h.only(w, r, http.MethodGet, func() { h.repositories(w, r) })
	case strings.HasPrefix(rest, "repositories/"):
		h.repository(w, r, strings.TrimPrefix(rest, "repositories/"))
	case rest == "usage":
		h.only(w, r, http.MethodGet, func() { h.usage(w, r) })
	case rest == KindGC || rest == KindRetention:
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			h.maintenanceStatus(w, r, rest)
		case http.MethodPost:
			h.maintenanceStart(w, r, rest)
		default:
			h.fail(w, r, methodNotAllowed(r))
		}
	default:
		h.fail(w, r, notFound(r))
	}
}

// repository routes below repositories/: NAME (GET, DELETE), NAME/tags,
// NAME/manifests/DIGEST/impact. A name whose last component is "tags" is
// reached with its slashes encoded (%2F).
func (h *Handler) repository(w http.ResponseWriter, r *http.Request, rest string) {
	if m := impactPath.FindStringSubmatch(rest); m != nil && r.Method != http.MethodDelete {
		name, ok := unescapeName(m[1])
		if !ok {
			h.fail(w, r, errcode.New(errcode.NameInvalid))
			return
		}
		h.only(w, r, http.MethodGet, func() { h.impact(w, r, name, m[2]) })
		return
	}
	if raw, ok := strings.CutSuffix(rest, "/tags"); ok && r.Method != http.MethodDelete {
		name, ok := unescapeName(raw)
		if !ok {
			h.fail(w, r, errcode.New(errcode.NameInvalid))
			return
		}
		h.only(w, r, http.MethodGet, func() { h.tags(w, r, name) })
		return
	}
	name, ok := unescapeName(rest)
	if !ok {
		h.fail(w, r, errcode.New(errcode.NameInvalid))
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		h.oneRepository(w, r, name)
	case http.MethodDelete:
		h.deleteRepository(w, r, name)
	default:
		h.fail(w, r, methodNotAllowed(r))
	}
}

// unescapeName decodes %2F (a slash in a name sent encoded); any other
// escape has no place in a valid name and is left for validation to
// refuse.
func unescapeName(raw string) (string, bool) {
	if !strings.Contains(raw, "%") {
		return raw, true
	}
	s, err := url.PathUnescape(raw)
	if err != nil {
		return "", false
	}
	return s, true
}

// only runs f for GET (and HEAD) or the given method, 405 otherwise.
func (h *Handler) only(w http.ResponseWriter, r *http.Request, method string, f func()) {
	if r.Method == method || (method == http.MethodGet && r.Method == http.MethodHead) {
		f()
		return
	}
	h.fail(w, r, methodNotAllowed(r))
}

// authorize asks for access; on refusal it has answered.
func (h *Handler) authorize(w http.ResponseWriter, r *http.Request, access ...auth.Access) (*http.Request, bool) {
	if h.opts.Authorizer == nil {
		return r, true
	}
	r2, err := h.opts.Authorizer.Authorize(w, r, access...)
	if err != nil {
		h.fail(w, r, err)
		return nil, false
	}
	if h.opts.Limiter != nil {
		user, _ := auth.UserFromContext(r2.Context())
		if !h.opts.Limiter.AllowUser(w, r2, user) {
			return nil, false
		}
	}
	return r2, true
}

// may answers for the caller of r.
func (h *Handler) may(r *http.Request) May {
	if h.opts.Authorizer == nil {
		return nil
	}
	return func(a auth.Access) bool { return h.opts.Authorizer.Allowed(r, a) }
}

func (h *Handler) discover(w http.ResponseWriter, r *http.Request) {
	if _, ok := h.authorize(w, r); !ok {
		return
	}
	writeJSON(w, r, http.StatusOK, Discover())
}

func (h *Handler) info(w http.ResponseWriter, r *http.Request) {
	r, ok := h.authorize(w, r)
	if !ok {
		return
	}
	name, _ := auth.UserFromContext(r.Context())
	writeJSON(w, r, http.StatusOK, h.svc.Info(name, h.may(r)))
}

func (h *Handler) repositories(w http.ResponseWriter, r *http.Request) {
	r, ok := h.authorize(w, r, auth.Catalog)
	if !ok {
		return
	}
	q := r.URL.Query()
	n, err := pageParam(q)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	rq := RepositoryQuery{N: n, Last: q.Get("last"), Prefix: q.Get("prefix"), Q: q.Get("q")}
	list, more, err := h.svc.Repositories(r.Context(), rq, h.may(r))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if more && len(list.Repositories) > 0 {
		next := url.Values{"n": {strconv.Itoa(clampPage(n))}, "last": {list.Repositories[len(list.Repositories)-1].Name}}
		for _, k := range []string{"prefix", "q"} {
			if v := q.Get(k); v != "" {
				next.Set(k, v)
			}
		}
		setNext(w, Prefix+"/repositories", next)
	}
	writeJSON(w, r, http.StatusOK, list)
}

func (h *Handler) oneRepository(w http.ResponseWriter, r *http.Request, name string) {
	if r, ok := h.authorizeRepo(w, r, name, auth.ActionPull); ok {
		repo, err := h.svc.Repository(r.Context(), name)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		writeJSON(w, r, http.StatusOK, repo)
	}
}

// authorizeRepo validates the name first (an authorizer only ever sees
// valid names), then asks for the action on it.
func (h *Handler) authorizeRepo(w http.ResponseWriter, r *http.Request, name, action string) (*http.Request, bool) {
	if _, err := h.svc.reg.Repository(name); err != nil && errcode.Is(err, errcode.NameInvalid) {
		h.fail(w, r, err)
		return nil, false
	}
	return h.authorize(w, r, auth.Repository(name, action))
}

func (h *Handler) tags(w http.ResponseWriter, r *http.Request, name string) {
	r, ok := h.authorizeRepo(w, r, name, auth.ActionPull)
	if !ok {
		return
	}
	q := r.URL.Query()
	n, err := pageParam(q)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	tq := TagQuery{N: n, Last: q.Get("last"), Sort: q.Get("sort")}
	list, more, err := h.svc.Tags(r.Context(), name, tq)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if more && len(list.Tags) > 0 {
		next := url.Values{"n": {strconv.Itoa(clampPage(n))}, "last": {list.Tags[len(list.Tags)-1].Name}}
		if tq.Sort != "" {
			next.Set("sort", tq.Sort)
		}
		setNext(w, Prefix+"/repositories/"+name+"/tags", next)
	}
	writeJSON(w, r, http.StatusOK, list)
}

func (h *Handler) impact(w http.ResponseWriter, r *http.Request, name, ref string) {
	r, ok := h.authorizeRepo(w, r, name, auth.ActionPull)
	if !ok {
		return
	}
	imp, err := h.svc.Impact(r.Context(), name, ref)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, r, http.StatusOK, imp)
}

func (h *Handler) usage(w http.ResponseWriter, r *http.Request) {
	prefix := r.URL.Query().Get("prefix")
	access := []auth.Access{auth.Catalog}
	if prefix == "" {
		access = []auth.Access{auth.Admin}
	}
	r, ok := h.authorize(w, r, access...)
	if !ok {
		return
	}
	u, err := h.svc.Usage(r.Context(), prefix, h.may(r))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, r, http.StatusOK, u)
}

func (h *Handler) deleteRepository(w http.ResponseWriter, r *http.Request, name string) {
	r, ok := h.authorizeRepo(w, r, name, auth.ActionDelete)
	if !ok {
		return
	}
	src := EventSource{Request: notifications.RequestOf(r, w.Header().Get(h.opts.RequestIDHeader))}
	src.Actor, _ = auth.UserFromContext(r.Context())
	res, err := h.svc.DeleteRepository(r.Context(), name, src)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, r, http.StatusAccepted, res)
}

func (h *Handler) maintenanceStatus(w http.ResponseWriter, r *http.Request, kind string) {
	r, ok := h.authorize(w, r, auth.Admin)
	if !ok {
		return
	}
	st, err := h.svc.Maintenance(r.Context(), kind)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, r, http.StatusOK, st)
}

func (h *Handler) maintenanceStart(w http.ResponseWriter, r *http.Request, kind string) {
	r, ok := h.authorize(w, r, auth.Admin)
	if !ok {
		return
	}
	q := r.URL.Query()
	dryRun, err := boolParam(q, "dryrun")
	if err != nil {
		h.fail(w, r, err)
		return
	}
	wait, err := boolParam(q, "wait")
	if err != nil {
		h.fail(w, r, err)
		return
	}
	id, run, err := h.svc.StartRun(r.Context(), kind, dryRun, wait)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if run != nil {
		writeJSON(w, r, http.StatusOK, run)
		return
	}
	w.Header().Set("Location", Prefix+"/"+kind)
	writeJSON(w, r, http.StatusAccepted, map[string]string{"id": id})
}

// pageParam reads n: 0 when absent.
func pageParam(q url.Values) (int, error) {
	s := q.Get("n")
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		if len(s) > 40 {
			s = s[:40] + "..."
		}
		return 0, errcode.Newf(errcode.PaginationNumberInvalid, "n must be a non-negative integer, got %q", s)
	}
	return n, nil
}

func boolParam(q url.Values, name string) (bool, error) {
	s := q.Get(name)
	if s == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return false, badParam(name, s, "true or false")
	}
	return b, nil
}

func setNext(w http.ResponseWriter, p string, q url.Values) {
	w.Header().Set("Link", "<"+p+"?"+q.Encode()+`>; rel="next"`)
}

func writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		errcode.ServeJSON(w, errcode.New(errcode.Unknown).Wrap(err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(b)
	}
}

// fail renders err in the OCI error format and records it for the access
// log.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	for _, rec := range httprec.Find(w) {
		rec.Err = err
	}
	errcode.ServeJSON(w, err)
}

func notFound(r *http.Request) error {
	return errcode.Newf(errcode.Unsupported, "no such endpoint of the admin API: %s %s", r.Method, clip(r.URL.Path)).WithStatus(http.StatusNotFound)
}

func methodNotAllowed(r *http.Request) error {
	return errcode.Newf(errcode.Unsupported, "method %s is not supported on %s", r.Method, clip(r.URL.Path))
}

func clip(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}
