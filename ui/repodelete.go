package ui

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/registryd/registryd/api/admin"
	"github.com/registryd/registryd/notifications"
	"github.com/registryd/registryd/storage"
)

// repoDeleteWait is how long the POST waits for a repository delete to
// finish before answering; the deletion goes on in the background (and
// survives a restart: storage.DeleteRepository).
const repoDeleteWait = 5 * time.Second

type repoDeletePage struct {
	Repo    string
	Crumbs  []crumb
	Tags    int
	More    bool
	Action  string
	Cancel  string
	Refusal string
	Wrong   bool
}

func (p *repoDeletePage) title() string { return "Delete " + p.Repo }
func (p *repoDeletePage) nav() string   { return "catalog" }

// deleteRepository deletes a whole repository, its name typed to confirm.
func (u *UI) deleteRepository(w http.ResponseWriter, r *http.Request, v *viewer, repo *storage.Repository) {
	name := repo.Name()
	refusal := v.deleteRefusal(name)
	p := &repoDeletePage{Repo: name, Crumbs: crumbsOf(name), Refusal: refusal,
		Action: u.base + "r/" + name + "/-/delete", Cancel: u.base + "r/" + name}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		ctx, cancel := pageCtx(r)
		defer cancel()
		tags, more, err := repo.Tags(ctx, "", 1000)
		if err != nil {
			u.storageError(w, r, v, err)
			return
		}
		p.Tags, p.More = len(tags), more
		status := http.StatusOK
		if refusal != "" {
			status = http.StatusForbidden
		}
		u.render(w, r, v, status, "repodelete", p)
	case http.MethodPost:
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		if err := r.ParseForm(); err != nil {
			u.errorPage(w, r, v, http.StatusBadRequest, "The form could not be read.")
			return
		}
		if refusal != "" {
			u.errorPage(w, r, v, http.StatusForbidden, refusal)
			return
		}
		if r.PostForm.Get("confirm") != name {
			p.Wrong = true
			u.render(w, r, v, http.StatusBadRequest, "repodelete", p)
			return
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), repoDeleteWait)
		defer cancel()
		res, err := u.svc.DeleteRepository(ctx, name, admin.EventSource{
			Request: notifications.RequestOf(r, r.Header.Get("X-Request-Id")), Actor: v.user})
		done := "repository"
		switch {
		case err == nil:
		case errors.Is(err, context.DeadlineExceeded):
			done = "repository-started"
		case storage.ErrNotFound(err):
			u.notFound(w, r, v)
			return
		default:
			u.log.WithError(err).WithField("repository", name).Error("web UI: deleting a repository")
			u.errorPage(w, r, v, http.StatusInternalServerError, "The repository could not be deleted; the log says why.")
			return
		}
		u.log.WithFields(logrus.Fields{"repository": name, "tags": res.Tags, "manifests": res.Manifests, "user": v.user}).Info("web UI: deleted a repository")
		http.Redirect(w, r, u.base+"?"+url.Values{"done": {done}, "name": {name}}.Encode(), http.StatusSeeOther)
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		u.errorPage(w, r, v, http.StatusMethodNotAllowed, "Use the delete form.")
	}
}
