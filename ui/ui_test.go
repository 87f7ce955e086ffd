package ui

import (
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/registryd/registryd/auth"
)

func TestSecurityHeadersOnEveryResponse(t *testing.T) {
	f := newFixture(t, Options{DeleteEnabled: true})
	f.image("app", "v1", "amd64", nil, nil)
	for _, target := range []string{"/ui/", "/ui/r/app", "/ui/r/app/-/t/v1", "/ui/nope", "/ui/r/app/-/tags/delete?tag=v1", "/ui/assets/app.css"} {
		w := f.get(target)
		h := w.Header()
		csp := h.Get("Content-Security-Policy")
		if csp == "" || strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") ||
			!strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "script-src 'self'") {
			t.Errorf("%s: Content-Security-Policy %q", target, csp)
		}
		if h.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: X-Content-Type-Options %q", target, h.Get("X-Content-Type-Options"))
		}
		if h.Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s: X-Frame-Options %q", target, h.Get("X-Frame-Options"))
		}
		if h.Get("WWW-Authenticate") != "" {
			t.Errorf("%s: WWW-Authenticate sent: the browser would show its Basic dialog", target)
		}
	}
}

// Pages must hold no inline script or style: the CSP would block them, and
// their absence is what makes the CSP strict.
func TestNoInlineScriptOrStyle(t *testing.T) {
	f := newFixture(t, Options{DeleteEnabled: true})
	idx := f.multiArch("team/app", "v1")
	f.artifact("team/app", "", "application/vnd.dev.cosign.artifact.sig.v1+json", idx, nil)
	for _, target := range []string{"/ui/", "/ui/r/team/app", "/ui/r/team/app/-/t/v1", "/ui/r/team/app/-/m/" + idx.String() + "/delete", "/ui/login"} {
		body := f.get(target).Body.String()
		for _, bad := range []string{"<script>", "style=", "<style", "onclick=", "onload=", "javascript:"} {
			if strings.Contains(body, bad) {
				t.Errorf("%s: page contains %q", target, bad)
			}
		}
	}
}

// Labels and annotations are the pusher's: markup in them is text.
func TestAttackerControlledTextIsEscaped(t *testing.T) {
	f := newFixture(t, Options{})
	script := `<script>alert("label")</script>`
	img := `<img src=x onerror=alert(1)>`
	d, _ := f.image("app", "v1", "amd64", map[string]string{"evil": script, img: "key"}, map[string]string{"org.example.note": img, "x": script})
	f.artifact("app", "", "application/spdx+json", d, map[string]string{"org.opencontainers.image.created": script})
	w := f.get("/ui/r/app/-/t/v1")
	if w.Code != http.StatusOK {
		t.Fatalf("image page: %d", w.Code)
	}
	body := w.Body.String()
	for _, raw := range []string{script, img, "<img src=x", "<script>alert"} {
		if strings.Contains(body, raw) {
			t.Errorf("the page holds %q unescaped", raw)
		}
	}
	for _, esc := range []string{"&lt;script&gt;alert(&#34;label&#34;)&lt;/script&gt;", "&lt;img src=x onerror=alert(1)&gt;"} {
		if !strings.Contains(body, esc) {
			t.Errorf("the page does not show %q as text", esc)
		}
	}
}

func TestCrossOriginPostIsRefusedAndDeletesNothing(t *testing.T) {
	f := newFixture(t, Options{DeleteEnabled: true})
	f.image("app", "v1", "amd64", nil, nil)
	form := url.Values{"tag": {"v1"}}
	for _, tc := range []struct {
		name string
		hdr  map[string]string
	}{
		{"fetch metadata cross-site", map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "http://evil.example"}},
		{"fetch metadata same-site (another port)", map[string]string{"Sec-Fetch-Site": "same-site", "Origin": "http://example.com:8080"}},
		{"old browser, Origin only", map[string]string{"Origin": "http://evil.example"}},
	} {
		w := f.do(http.MethodPost, "/ui/r/app/-/tags/delete", form, tc.hdr)
		if w.Code != http.StatusForbidden {
			t.Errorf("%s: %d, want 403", tc.name, w.Code)
		}
		if !f.hasTag("app", "v1") {
			t.Fatalf("%s: the tag was deleted", tc.name)
		}
	}
	// The same form from our own page goes through.
	w := f.do(http.MethodPost, "/ui/r/app/-/tags/delete", form, sameOrigin)
	if w.Code != http.StatusSeeOther || f.hasTag("app", "v1") {
		t.Fatalf("same-origin delete: %d, tag still there: %v", w.Code, f.hasTag("app", "v1"))
	}
}

