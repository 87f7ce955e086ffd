package ui

import (
	"context"
	"net/http"
	"net/url"
	"sort"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/registryd/registryd/api/admin"
	"github.com/registryd/registryd/auth"
	"github.com/registryd/registryd/errcode"
)

// adminAccess is the registry-wide right to run maintenance and to see
// the whole registry's storage (the admin API's "admin" action).
var adminAccess = auth.Admin

// runWait is how long a POST that starts a run waits for its report
// before showing the page (the run goes on; the page shows it running).
const runWait = 5 * time.Second

type maintenancePage struct {
	Jobs      []*jobView
	ReadOnly  bool
	Report    *admin.Run // the run asked for with ?run=
	ReportOf  string
	Deletions []admin.Decision
	Kept      int
	Freed     int64
}

func (p *maintenancePage) title() string { return "Maintenance" }
func (p *maintenancePage) nav() string   { return "maintenance" }

type jobView struct {
	Kind    string // "gc", "retention"
	Name    string
	Absent  bool   // the server has no such service
	Offline string // why it cannot run here, if so
	Status  admin.Maintenance
	Err     string
}

// maintenance shows garbage collection and retention: status, last runs,
// and (POST) a run or a dry run started now.
func (u *UI) maintenanceRoute(w http.ResponseWriter, r *http.Request, v *viewer, rest string) {
	if v.mustLogin {
		u.redirectLogin(w, r)
		return
	}
	if !v.can(adminAccess) {
		u.errorPage(w, r, v, http.StatusForbidden, "Maintenance is for users with the admin right (access rules: actions [admin] on \"**\").")
		return
	}
	switch rest {
	case "":
		u.get(w, r, v, u.maintenance)
	case "gc", "retention":
		u.post(w, r, v, func(w http.ResponseWriter, r *http.Request, v *viewer) { u.startRun(w, r, v, rest) })
	default:
		u.notFound(w, r, v)
	}
}

func (u *UI) maintenance(w http.ResponseWriter, r *http.Request, v *viewer) {
	ctx, cancel := pageCtx(r)
	defer cancel()
	p := &maintenancePage{ReadOnly: u.opts.ReadOnly}
	runID, runKind := r.URL.Query().Get("run"), r.URL.Query().Get("kind")
	for _, kind := range []string{"retention", "gc"} {
		j := &jobView{Kind: kind, Name: map[string]string{"gc": "Garbage collection", "retention": "Retention"}[kind]}
		feats := u.svc.Info("", nil).Features
		if kind == admin.KindGC && !feats.GC || kind == admin.KindRetention && !feats.Retention {
			j.Absent = true
			if kind == "gc" {
				j.Offline = "This server collects garbage offline: run registryd garbage-collect (with the registry read-only or stopped) to reclaim the space of deleted images."
			}
			p.Jobs = append(p.Jobs, j)
			continue
		}
		st, err := u.svc.Maintenance(ctx, kind)
		if err != nil {
			j.Err = err.Error()
		}
		j.Status = st
		for i := range st.Runs {
			if kind == runKind && st.Runs[i].ID == runID {
				run := st.Runs[i]
				p.Report, p.ReportOf = &run, j.Name
			}
		}
		p.Jobs = append(p.Jobs, j)
	}
	if p.Report != nil {
		p.Freed = p.Report.BytesFreed
		for _, d := range p.Report.Decisions {
			if d.Delete {
				p.Deletions = append(p.Deletions, d)
			} else {
				p.Kept++
			}
		}
		sort.SliceStable(p.Deletions, func(i, j int) bool {
			if p.Deletions[i].Repository != p.Deletions[j].Repository {
				return p.Deletions[i].Repository < p.Deletions[j].Repository
			}
			return p.Deletions[i].Tag < p.Deletions[j].Tag
		})
	}
	u.render(w, r, v, http.StatusOK, "maintenance", p)
}

// startRun starts a run (dryrun=1 for a preview), waits a little for its
// report and shows it.
func (u *UI) startRun(w http.ResponseWriter, r *http.Request, v *viewer, kind string) {
	dry := r.PostForm.Get("dryrun") == "1"
	// The run is waited for a little: the page then shows its report, or
	// the run still going.
	ctx, cancel := context.WithTimeout(r.Context(), runWait)
	defer cancel()
	id, _, err := u.svc.StartRun(ctx, kind, dry, true)
	if id == "" {
		status := http.StatusConflict
		if e := errcode.From(err); e != nil && e.Code == errcode.Unsupported {
			status = http.StatusForbidden
		}
		msg := "The run did not start"
		if err != nil {
			msg += ": " + err.Error()
		}
		u.errorPage(w, r, v, status, msg+".")
		return
	}
	u.log.WithFields(logrus.Fields{"kind": kind, "run": id, "dry_run": dry, "user": v.user}).Info("web UI: started a run")
	http.Redirect(w, r, u.base+"maintenance?"+url.Values{"kind": {kind}, "run": {id}}.Encode()+"#report", http.StatusSeeOther)
}
