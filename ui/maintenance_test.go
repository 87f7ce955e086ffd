package ui

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/registryd/registryd/api/admin"
	"github.com/registryd/registryd/auth"
)

// fakeMaintainer records the runs asked of it.
type fakeMaintainer struct {
	mu     sync.Mutex
	starts []bool // dryRun of each Start
	runs   []admin.Run
}

func (m *fakeMaintainer) Status(ctx context.Context) (admin.Maintenance, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return admin.Maintenance{Enabled: true, Runs: append([]admin.Run(nil), m.runs...)}, nil
}

func (m *fakeMaintainer) Start(ctx context.Context, dryRun bool) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.starts = append(m.starts, dryRun)
	id := "run-" + string(rune('a'+len(m.starts)))
	now := time.Now()
	m.runs = append([]admin.Run{{ID: id, Kind: "retention", Started: now, Finished: &now, DryRun: dryRun, Result: "ok",
		Deleted: map[string]int{"tags": 1}, BytesFreed: 4096,
		Decisions: []admin.Decision{
			{Repository: "team/app", Tag: "old", Delete: true, Rule: "mostrecentlypushedcount", Reason: "6th most recently pushed"},
			{Repository: "team/app", Tag: "latest", Delete: false, Rule: "patterns"},
		}}}, m.runs...)
	return id, nil
}

func (m *fakeMaintainer) Wait(ctx context.Context, id string) (admin.Run, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range m.runs {
		if r.ID == id {
			return r, nil
		}
	}
	return admin.Run{}, context.Canceled
}

func TestMaintenancePage(t *testing.T) {
	f := newFixture(t, Options{})
	ret := &fakeMaintainer{}
	f.ui.SetAdmin(admin.NewService(f.reg, admin.Options{Retention: ret}))
	body := f.get("/ui/maintenance").Body.String()
	for _, want := range []string{"Retention", "Garbage collection", "registryd garbage-collect", "Preview (dry run)", `href="/ui/maintenance"`} {
		if !strings.Contains(body, want) {
			t.Errorf("maintenance page lacks %q", want)
		}
	}
	if len(ret.starts) != 0 {
		t.Fatal("GET started a run")
	}
	if w := f.do(http.MethodPost, "/ui/maintenance/retention", url.Values{"dryrun": {"1"}}, map[string]string{"Sec-Fetch-Site": "cross-site"}); w.Code != http.StatusForbidden || len(ret.starts) != 0 {
		t.Fatalf("cross-site POST: %d, runs %v", w.Code, ret.starts)
	}
	w := f.do(http.MethodPost, "/ui/maintenance/retention", url.Values{"dryrun": {"1"}}, sameOrigin)
	if w.Code != http.StatusSeeOther || len(ret.starts) != 1 || !ret.starts[0] {
		t.Fatalf("dry run: %d, runs %v", w.Code, ret.starts)
	}
	loc, _, _ := strings.Cut(w.Header().Get("Location"), "#") // a browser keeps the fragment to itself
	report := f.get(loc).Body.String()
	for _, want := range []string{"preview (dry run)", "would delete 1 tag and free 4.0 KiB", "mostrecentlypushedcount", ">old<", "1 tag kept"} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if w := f.do(http.MethodPost, "/ui/maintenance/retention", url.Values{}, sameOrigin); w.Code != http.StatusSeeOther || len(ret.starts) != 2 || ret.starts[1] {
		t.Fatalf("run: %d, runs %v", w.Code, ret.starts)
	}
}

func TestMaintenanceNeedsAdmin(t *testing.T) {
	access := &auth.AccessConfig{Rules: []auth.Rule{{Repositories: []string{"**"}, Users: []string{"bob"}, Actions: []string{"*"}}}}
	f := newAuthFixture(t, map[string]string{"bob": "b"}, access, Options{})
	ret := &fakeMaintainer{}
	f.ui.SetAdmin(admin.NewService(f.reg, admin.Options{Retention: ret}))
	bob := f.login("bob", "b")
	if w := f.get("/ui/maintenance", bob); w.Code != http.StatusForbidden {
		t.Errorf("bob (no admin right) opens maintenance: %d", w.Code)
	}
	if strings.Contains(f.get("/ui/", bob).Body.String(), "/ui/maintenance") {
		t.Error("bob is offered the maintenance page")
	}
	if w := f.do(http.MethodPost, "/ui/maintenance/retention", url.Values{"dryrun": {"1"}}, sameOrigin, bob); w.Code != http.StatusForbidden || len(ret.starts) != 0 {
		t.Errorf("bob starts a run: %d", w.Code)
	}
}
