package v2

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"github.com/gorilla/mux"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/registryd/registryd/auth"
	"github.com/registryd/registryd/errcode"
	"github.com/registryd/registryd/notifications"
	"github.com/registryd/registryd/storage"
)

func (a *API) getManifest(w http.ResponseWriter, r *http.Request, repo *storage.Repository) error {
	ref := mux.Vars(r)["reference"]
	var m *storage.Manifest
	var err error
	if mr := mirrorOf(r); mr != nil {
		m, err = mr.Manifest(r.Context(), w.Header(), ref, r.Method == http.MethodHead)
	} else {
		m, err = repo.GetManifest(r.Context(), ref)
	}
	if err != nil {
		return err
	}
	// A pull in memory only (storage/times.go); HEAD counts, as a client
	// holding the image asks only that before using it.
	repo.RecordPull(m.Digest)
	h := w.Header()
	h.Set("Content-Type", m.MediaType)
	h.Set("Docker-Content-Digest", m.Digest.String())
	h.Set("Content-Length", strconv.Itoa(len(m.Content)))
	h.Set("ETag", `"`+m.Digest.String()+`"`)
	if inm := r.Header.Get("If-None-Match"); inm != "" && (inm == `"`+m.Digest.String()+`"` || inm == m.Digest.String()) {
		h.Del("Content-Length")
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(m.Content)
		tag := ""
		if !storage.IsDigest(ref) {
			tag = ref
		}
		a.notify(w, r, notifications.ActionPull, a.manifestTarget(r, repo, m, tag))
	}
	return nil
}

func (a *API) putManifest(w http.ResponseWriter, r *http.Request, repo *storage.Repository) error {
	ref := mux.Vars(r)["reference"]
	limit := a.reg.MaxManifestBytes()
	// Refuse an oversized manifest from its Content-Length before reading
	// it, and never read more than the limit of a body without one.
	if r.ContentLength > limit {
		return errcode.Newf(errcode.SizeInvalid, "manifest of %d bytes is larger than the limit of %d bytes", r.ContentLength, limit).WithStatus(http.StatusRequestEntityTooLarge)
	}
	body, err := io.ReadAll(io.LimitReader(requestBody(r), limit+1))
	if err != nil {
		return errcode.Newf(errcode.ManifestInvalid, "reading the manifest failed").Wrap(err)
	}
	if int64(len(body)) > limit {
		return errcode.Newf(errcode.SizeInvalid, "manifest is larger than the limit of %d bytes", limit).WithStatus(http.StatusRequestEntityTooLarge)
	}
	tags := r.URL.Query()["tag"]
	m, err := repo.PutManifest(r.Context(), ref, r.Header.Get("Content-Type"), body, tags)
	if err != nil {
		return err
	}
	h := w.Header()
	// OCI-Tag confirms each tag applied through ?tag= (distribution-spec
	// after 1.1); a client that sees none falls back to a push per tag.
	for _, t := range tags {
		h.Add("OCI-Tag", t)
	}
	h.Set("Location", a.location(r, "/v2/"+repo.Name()+"/manifests/"+m.Digest.String()))
	h.Set("Docker-Content-Digest", m.Digest.String())
	if m.Subject != "" {
		h.Set("OCI-Subject", m.Subject.String())
	}
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
	// One event per tag applied (the reference if it is a tag, and each
	// ?tag=); one without a tag for a push by digest alone.
	var applied []string
	if !storage.IsDigest(ref) {
		applied = append(applied, ref)
	}
	for _, t := range tags {
		if t != ref {
			applied = append(applied, t)
		}
	}
	if len(applied) == 0 {
		applied = []string{""}
	}
	for _, t := range applied {
		a.notify(w, r, notifications.ActionPush, a.manifestTarget(r, repo, m, t))
	}
	return nil
}

