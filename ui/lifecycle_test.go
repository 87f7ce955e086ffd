package ui

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/registryd/registryd/auth"
)

func TestDeleteRepositoryTypedName(t *testing.T) {
	f := newFixture(t, Options{DeleteEnabled: true})
	f.image("team/doomed", "v1", "amd64", nil, nil)
	f.image("team/doomed", "v2", "arm64", nil, nil)
	f.image("team/stays", "v1", "amd64", nil, nil)
	page := f.get("/ui/r/team/doomed").Body.String()
	if !strings.Contains(page, `href="/ui/r/team/doomed/-/delete"`) {
		t.Fatal("no repository delete on the repository page")
	}
	confirm := f.get("/ui/r/team/doomed/-/delete").Body.String()
	if !strings.Contains(confirm, "2 tags") || !strings.Contains(confirm, `data-confirm-value="team/doomed"`) {
		t.Errorf("confirmation page:\n%s", confirm)
	}
	catalog := func() []string {
		names, _, err := f.reg.Catalog(t.Context(), "", -1, nil)
		if err != nil {
			t.Fatal(err)
		}
		return names
	}
	if w := f.do(http.MethodPost, "/ui/r/team/doomed/-/delete", url.Values{"confirm": {"team/stays"}}, sameOrigin); w.Code != http.StatusBadRequest || !slices.Contains(catalog(), "team/doomed") {
		t.Fatalf("wrong name typed: %d, catalog %v", w.Code, catalog())
	}
	if w := f.do(http.MethodPost, "/ui/r/team/doomed/-/delete", url.Values{"confirm": {"team/doomed"}}, map[string]string{"Sec-Fetch-Site": "cross-site"}); w.Code != http.StatusForbidden || !slices.Contains(catalog(), "team/doomed") {
		t.Fatalf("cross-site: %d", w.Code)
	}
	w := f.do(http.MethodPost, "/ui/r/team/doomed/-/delete", url.Values{"confirm": {"team/doomed"}}, sameOrigin)
	if w.Code != http.StatusSeeOther {
		t.Fatalf("delete: %d %s", w.Code, w.Body)
	}
	if got := catalog(); slices.Contains(got, "team/doomed") || !slices.Contains(got, "team/stays") {
		t.Errorf("catalog after the delete: %v", got)
	}
	if body := f.get(w.Header().Get("Location")).Body.String(); !strings.Contains(body, "team/doomed") || strings.Contains(body, `class="repo-name">team/doomed<`) {
		t.Errorf("the catalog page after the delete")
	}
}

func TestDeleteRepositoryNeedsTheRight(t *testing.T) {
	access := &auth.AccessConfig{Rules: []auth.Rule{{Repositories: []string{"**"}, Users: []string{"bob"}, Actions: []string{"pull", "push"}}}}
	f := newAuthFixture(t, map[string]string{"bob": "b"}, access, Options{DeleteEnabled: true})
	f.image("app", "v1", "amd64", nil, nil)
	bob := f.login("bob", "b")
	if strings.Contains(f.get("/ui/r/app", bob).Body.String(), "/-/delete") {
		t.Error("bob is offered the repository delete")
	}
	if w := f.do(http.MethodPost, "/ui/r/app/-/delete", url.Values{"confirm": {"app"}}, sameOrigin, bob); w.Code != http.StatusForbidden || !f.hasTag("app", "v1") {
		t.Errorf("bob's repository delete: %d", w.Code)
	}
}

func TestSizesShown(t *testing.T) {
	f := newFixture(t, Options{DeleteEnabled: true})
	d, _ := f.image("team/app", "v1", "amd64", nil, nil)
	f.image("team/app", "v2", "arm64", nil, nil)
	f.image("other", "v1", "amd64", nil, nil)
	catalog := f.get("/ui/").Body.String()
	if !strings.Contains(catalog, "2 tags") {
		t.Errorf("catalog rows without tag counts")
	}
	repo := f.get("/ui/r/team/app").Body.String()
	if !strings.Contains(repo, `id="repo-size"`) || !strings.Contains(repo, "its own") || !strings.Contains(repo, `<td class="num">`) {
		t.Errorf("repository page without sizes")
	}
	confirm := f.get("/ui/r/team/app/-/m/" + d.String() + "/delete").Body.String()
	if !strings.Contains(confirm, `id="frees"`) {
		t.Errorf("manifest delete confirmation without the bytes it frees")
	}
	st := f.get("/ui/storage")
	if st.Code != http.StatusOK {
		t.Fatalf("storage page: %d", st.Code)
	}
	body := st.Body.String()
	for _, want := range []string{`id="usage"`, "Unreferenced", `href="/ui/storage?ns=team"`, `href="/ui/r/other"`, "<svg class=\"bar\""} {
		if !strings.Contains(body, want) {
			t.Errorf("storage page lacks %q", want)
		}
	}
	if w := f.get("/ui/storage?ns=team"); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `href="/ui/r/team/app"`) {
		t.Errorf("storage page of team: %d", w.Code)
	}
}

func TestStorageNeedsAdmin(t *testing.T) {
	access := &auth.AccessConfig{Rules: []auth.Rule{{Repositories: []string{"**"}, Users: []string{"bob"}, Actions: []string{"*"}}}}
	f := newAuthFixture(t, map[string]string{"bob": "b"}, access, Options{})
	bob := f.login("bob", "b")
	if w := f.get("/ui/storage", bob); w.Code != http.StatusForbidden {
		t.Errorf("bob opens the storage page: %d", w.Code)
	}
}
