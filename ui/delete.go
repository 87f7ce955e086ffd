package ui

import (
	"net/http"
	"net/url"
	"sort"
	"strconv"

	"github.com/opencontainers/go-digest"
	"github.com/sirupsen/logrus"

	"github.com/registryd/registryd/notifications"
	"github.com/registryd/registryd/storage"
)

// maxTagsPerDelete bounds one bulk delete.
const maxTagsPerDelete = 1000

// confirmPage asks before a delete: GET shows it (and changes nothing),
// its form POSTs to the same URL.
type confirmPage struct {
	Repo   string
	Crumbs []crumb
	What   string // "tags", "manifest"
	Action string // the form's URL
	Cancel string
	Tags   []confirmTag
	Digest string
	// For a manifest: the tags that go with it, and its referrers.
	WithTags   []string
	Referrers  []refView
	Children   int
	Frees      int64 // what the delete, then a collection, frees
	KnowsFrees bool
	Refusal    string
}

type confirmTag struct {
	Name     string
	Digest   string
	Siblings []string // other tags on the same digest, which stay
	Missing  bool
}

func (p *confirmPage) title() string { return "Delete from " + p.Repo }
func (p *confirmPage) nav() string   { return "catalog" }

// deleteTags deletes the tags named in the form, each alone: the
// manifest they point at and any other tag on it stay.
func (u *UI) deleteTags(w http.ResponseWriter, r *http.Request, v *viewer, repo *storage.Repository) {
	name := repo.Name()
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
		if err := r.ParseForm(); err != nil {
			u.errorPage(w, r, v, http.StatusBadRequest, "The form could not be read.")
			return
		}
	}
	var tags []string
	seen := map[string]bool{}
	src := r.URL.Query()["tag"]
	if r.Method == http.MethodPost {
		src = r.PostForm["tag"]
	}
	for _, t := range src {
		if storage.ValidTag(t) && !seen[t] {
			seen[t] = true
			tags = append(tags, t)
		}
	}
	if len(tags) == 0 {
		u.errorPage(w, r, v, http.StatusBadRequest, "No tag was selected.")
		return
	}
	if len(tags) > maxTagsPerDelete {
		u.errorPage(w, r, v, http.StatusBadRequest, "Too many tags at once: at most "+strconv.Itoa(maxTagsPerDelete)+".")
		return
	}
	refusal := v.deleteRefusal(name)
	action := u.base + "r/" + name + "/-/tags/delete"
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		ctx, cancel := pageCtx(r)
		defer cancel()
		p := &confirmPage{Repo: name, Crumbs: crumbsOf(name), What: "tags", Action: action, Cancel: u.base + "r/" + name, Refusal: refusal}
		all, err := repo.TagsAndTargets(ctx)
		if err != nil {
			u.storageError(w, r, v, err)
			return
		}
		byDigest := map[digest.Digest][]string{}
		for t, d := range all {
			byDigest[d] = append(byDigest[d], t)
		}
		for _, t := range tags {
			ct := confirmTag{Name: t}
			if d, ok := all[t]; ok {
				ct.Digest = d.String()
				for _, s := range byDigest[d] {
					if !seen[s] {
						ct.Siblings = append(ct.Siblings, s)
					}
				}
				sort.Strings(ct.Siblings)
			} else {
				ct.Missing = true
			}
			p.Tags = append(p.Tags, ct)
		}
		status := http.StatusOK
		if refusal != "" {
			status = http.StatusForbidden
		}
		u.render(w, r, v, status, "confirm", p)
	case http.MethodPost:
		if refusal != "" {
			u.errorPage(w, r, v, http.StatusForbidden, refusal)
			return
		}
		ctx := r.Context()
		deleted := 0
		var failed []string
		for _, t := range tags {
			target := notifications.Target{Repository: name, Tag: t}
			if u.opts.Notifier.Enabled() {
				if m, err := repo.GetManifest(ctx, t); err == nil {
					target.Digest, target.MediaType = m.Digest.String(), m.MediaType
				}
			}
			if err := repo.DeleteTag(ctx, t); err != nil {
				if storage.ErrNotFound(err) {
					continue // gone already: what was asked holds
				}
				u.log.WithError(err).WithFields(logrus.Fields{"repository": name, "tag": t}).Error("web UI: deleting a tag")
				failed = append(failed, t)
				continue
			}
			deleted++
			u.notify(r, v, target)
		}
		u.log.WithFields(logrus.Fields{"repository": name, "tags": deleted, "user": v.user}).Info("web UI: deleted tags")
		if len(failed) > 0 {
			u.errorPage(w, r, v, http.StatusInternalServerError, "Some tags could not be deleted (the log says why): "+joinClip(failed))
			return
		}
		http.Redirect(w, r, u.base+"r/"+name+"?"+url.Values{"done": {"tags"}, "n": {strconv.Itoa(deleted)}}.Encode(), http.StatusSeeOther)
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		u.errorPage(w, r, v, http.StatusMethodNotAllowed, "Use the delete form.")
	}
}