func (a *API) deleteManifest(w http.ResponseWriter, r *http.Request, repo *storage.Repository) error {
	ref := mux.Vars(r)["reference"]
	target := notifications.Target{Repository: repo.Name()}
	var err error
	if storage.IsDigest(ref) {
		d, perr := storage.ParseDigest(ref)
		if perr != nil {
			return perr
		}
		target.Digest = d.String()
		err = repo.DeleteManifest(r.Context(), d)
	} else {
		target.Tag = ref
		if a.opts.Notifier.Enabled() {
			// The event names what the tag pointed at, when it can.
			if m, gerr := repo.GetManifest(r.Context(), ref); gerr == nil {
				target.Digest, target.MediaType = m.Digest.String(), m.MediaType
			}
		}
		err = repo.DeleteTag(r.Context(), ref)
	}
	if err != nil {
		return err
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
	a.notify(w, r, notifications.ActionDelete, target)
	return nil
}

func (a *API) referrers(w http.ResponseWriter, r *http.Request, repo *storage.Repository) error {
	d, err := storage.ParseDigest(mux.Vars(r)["digest"])
	if err != nil {
		return err
	}
	at := r.URL.Query().Get("artifactType")
	descs, err := repo.Referrers(r.Context(), d, at)
	if err != nil {
		return err
	}
	idx := ocispec.Index{
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: descs,
	}
	idx.SchemaVersion = 2
	body, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", ocispec.MediaTypeImageIndex)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	if at != "" {
		h.Set("OCI-Filters-Applied", "artifactType")
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
	return nil
}

// pageSize reads the n parameter: -1 when absent.
func pageSize(r *http.Request) (int, error) {
	s := r.URL.Query().Get("n")
	if s == "" {
		return -1, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, errcode.Newf(errcode.PaginationNumberInvalid, "n must be a non-negative integer, got %q", clip(s))
	}
	return n, nil
}

func (a *API) tagsList(w http.ResponseWriter, r *http.Request, repo *storage.Repository) error {
	n, err := pageSize(r)
	if err != nil {
		return err
	}
	last := r.URL.Query().Get("last")
	if mr := mirrorOf(r); mr != nil {
		return a.mirrorTags(w, r, mr, last, n)
	}
	tags, more, err := repo.Tags(r.Context(), last, n)
	if err != nil {
		return err
	}
	if more && len(tags) > 0 {
		setNextLink(w, "/v2/"+repo.Name()+"/tags/list", tags[len(tags)-1], n)
	}
	return writeBody(w, "application/json", appendTagList(nil, repo.Name(), tags))
}

// appendTagList appends tags/list's body: what json.Marshal makes of
// {"name": name, "tags": tags}, byte for byte, built by hand because
// encoding/json took half of a whole list's time (10,000 tags).
func appendTagList(b []byte, name string, tags []string) []byte {
	b = append(b, `{"name":`...)
	b = appendJSONString(b, name)
	b = append(b, `,"tags":`...)
	return append(appendJSONStrings(b, tags), '}')
}

// appendCatalog appends _catalog's body, as appendTagList.
func appendCatalog(b []byte, repos []string) []byte {
	b = append(b, `{"repositories":`...)
	return append(appendJSONStrings(b, repos), '}')
}

// appendJSONStrings appends ss as a JSON array ("null" for nil, as
// encoding/json).
func appendJSONStrings(b []byte, ss []string) []byte {
	if ss == nil {
		return append(b, "null"...)
	}
	n := 2
	for _, s := range ss {
		n += len(s) + 3
	}
	b = slices.Grow(b, n)
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, s)
	}
	return append(b, ']')
}

// jsonPlain holds the bytes encoding/json copies as they are: printable
// ASCII but the quote, the backslash and its HTML escapes (<, >, &).
var jsonPlain = func() (t [256]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// appendJSONString appends s quoted as encoding/json quotes it. Names and
// tags never need escaping (their grammars allow none of the characters
// it escapes), so they are copied; anything else goes to encoding/json.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if !jsonPlain[s[i]] {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

func (a *API) catalog(w http.ResponseWriter, r *http.Request) {
	n, err := pageSize(r)
	if err != nil {
		serveError(w, r, err)
		return
	}
	if n < 0 || n > a.opts.CatalogMaxEntries {
		// Larger pages are cut to catalog.maxentries; the Link header
		// leads on, so a client following it still sees everything.
		n = a.opts.CatalogMaxEntries
	}
	last := r.URL.Query().Get("last")
	var keep func(string) bool
	if a.opts.Authorizer != nil {
		keep = func(name string) bool { return a.allowed(r, auth.Repository(name, auth.ActionPull)) }
	}
	repos, more, err := a.reg.Catalog(r.Context(), last, n, keep)
	if err != nil {
		serveError(w, r, err)
		return
	}
	if more && len(repos) > 0 {
		setNextLink(w, "/v2/_catalog", repos[len(repos)-1], n)
	}
	_ = writeBody(w, "application/json", appendCatalog(nil, repos))
}

func setNextLink(w http.ResponseWriter, p, last string, n int) {
	q := url.Values{}
	q.Set("last", last)
	if n >= 0 {
		q.Set("n", strconv.Itoa(n))
	}
	w.Header().Set("Link", "<"+p+"?"+q.Encode()+`>; rel="next"`)
}

// writeBody sends b as a 200 response of type ct.
func writeBody(w http.ResponseWriter, ct string, b []byte) error {
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
	return nil
}