func TestNothingChangesOnGet(t *testing.T) {
	f := newFixture(t, Options{DeleteEnabled: true})
	d, _ := f.image("app", "v1", "amd64", nil, nil)
	for _, target := range []string{"/ui/r/app/-/tags/delete?tag=v1", "/ui/r/app/-/m/" + d.String() + "/delete", "/ui/logout"} {
		f.get(target)
		if !f.hasTag("app", "v1") {
			t.Fatalf("GET %s deleted the tag", target)
		}
	}
}

func TestDeleteTagKeepsSiblingTag(t *testing.T) {
	f := newFixture(t, Options{DeleteEnabled: true})
	d, _ := f.image("app", "v1", "amd64", nil, nil)
	if _, err := f.repo("app").PutManifest(t.Context(), "latest", mtManifest, mustContent(t, f, "app", "v1"), nil); err != nil {
		t.Fatal(err)
	}
	// The confirmation names the sibling that stays.
	body := f.get("/ui/r/app/-/tags/delete?tag=v1").Body.String()
	if !strings.Contains(body, "latest") {
		t.Errorf("the confirmation does not name the sibling tag that stays")
	}
	w := f.do(http.MethodPost, "/ui/r/app/-/tags/delete", url.Values{"tag": {"v1"}}, sameOrigin)
	if w.Code != http.StatusSeeOther {
		t.Fatalf("delete: %d %s", w.Code, w.Body)
	}
	if f.hasTag("app", "v1") || !f.hasTag("app", "latest") || !f.hasTag("app", d.String()) {
		t.Fatalf("after deleting v1: v1 %v, latest %v, manifest %v", f.hasTag("app", "v1"), f.hasTag("app", "latest"), f.hasTag("app", d.String()))
	}
	loc := w.Header().Get("Location")
	if got := f.get(loc).Body.String(); !strings.Contains(got, "Deleted 1 tag.") {
		t.Errorf("the page after the delete does not say what happened")
	}
}

func mustContent(t *testing.T, f *fixture, repo, ref string) []byte {
	m, err := f.repo(repo).GetManifest(t.Context(), ref)
	if err != nil {
		t.Fatal(err)
	}
	return m.Content
}

func TestDeleteManifestTakesItsTags(t *testing.T) {
	f := newFixture(t, Options{DeleteEnabled: true})
	d, _ := f.image("app", "v1", "amd64", nil, nil)
	f.image("app", "other", "arm64", nil, nil)
	sig := f.artifact("app", "", "application/vnd.dev.cosign.artifact.sig.v1+json", d, nil)
	body := f.get("/ui/r/app/-/m/" + d.String() + "/delete").Body.String()
	if !strings.Contains(body, "v1") || !strings.Contains(body, "Signature (cosign)") {
		t.Errorf("the confirmation lists neither the tag nor the signature:\n%s", body)
	}
	w := f.do(http.MethodPost, "/ui/r/app/-/m/"+d.String()+"/delete", url.Values{}, sameOrigin)
	if w.Code != http.StatusSeeOther {
		t.Fatalf("delete: %d %s", w.Code, w.Body)
	}
	if f.hasTag("app", "v1") || f.hasTag("app", d.String()) || !f.hasTag("app", "other") {
		t.Fatal("delete by digest: wrong result")
	}
	_ = sig
}

func TestDeleteControlsFollowTheServer(t *testing.T) {
	for _, tc := range []struct {
		name     string
		opts     Options
		controls bool
		why      string
	}{
		{"delete disabled", Options{}, false, "storage.delete.enabled"},
		{"read-only", Options{DeleteEnabled: true, ReadOnly: true}, false, "read-only"},
		{"delete enabled", Options{DeleteEnabled: true}, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.opts)
			f.image("app", "v1", "amd64", nil, nil)
			body := f.get("/ui/r/app").Body.String()
			if strings.Contains(body, "Delete selected tags") != tc.controls {
				t.Errorf("delete controls shown: %v, want %v", !tc.controls, tc.controls)
			}
			if tc.why != "" && !strings.Contains(body, tc.why) {
				t.Errorf("the page does not say why deleting is off (%s)", tc.why)
			}
			w := f.do(http.MethodPost, "/ui/r/app/-/tags/delete", url.Values{"tag": {"v1"}}, sameOrigin)
			if tc.controls != (w.Code == http.StatusSeeOther) || f.hasTag("app", "v1") == tc.controls {
				t.Errorf("POST delete: %d, tag there: %v", w.Code, f.hasTag("app", "v1"))
			}
		})
	}
}