// deleteManifest deletes a manifest by digest, with every tag on it; the
// confirmation lists those tags and the referrers that lose their subject.
func (u *UI) deleteManifest(w http.ResponseWriter, r *http.Request, v *viewer, repo *storage.Repository, d digest.Digest) {
	name := repo.Name()
	refusal := v.deleteRefusal(name)
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		ctx, cancel := pageCtx(r)
		defer cancel()
		m, err := repo.GetManifest(ctx, d.String())
		if err != nil {
			u.storageError(w, r, v, err)
			return
		}
		p := &confirmPage{Repo: name, Crumbs: crumbsOf(name), What: "manifest", Digest: d.String(),
			Action: u.base + "r/" + name + "/-/m/" + d.String() + "/delete",
			Cancel: u.base + "r/" + name + "/-/m/" + d.String(), Refusal: refusal}
		// What goes with it, from the size index (the admin API's
		// .../impact): tags, referrers, and the bytes a collection frees.
		imp, err := u.svc.Impact(ctx, name, d.String())
		if err != nil {
			u.storageError(w, r, v, err)
			return
		}
		p.WithTags = append(p.WithTags, imp.Tags...)
		sort.Strings(p.WithTags)
		for _, rd := range imp.Referrers {
			p.Referrers = append(p.Referrers, refView{
				Digest: rd.Digest, ArtifactType: rd.ArtifactType, Size: rd.Size,
				Kind: kindOf(rd.MediaType, rd.ArtifactType, rd.ArtifactType),
				URL:  u.base + "r/" + name + "/-/m/" + rd.Digest,
			})
		}
		p.Frees, p.KnowsFrees = imp.Exclusive, true
		if pm, err := parseManifest(m.Content, m.MediaType); err == nil {
			p.Children = len(pm.Manifests)
		}
		status := http.StatusOK
		if refusal != "" {
			status = http.StatusForbidden
		}
		u.render(w, r, v, status, "confirm", p)
	case http.MethodPost:
		if refusal != "" {
			u.errorPage(w, r, v, http.StatusForbidden, refusal)
			return
		}
		ctx := r.Context()
		target := notifications.Target{Repository: name, Digest: d.String()}
		if err := repo.DeleteManifest(ctx, d); err != nil {
			if storage.ErrNotFound(err) {
				u.notFound(w, r, v)
				return
			}
			u.log.WithError(err).WithFields(logrus.Fields{"repository": name, "digest": d}).Error("web UI: deleting a manifest")
			u.errorPage(w, r, v, http.StatusInternalServerError, "The manifest could not be deleted; the log says why.")
			return
		}
		u.log.WithFields(logrus.Fields{"repository": name, "digest": d, "user": v.user}).Info("web UI: deleted a manifest")
		u.notify(r, v, target)
		http.Redirect(w, r, u.base+"r/"+name+"?"+url.Values{"done": {"manifest"}, "digest": {d.String()}}.Encode(), http.StatusSeeOther)
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		u.errorPage(w, r, v, http.StatusMethodNotAllowed, "Use the delete form.")
	}
}

// notify sends the delete event the API would have sent.
func (u *UI) notify(r *http.Request, v *viewer, target notifications.Target) {
	if !u.opts.Notifier.Enabled() {
		return
	}
	ev := notifications.Event{
		Action: notifications.ActionDelete,
		Target: target,
		Request: notifications.Request{
			ID: r.Header.Get("X-Request-Id"), Addr: r.RemoteAddr, Host: r.Host, Method: r.Method, UserAgent: r.UserAgent(),
		},
	}
	ev.Actor.Name = v.user
	u.opts.Notifier.Notify(ev)
}

func joinClip(s []string) string {
	out := ""
	for i, t := range s {
		if i == 10 {
			return out + ", …"
		}
		if i > 0 {
			out += ", "
		}
		out += t
	}
	return out
}
