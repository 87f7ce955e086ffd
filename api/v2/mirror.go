package v2

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"github.com/gorilla/mux"

	"github.com/registryd/registryd/auth"
	"github.com/registryd/registryd/errcode"
	"github.com/registryd/registryd/internal/httprec"
	"github.com/registryd/registryd/notifications"
	"github.com/registryd/registryd/proxy"
	"github.com/registryd/registryd/storage"
)

// The pull-through cache (package proxy) decides which repositories are
// caches of upstream registries. For those, manifests, blobs and tags come
// through it: from the cache, or from the upstream while it fills the
// cache. Everything else about the answer (headers, ranges, errors,
// events) is the API's, as for a hosted repository. Pushes and deletes in
// a cached repository answer 405 UNSUPPORTED, as distribution's proxy does.

type mirrorKey struct{}

// mirrorOf is the cached repository a request is for, or nil.
func mirrorOf(r *http.Request) *proxy.Repo {
	mr, _ := r.Context().Value(mirrorKey{}).(*proxy.Repo)
	return mr
}

// routeMirror asks the mirror whether name is a cached repository; if so
// the request goes on with the cache repository and, for a write, is
// refused.
func (a *API) routeMirror(w http.ResponseWriter, r *http.Request, name string, repo *storage.Repository, actions []string) (*http.Request, *storage.Repository, error) {
	mr, err := a.opts.Mirror.Route(r, name)
	if err != nil || mr == nil {
		return r, repo, err
	}
	if ns := mr.Namespace(); ns != "" {
		// distribution-spec: a registry that resolved ?ns= says so.
		w.Header().Set("OCI-Namespace", ns)
	}
	if slices.Contains(actions, auth.ActionPush) || slices.Contains(actions, auth.ActionDelete) {
		return r, repo, errcode.Newf(errcode.Unsupported, "%s is a pull-through cache of %s: pushes and deletes are not accepted", name, mr.Upstream())
	}
	return r.WithContext(context.WithValue(r.Context(), mirrorKey{}, mr)), mr.Local(), nil
}

// mirrorTags serves tags/list of a cached repository: the upstream's
// list (the cached tags when it fails), under the name the client asked
// for.
func (a *API) mirrorTags(w http.ResponseWriter, r *http.Request, mr *proxy.Repo, last string, n int) error {
	tags, more, err := mr.Tags(r.Context(), w.Header(), last, n)
	if err != nil {
		return err
	}
	name := mux.Vars(r)["name"]
	if more && len(tags) > 0 {
		q := url.Values{}
		q.Set("last", tags[len(tags)-1])
		if n >= 0 {
			q.Set("n", strconv.Itoa(n))
		}
		if ns := mr.Namespace(); ns != "" {
			q.Set("ns", ns)
		}
		w.Header().Set("Link", "</v2/"+name+"/tags/list?"+q.Encode()+`>; rel="next"`)
	}
	return writeBody(w, "application/json", appendTagList(nil, name, tags))
}

// sendMirrorBlob streams a blob the cache is still fetching. Should the
// fetch fail (the upstream breaks off for good, or the bytes do not match
// the digest) the connection is broken short of Content-Length, so that
// the client rejects what it got instead of taking it for the blob.
func (a *API) sendMirrorBlob(w http.ResponseWriter, r *http.Request, repo *storage.Repository, mb *proxy.Blob, desc storage.Descriptor, status int, start, length int64) error {
	rc, err := mb.Open(r.Context(), start, length)
	if err != nil {
		w.Header().Del("Content-Length")
		w.Header().Del("Content-Range")
		return err
	}
	defer rc.Close()
	w.WriteHeader(status)
	if err := sendBlob(w, r, rc, length); err != nil {
		for _, rec := range httprec.Find(w) {
			rec.Err = err
		}
		panic(http.ErrAbortHandler)
	}
	if start == 0 {
		a.notify(w, r, notifications.ActionPull, a.blobTarget(r, repo, desc))
	}
	return nil
}