func TestLoginSessionCookie(t *testing.T) {
	f := newAuthFixture(t, map[string]string{"alice": "wonderland"}, nil, Options{DeleteEnabled: true})
	f.image("app", "v1", "amd64", nil, nil)

	w := f.get("/ui/r/app")
	if w.Code != http.StatusSeeOther || !strings.HasPrefix(w.Header().Get("Location"), "/ui/login?next=") {
		t.Fatalf("anonymous: %d to %q, want the login page", w.Code, w.Header().Get("Location"))
	}
	if f.get("/ui/login").Code != http.StatusOK {
		t.Fatal("login page")
	}
	bad := f.do(http.MethodPost, "/ui/login", url.Values{"username": {"alice"}, "password": {"nope"}}, sameOrigin)
	if bad.Code != http.StatusUnauthorized || len(bad.Result().Cookies()) != 0 || bad.Header().Get("WWW-Authenticate") != "" {
		t.Fatalf("wrong password: %d, cookies %v", bad.Code, bad.Result().Cookies())
	}
	// A login form posted from another site is refused (login CSRF).
	if w := f.do(http.MethodPost, "/ui/login", url.Values{"username": {"alice"}, "password": {"wonderland"}}, map[string]string{"Sec-Fetch-Site": "cross-site"}); w.Code != http.StatusForbidden {
		t.Errorf("cross-site login: %d", w.Code)
	}

	w = f.do(http.MethodPost, "/ui/login", url.Values{"username": {"alice"}, "password": {"wonderland"}, "next": {"/ui/r/app"}}, sameOrigin)
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/ui/r/app" {
		t.Fatalf("login: %d to %q", w.Code, w.Header().Get("Location"))
	}
	c := w.Result().Cookies()[0]
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Secure || c.Path != "/ui/" || c.MaxAge != 12*3600 {
		t.Errorf("cookie attributes: %+v", c)
	}
	if w := f.get("/ui/r/app", c); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "alice") {
		t.Fatalf("with the session: %d", w.Code)
	}
	// Tampered: another user's name with alice's MAC.
	forged := *c
	forged.Value = "Ym9i" + c.Value[strings.IndexByte(c.Value, '.'):]
	if w := f.get("/ui/r/app", &forged); w.Code != http.StatusSeeOther {
		t.Errorf("forged cookie: %d", w.Code)
	}
	// Expired.
	f.ui.sessions.now = func() time.Time { return time.Now().Add(13 * time.Hour) }
	if w := f.get("/ui/r/app", c); w.Code != http.StatusSeeOther {
		t.Errorf("expired cookie: %d", w.Code)
	}
	f.ui.sessions.now = time.Now
	// A password change ends the session.
	if err := os.WriteFile(f.htp, []byte(strings.TrimSpace(string(mustRead(t, htpasswdFile(t, map[string]string{"alice": "changed"}))))+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // the htpasswd file is looked at once a second
	if w := f.get("/ui/r/app", c); w.Code != http.StatusSeeOther {
		t.Errorf("session after a password change: %d", w.Code)
	}
	// Logout clears the cookie.
	c = f.login("alice", "changed")
	w = f.do(http.MethodPost, "/ui/logout", url.Values{}, sameOrigin, c)
	if w.Code != http.StatusSeeOther || len(w.Result().Cookies()) == 0 || w.Result().Cookies()[0].MaxAge >= 0 {
		t.Errorf("logout: %d, cookies %v", w.Code, w.Result().Cookies())
	}
}

func mustRead(t *testing.T, p string) []byte {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSecureCookieOverTLS(t *testing.T) {
	f := newAuthFixture(t, map[string]string{"alice": "pw"}, nil, Options{HTTPHost: "https://registry.example.com"})
	c := f.login("alice", "pw")
	if !c.Secure {
		t.Error("cookie not Secure behind https http.host")
	}
}

func TestLoginRedirectStaysInTheUI(t *testing.T) {
	f := newAuthFixture(t, map[string]string{"alice": "pw"}, nil, Options{})
	for _, next := range []string{"//evil.example/", "https://evil.example/ui/", "/\\evil.example", "/v2/_catalog", "javascript:alert(1)"} {
		w := f.do(http.MethodPost, "/ui/login", url.Values{"username": {"alice"}, "password": {"pw"}, "next": {next}}, sameOrigin)
		if loc := w.Header().Get("Location"); loc != "/ui/" {
			t.Errorf("next %q: redirected to %q", next, loc)
		}
	}
}

func TestAccessRulesFilterWhatIsShown(t *testing.T) {
	access := &auth.AccessConfig{Rules: []auth.Rule{
		{Repositories: []string{"**"}, Users: []string{"admin"}, Actions: []string{"*"}},
		{Repositories: []string{"team/**"}, Users: []string{"bob"}, Actions: []string{"pull"}},
	}}
	f := newAuthFixture(t, map[string]string{"admin": "a", "bob": "b"}, access, Options{DeleteEnabled: true})
	f.image("team/app", "v1", "amd64", nil, nil)
	f.image("secret/app", "v1", "amd64", nil, nil)
	bob := f.login("bob", "b")
	body := f.get("/ui/", bob).Body.String()
	if !strings.Contains(body, "team/app") || strings.Contains(body, "secret") {
		t.Errorf("bob's catalog shows the wrong repositories")
	}
	if w := f.get("/ui/r/secret/app", bob); w.Code != http.StatusNotFound {
		t.Errorf("bob opens secret/app: %d", w.Code)
	}
	if w := f.get("/ui/r/secret/app/-/t/v1", bob); w.Code != http.StatusNotFound {
		t.Errorf("bob opens secret/app:v1: %d", w.Code)
	}
	if w := f.get("/ui/?q=secret", bob); strings.Contains(w.Body.String(), "secret/app") {
		t.Errorf("bob's search finds secret/app")
	}
	page := f.get("/ui/r/team/app", bob).Body.String()
	if strings.Contains(page, "Delete selected tags") || !strings.Contains(page, "may not delete") {
		t.Errorf("bob sees delete controls")
	}
	w := f.do(http.MethodPost, "/ui/r/team/app/-/tags/delete", url.Values{"tag": {"v1"}}, sameOrigin, bob)
	if w.Code != http.StatusForbidden || !f.hasTag("team/app", "v1") {
		t.Errorf("bob's delete: %d", w.Code)
	}
	admin := f.login("admin", "a")
	if !strings.Contains(f.get("/ui/r/team/app", admin).Body.String(), "Delete selected tags") {
		t.Errorf("admin sees no delete controls")
	}
}

func TestAnonymousRulesNeedNoLogin(t *testing.T) {
	access := &auth.AccessConfig{
		Rules:     []auth.Rule{{Repositories: []string{"**"}, Users: []string{"*"}, Actions: []string{"*"}}},
		Anonymous: []auth.AnonymousRule{{Repositories: []string{"public/**"}, Actions: []string{"pull"}}},
	}
	f := newAuthFixture(t, map[string]string{"alice": "pw"}, access, Options{DeleteEnabled: true})
	f.image("public/app", "v1", "amd64", nil, nil)
	f.image("private/app", "v1", "amd64", nil, nil)
	w := f.get("/ui/")
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "public/app") || strings.Contains(w.Body.String(), "private/app") {
		t.Fatalf("anonymous catalog: %d", w.Code)
	}
	if !strings.Contains(w.Body.String(), "Log in") {
		t.Error("no login link for an anonymous caller")
	}
	if w := f.get("/ui/r/private/app"); w.Code != http.StatusNotFound || !strings.Contains(w.Body.String(), "Log in") {
		t.Errorf("anonymous opens private/app: %d", w.Code)
	}
}

func TestCatalogSearchNamespacesAndPages(t *testing.T) {
	f := newFixture(t, Options{})
	for _, n := range []string{"alpha", "team/api", "team/web", "team/deep/svc", "tools/lint", "zeta"} {
		f.image(n, "v1", "amd64", nil, nil)
	}
	body := f.get("/ui/").Body.String()
	for _, want := range []string{"6 repositories", `href="/ui/?ns=team"`, "team/", "tools/"} {
		if !strings.Contains(body, want) {
			t.Errorf("front page lacks %q", want)
		}
	}
	body = f.get("/ui/?ns=team").Body.String()
	if !strings.Contains(body, "3 repositories") || strings.Contains(body, "tools/lint") || strings.Contains(body, "alpha") || !strings.Contains(body, "deep/") {
		t.Errorf("namespace team:\n%s", body)
	}
	body = f.get("/ui/?q=EB").Body.String()
	if !strings.Contains(body, "team/web") || strings.Contains(body, "team/api") || !strings.Contains(body, "1 repository") {
		t.Errorf("search EB (case-insensitive substring) is wrong")
	}
	// Pages of 2, following Next.
	var seen []string
	next := "/ui/?n=2"
	for i := 0; next != "" && i < 10; i++ {
		b := f.get(next).Body.String()
		for _, n := range []string{"alpha", "team/api", "team/deep/svc", "team/web", "tools/lint", "zeta"} {
			if strings.Contains(b, `class="repo-name">`+n+"<") {
				seen = append(seen, n)
			}
		}
		next = ""
		if i := strings.Index(b, `rel="next"`); i >= 0 {
			s := b[:i]
			j := strings.LastIndex(s, `href="`)
			next = strings.ReplaceAll(s[j+6:strings.LastIndex(s, `"`)], "&amp;", "&")
		}
	}
	if strings.Join(seen, ",") != "alpha,team/api,team/deep/svc,team/web,tools/lint,zeta" {
		t.Errorf("paging saw %v", seen)
	}
	if w := f.get("/ui/?ns=..%2Fetc"); w.Code != http.StatusBadRequest {
		t.Errorf("bad namespace: %d", w.Code)
	}
}

func TestMultiArchImageAndReferrers(t *testing.T) {
	f := newFixture(t, Options{PullHost: "reg.example:5000"})
	idx := f.multiArch("team/app", "v1")
	sig := f.artifact("team/app", "", "application/vnd.dev.cosign.artifact.sig.v1+json", idx, nil)
	f.artifact("team/app", "", "application/spdx+json", idx, nil)
	w := f.get("/ui/r/team/app/-/t/v1")
	body := w.Body.String()
	for _, want := range []string{"Multi-platform image", "linux/amd64", "linux/arm64/v8", "Build attestations", "Signature (cosign)", "SBOM",
		"docker pull reg.example:5000/team/app:v1", "reg.example:5000/team/app@" + idx.String(), "COPY app /bin/app", "/bin/app", "MODE=amd64"} {
		if !strings.Contains(body, want) && !strings.Contains(body, strings.ReplaceAll(want, "=", "</th><td><code>")) {
			t.Errorf("multi-arch page lacks %q", want)
		}
	}
	// The arm64 tab.
	i := strings.Index(body, "linux/arm64/v8</a>")
	j := strings.LastIndex(body[:i], `href="`)
	tab := strings.ReplaceAll(body[j+6:strings.Index(body[j+6:], `"`)+j+6], "&amp;", "&")
	if b := f.get(tab).Body.String(); !strings.Contains(b, "MODE") || !strings.Contains(b, "arm64") {
		t.Errorf("arm64 tab %s does not show the arm64 image", tab)
	}
	// The signature's page says what it signs and offers oras.
	b := f.get("/ui/r/team/app/-/m/" + sig.d.String()).Body.String()
	if !strings.Contains(b, "Refers to") || !strings.Contains(b, "oras pull") || !strings.Contains(b, idx.String()[:19]) {
		t.Errorf("signature page")
	}
	// A missing platform does not break the page.
	if w := f.get("/ui/r/team/app/-/t/v1?platform=sha256:" + strings.Repeat("0", 64)); w.Code != http.StatusOK {
		t.Errorf("unknown platform: %d", w.Code)
	}
}

func TestPullCommandByKind(t *testing.T) {
	f := newFixture(t, Options{PullHost: "reg.example"})
	r := httpsRequest()
	for _, tc := range []struct {
		kind  Kind
		tag   string
		first string
	}{
		{kindImage, "v1", "docker pull reg.example/a:v1"},
		{kindIndex, "", "docker pull reg.example/a@sha256:x"},
		{kindHelm, "1.2.0", "helm pull oci://reg.example/a --version 1.2.0"},
		{signatureKind("cosign"), "", "oras pull reg.example/a@sha256:x"},
		{kindSBOM, "", "oras pull reg.example/a@sha256:x"},
	} {
		cmds := f.ui.pullCommands(r, "reg.example", "a", tc.tag, "sha256:x", tc.kind)
		if cmds[0].Cmd != tc.first {
			t.Errorf("%s: %q, want %q", tc.kind.Label, cmds[0].Cmd, tc.first)
		}
	}
}

func httpsRequest() *http.Request {
	r, _ := http.NewRequest(http.MethodGet, "https://reg.example/ui/", nil)
	r.Header.Set("X-Forwarded-Proto", "https")
	return r
}

func TestAssetsAreHashedAndCachedForever(t *testing.T) {
	f := newFixture(t, Options{})
	body := f.get("/ui/").Body.String()
	i := strings.Index(body, `href="/ui/assets/app.`)
	if i < 0 {
		t.Fatal("no hashed stylesheet link")
	}
	href := body[i+6 : i+6+strings.Index(body[i+6:], `"`)]
	w := f.get(href)
	if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "text/css; charset=utf-8" ||
		w.Header().Get("Cache-Control") != "public, max-age=31536000, immutable" {
		t.Fatalf("%s: %d %v", href, w.Code, w.Header())
	}
	etag := w.Header().Get("ETag")
	if w := f.do(http.MethodGet, href, nil, map[string]string{"If-None-Match": etag}); w.Code != http.StatusNotModified {
		t.Errorf("revalidation: %d", w.Code)
	}
	if w := f.get("/ui/assets/app.css"); w.Code != http.StatusNotFound {
		t.Errorf("unhashed name: %d", w.Code)
	}
	if f.get("/ui/").Header().Get("Cache-Control") != "no-store" {
		t.Error("pages may be cached")
	}
}

func TestUnknownAndHostilePaths(t *testing.T) {
	f := newFixture(t, Options{})
	f.image("app", "v1", "amd64", nil, nil)
	for _, p := range []string{"/ui/r/", "/ui/r/App", "/ui/r/app/-/t/../../x", "/ui/r/app/-/m/sha256:zz", "/ui/r/app/-/t/" + strings.Repeat("a", 200),
		"/ui/r/app/-/nope", "/ui/r/a/../app", "/ui/r/app/-/m/sha256:" + strings.Repeat("0", 64)} {
		if w := f.get(p); w.Code != http.StatusNotFound {
			t.Errorf("%s: %d", p, w.Code)
		}
	}
	if w := f.do(http.MethodPut, "/ui/", nil, sameOrigin); w.Code != http.StatusMethodNotAllowed {
		t.Errorf("PUT /ui/: %d", w.Code)
	}
}

func TestExternalTokenServerExplainsItself(t *testing.T) {
	f := newFixture(t, Options{})
	f.ui.users, f.ui.external = nil, true
	f.ui.opts.Authorizer = fakeAuthorizer{}
	w := f.get("/ui/login")
	if w.Code != http.StatusNotFound || !strings.Contains(w.Body.String(), "external token server") {
		t.Errorf("login with an external token server: %d", w.Code)
	}
}

type fakeAuthorizer struct{}

func (fakeAuthorizer) Authorize(w http.ResponseWriter, r *http.Request, access ...auth.Access) (*http.Request, error) {
	return r, nil
}
func (fakeAuthorizer) Allowed(r *http.Request, access auth.Access) bool { return false }

func TestTagsSortByPushTime(t *testing.T) {
	f := newFixture(t, Options{})
	for _, tag := range []string{"b-old", "c-mid", "a-new"} {
		f.image("app", tag, "amd64", nil, nil)
		time.Sleep(20 * time.Millisecond)
	}
	order := func(body string) []string {
		var out []string
		for _, tag := range []string{"a-new", "b-old", "c-mid"} {
			out = append(out, tag)
		}
		slices.SortFunc(out, func(x, y string) int {
			return strings.Index(body, `>`+x+`</a></td>`) - strings.Index(body, `>`+y+`</a></td>`)
		})
		return out
	}
	if got := order(f.get("/ui/r/app").Body.String()); strings.Join(got, ",") != "a-new,b-old,c-mid" {
		t.Errorf("by name: %v", got)
	}
	body := f.get("/ui/r/app?sort=pushed").Body.String()
	if got := order(body); strings.Join(got, ",") != "a-new,c-mid,b-old" {
		t.Errorf("by push time: %v", got)
	}
	if !strings.Contains(body, `aria-sort="descending"`) || !strings.Contains(body, "just now") {
		t.Errorf("the push-time order is not marked, or push times are not shown")
	}
	// Pages of one follow the same order.
	b := f.get("/ui/r/app?sort=pushed&n=1&last=a-new").Body.String()
	if !strings.Contains(b, ">c-mid</a></td>") || strings.Contains(b, ">b-old</a></td>") {
		t.Errorf("second page by push time")
	}
}
