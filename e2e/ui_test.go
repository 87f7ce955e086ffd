package e2e

// The web UI in a real browser: Debian's chromium, headless, driven with
// chromedp, against the registryd binary on a loopback port.
//
// REGISTRYD_UI_SCREENSHOTS=dir   also save screenshots of the main pages
//                                there, light and dark (docs/ui/ holds the
//                                committed ones: make ui-screenshots)

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// bigLayer is the size of team-a/big's own layer.
const bigLayer = 512 << 10

// uiPusher pushes through the V2 API as a user of the auth server.
type uiPusher struct {
	t    *testing.T
	base string // http://addr
	user string
	c    *http.Client
}

func (p *uiPusher) do(method, path, ctype string, body []byte) *http.Response {
	p.t.Helper()
	req, err := http.NewRequest(method, p.base+path, bytes.NewReader(body))
	must(p.t, err)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	req.SetBasicAuth(p.user, authUsers[p.user])
	resp, err := p.c.Do(req)
	must(p.t, err)
	return resp
}

func (p *uiPusher) blob(repo string, b []byte) string {
	p.t.Helper()
	d := sha256Digest(b)
	resp := p.do(http.MethodPost, "/v2/"+repo+"/blobs/uploads/?digest="+d, "application/octet-stream", b)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		p.t.Fatalf("push blob to %s: %s", repo, resp.Status)
	}
	return d
}

func (p *uiPusher) manifest(repo, ref, mt string, m any) (string, int) {
	p.t.Helper()
	b := mustJSON(p.t, m)
	if ref == "" {
		ref = sha256Digest(b)
	}
	resp := p.do(http.MethodPut, "/v2/"+repo+"/manifests/"+ref, mt, b)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		p.t.Fatalf("push manifest %s:%s: %s", repo, ref, resp.Status)
	}
	return sha256Digest(b), len(b)
}

// image pushes a one-layer image for arch with labels and annotations.
func (p *uiPusher) image(repo, ref, arch string, labels, annotations map[string]string) (string, int) {
	p.t.Helper()
	layer := []byte(fmt.Sprintf("layer %s %s %s %d", repo, ref, arch, time.Now().UnixNano()))
	ld := p.blob(repo, layer)
	cfg := mustJSON(p.t, map[string]any{
		"architecture": arch, "os": "linux", "created": "2025-03-01T12:00:00Z",
		"config":  map[string]any{"Labels": labels, "Env": []string{"PATH=/usr/local/bin:/usr/bin", "APP_ARCH=" + arch}, "Entrypoint": []string{"/usr/local/bin/app"}, "Cmd": []string{"serve", "--port", "8080"}, "WorkingDir": "/srv", "ExposedPorts": map[string]any{"8080/tcp": map[string]any{}}},
		"rootfs":  map[string]any{"type": "layers", "diff_ids": []string{sha256Digest(layer)}},
		"history": []map[string]any{{"created": "2025-03-01T12:00:00Z", "created_by": "COPY app /usr/local/bin/app # buildkit"}, {"created": "2025-03-01T12:00:00Z", "created_by": "CMD [\"serve\"]", "empty_layer": true}},
	})
	cd := p.blob(repo, cfg)
	return p.manifest(repo, ref, mtOCIManifest, map[string]any{
		"schemaVersion": 2, "mediaType": mtOCIManifest,
		"config":      descriptor{MediaType: mtOCIConfig, Digest: cd, Size: int64(len(cfg))},
		"layers":      []descriptor{{MediaType: mtOCILayerGzip, Digest: ld, Size: int64(len(layer))}},
		"annotations": annotations,
	})
}

// artifact pushes an artifact of artifactType whose subject is subject.
func (p *uiPusher) artifact(repo, artifactType, subject, subjectType string, subjectSize int) string {
	p.t.Helper()
	ed := p.blob(repo, []byte("{}"))
	payload := []byte("payload of a " + artifactType + " for " + subject)
	pd := p.blob(repo, payload)
	d, _ := p.manifest(repo, "", mtOCIManifest, map[string]any{
		"schemaVersion": 2, "mediaType": mtOCIManifest, "artifactType": artifactType,
		"config":  descriptor{MediaType: "application/vnd.oci.empty.v1+json", Digest: ed, Size: 2},
		"layers":  []descriptor{{MediaType: "application/octet-stream", Digest: pd, Size: int64(len(payload))}},
		"subject": descriptor{MediaType: subjectType, Digest: subject, Size: int64(subjectSize)},
	})
	return d
}

func (p *uiPusher) hasManifest(repo, ref string) bool {
	p.t.Helper()
	resp := p.do(http.MethodHead, "/v2/"+repo+"/manifests/"+ref, "", nil)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func (p *uiPusher) catalog() []string {
	p.t.Helper()
	resp := p.do(http.MethodGet, "/v2/_catalog?n=1000", "", nil)
	defer resp.Body.Close()
	var c struct{ Repositories []string }
	must(p.t, json.NewDecoder(resp.Body).Decode(&c))
	return c.Repositories
}

// chromium starts a headless browser for the test; it ends with the test.
func chromium(t *testing.T, timeout time.Duration) context.Context {
	t.Helper()
	exe := system(t, "chromium", "/usr/bin/chromium", "/usr/bin/chromium-browser")
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.NoSandbox, // root in CI and containers
		chromedp.DisableGPU,
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1280, 860),
		chromedp.UserDataDir(t.TempDir()),
	)
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelB := chromedp.NewContext(actx)
	// The first Run starts the browser and must not carry the deadline
	// (it would stop the browser); the test's steps get it.
	if err := chromedp.Do(bctx); err != nil {
		cancelB()
		cancelA()
		t.Fatalf("starting chromium: %v", err)
	}
	ctx, cancelT := context.WithTimeout(bctx, timeout)
	t.Cleanup(func() { cancelT(); cancelB(); cancelA() })
	return ctx
}

// stepTimeout bounds one group of browser steps: a page that never shows
// what a step waits for fails the step, not the whole test's time.
const stepTimeout = 30 * time.Second

// do runs browser steps, failing the test with what on an error.
func do(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// get runs one browser action that yields a value.
func get[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	return get(t, ctx, "text of "+sel, chromedp.Text(chromedp.CSS(sel)))
}

func colorScheme(scheme string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		p := emulation.SetEmulatedMediaParams{}
		if scheme != "" {
			p.Features = []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}}
		}
		_, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, p)
		return err
	})
}

// screenshots saves the viewport as name-light.png and name-dark.png
// when REGISTRYD_UI_SCREENSHOTS names a directory.
func screenshots(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("REGISTRYD_UI_SCREENSHOTS")
	if dir == "" {
		return
	}
	must(t, os.MkdirAll(dir, 0o755))
	for _, scheme := range []string{"light", "dark"} {
		do(t, ctx, "color scheme", colorScheme(scheme), chromedp.Sleep(150*time.Millisecond))
		png := get(t, ctx, "screenshot "+name, chromedp.CaptureScreenshot())
		must(t, os.WriteFile(filepath.Join(dir, name+"-"+scheme+".png"), png, 0o644))
	}
	do(t, ctx, "reset color scheme", colorScheme(""))
}

// TestUIBrowser walks the web UI as a user would: log in, search, open a
// multi-platform image and its signature, copy a pull command, delete a
// tag (its sibling stays), delete an image until its repository leaves
// the catalog; markup pushed in labels and annotations stays text, and a
// form on another origin cannot delete with the user's session.
func TestUIBrowser(t *testing.T) {
	srv := startAuthRegistryd(t, "htpasswd")
	parent := t // the server outlives the subtest that restarts it
	base := "http://" + srv.Addr
	root := &uiPusher{t: t, base: base, user: "root", c: srv.client()}

	// Content: a multi-arch image tagged v1 and latest with a BuildKit
	// attestation entry, a cosign signature and an SBOM; an image whose
	// label and annotation hold markup; repositories to search; one only
	// root may see.
	amd, amdSize := root.image("team-a/app", "", "amd64", map[string]string{"org.opencontainers.image.source": "https://example.com/app"}, nil)
	arm, armSize := root.image("team-a/app", "", "arm64", nil, nil)
	att, attSize := root.manifest("team-a/app", "", mtOCIManifest, map[string]any{
		"schemaVersion": 2, "mediaType": mtOCIManifest, "artifactType": "application/vnd.in-toto+json",
		"config": descriptor{MediaType: "application/vnd.oci.empty.v1+json", Digest: root.blob("team-a/app", []byte("{}")), Size: 2},
		"layers": []descriptor{{MediaType: "application/vnd.in-toto+json", Digest: root.blob("team-a/app", []byte(`{"_type":"https://in-toto.io/Statement/v1"}`)), Size: 42}},
	})
	index := map[string]any{
		"schemaVersion": 2, "mediaType": mtOCIIndex,
		"manifests": []map[string]any{
			{"mediaType": mtOCIManifest, "digest": amd, "size": amdSize, "platform": map[string]string{"os": "linux", "architecture": "amd64"}},
			{"mediaType": mtOCIManifest, "digest": arm, "size": armSize, "platform": map[string]string{"os": "linux", "architecture": "arm64", "variant": "v8"}},
			{"mediaType": mtOCIManifest, "digest": att, "size": attSize, "platform": map[string]string{"os": "unknown", "architecture": "unknown"},
				"annotations": map[string]string{"vnd.docker.reference.type": "attestation-manifest", "vnd.docker.reference.digest": amd}},
		},
	}
	idx, idxSize := root.manifest("team-a/app", "v1", mtOCIIndex, index)
	root.manifest("team-a/app", "latest", mtOCIIndex, index)
	root.image("team-a/app", "v0.9", "amd64", nil, nil)
	sig := root.artifact("team-a/app", "application/vnd.dev.cosign.artifact.sig.v1+json", idx, mtOCIIndex, idxSize)
	root.artifact("team-a/app", "application/spdx+json", idx, mtOCIIndex, idxSize)
	root.image("team-a/hostile", "xss", "amd64",
		map[string]string{"evil.label": `<script>window.__xss="label"</script>`, "org.example.img": `<img src=x onerror="window.__xss='img-label'">`},
		map[string]string{"org.example.note": `<img src=x onerror="window.__xss='annotation'">`, "org.example.script": `<script>window.__xss="annotation"</script>`})
	root.image("team-a/doomed", "only", "amd64", nil, nil)
	for _, n := range []string{"team-a/svc/api", "team-a/svc/web", "team-a/tools/lint", "public/base"} {
		root.image(n, "1.0", "amd64", nil, nil)
	}
	root.image("ops/secret", "v1", "amd64", nil, nil)
	// A repository with a layer of its own, to see the storage page move.
	big := make([]byte, bigLayer)
	_, _ = rand.Read(big)
	bd := root.blob("team-a/big", big)
	bcfg := root.blob("team-a/big", mustJSON(t, map[string]any{"architecture": "amd64", "os": "linux", "rootfs": map[string]any{"type": "layers", "diff_ids": []string{bd}}}))
	root.manifest("team-a/big", "v1", mtOCIManifest, map[string]any{"schemaVersion": 2, "mediaType": mtOCIManifest,
		"config": descriptor{MediaType: mtOCIConfig, Digest: bcfg, Size: int64(len(mustJSON(t, map[string]any{"architecture": "amd64", "os": "linux", "rootfs": map[string]any{"type": "layers", "diff_ids": []string{bd}}})))},
		"layers": []descriptor{{MediaType: mtOCILayerGzip, Digest: bd, Size: bigLayer}}})

	ctx := chromium(t, 4*time.Minute)
	for _, perm := range []string{"clipboard-read", "clipboard-write"} {
		if _, err := chromedp.CallBrowser(ctx, browser.SetPermission, browser.SetPermissionParams{
			Permission: &browser.PermissionDescriptor{Name: perm}, Setting: browser.PermissionSettingGranted, Origin: base,
		}); err != nil {
			t.Fatalf("granting %s: %v", perm, err)
		}
	}
	visible := func(sel string) chromedp.Action[chromedp.Void] { return chromedp.WaitVisible(chromedp.CSS(sel)) }
	click := func(sel string) chromedp.Action[chromedp.Void] { return chromedp.Click(chromedp.CSS(sel)) }
	clickX := func(xpath string) chromedp.Action[chromedp.Void] { return chromedp.Click(chromedp.Search(xpath)) }

	loggedIn := t.Run("anonymous sees public only, then logs in", func(t *testing.T) {
		do(t, ctx, "open /", chromedp.Navigate(base+"/"), visible("#repos"))
		if loc := get(t, ctx, "location", chromedp.Location()); loc != base+"/ui/" {
			t.Errorf("GET / led to %s", loc)
		}
		if repos := text(t, ctx, "#repos"); !strings.Contains(repos, "public/base") || strings.Contains(repos, "team-a") {
			t.Errorf("anonymous catalog: %q", repos)
		}
		do(t, ctx, "login page", click(`a[href="/ui/login"]`), visible("#username"))
		screenshots(t, ctx, "login")
		do(t, ctx, "wrong password",
			chromedp.SendKeys(chromedp.ID("username"), "alice"), chromedp.SendKeys(chromedp.ID("password"), "wrong"),
			chromedp.Submit(chromedp.ID("password")), visible(".error-msg"))
		// The page that says so keeps the user name and focuses the password.
		do(t, ctx, "right password", chromedp.SendKeys(chromedp.ID("password"), authUsers["alice"]),
			chromedp.Submit(chromedp.ID("password")), visible(".user"))
		if u := text(t, ctx, ".user"); u != "alice" {
			t.Errorf("logged in as %q", u)
		}
		c, ok := browserCookies(t, ctx, base)["registryd_session"]
		if !ok || !c.HTTPOnly || c.SameSite != network.CookieSameSiteStrict || c.Path != "/ui/" || c.Expires <= 0 {
			t.Errorf("session cookie: %+v", c)
		}
		repos := text(t, ctx, "#repos")
		for _, want := range []string{"team-a/app", "team-a/hostile", "public/base"} {
			if !strings.Contains(repos, want) {
				t.Errorf("alice's catalog lacks %s: %q", want, repos)
			}
		}
		if strings.Contains(repos, "ops/secret") {
			t.Errorf("alice's catalog shows ops/secret")
		}
		screenshots(t, ctx, "catalog")
	})
	if !loggedIn {
		t.Fatal("the rest needs a logged-in user")
	}

	t.Run("search and namespaces", func(t *testing.T) {
		do(t, ctx, "catalog", chromedp.Navigate(base+"/ui/"), visible("#repos"), chromedp.KeyEvent("/"))
		if focused := get(t, ctx, "focus", chromedp.Evaluate[string](`document.activeElement.id`)); focused != "q" {
			t.Errorf("after /, the focus is on %q", focused)
		}
		do(t, ctx, "search svc", chromedp.SendKeys(chromedp.ID("q"), "svc"), chromedp.Submit(chromedp.ID("q")), visible("#clear-search"))
		repos := text(t, ctx, "#repos")
		if !strings.Contains(repos, "team-a/svc/api") || !strings.Contains(repos, "team-a/svc/web") || strings.Contains(repos, "team-a/app") {
			t.Errorf("search svc: %q", repos)
		}
		do(t, ctx, "namespace team-a", chromedp.Navigate(base+"/ui/?ns=team-a"), visible(".tree"))
		if tree := text(t, ctx, ".tree"); !strings.Contains(tree, "svc/") || !strings.Contains(tree, "tools/") {
			t.Errorf("namespace tree of team-a: %q", tree)
		}
	})

	t.Run("multi-platform image, signature, copy", func(t *testing.T) {
		do(t, ctx, "repository", chromedp.Navigate(base+"/ui/r/team-a/app"), visible("#tags"))
		screenshots(t, ctx, "repository")
		do(t, ctx, "open v1", clickX(`//td[@class="tag"]/a[text()="v1"]`), visible("#pull"))
		page := text(t, ctx, "main")
		for _, want := range []string{"Multi-platform image", "linux/amd64", "linux/arm64/v8", "Build attestations", "Signature (cosign)", "SBOM", "APP_ARCH", "/usr/local/bin/app"} {
			if !strings.Contains(page, want) {
				t.Errorf("image page lacks %q", want)
			}
		}
		screenshots(t, ctx, "image")
		do(t, ctx, "arm64 tab", clickX(`//nav[@class="tabs"]/a[text()="linux/arm64/v8"]`),
			chromedp.WaitVisible(chromedp.Search(`//nav[@class="tabs"]/a[@aria-current="page" and text()="linux/arm64/v8"]`)))
		if s := text(t, ctx, "section.image"); !strings.Contains(s, "arm64") || !strings.Contains(s, "APP_ARCH") {
			t.Errorf("arm64 tab: %q", s)
		}
		// Copy the docker pull command and read the clipboard back.
		do(t, ctx, "copy", chromedp.Navigate(base+"/ui/r/team-a/app/-/t/v1"), visible("#pull"),
			clickX(`//div[@class="cmd"][span="docker"]/button`),
			chromedp.WaitVisible(chromedp.Search(`//div[@class="cmd"][span="docker"]/button[text()="Copied"]`)))
		want := "docker pull " + srv.Addr + "/team-a/app:v1"
		if clip := get(t, ctx, "clipboard", chromedp.Evaluate[string](`navigator.clipboard.readText()`, chromedp.EvalAwaitPromise)); clip != want {
			t.Errorf("clipboard holds %q, want %q", clip, want)
		}
		// The signature, shown as one, with what it signs.
		do(t, ctx, "signature", clickX(`//section[@id="referrers"]//tr[td/span[contains(., "Signature")]]//a`),
			chromedp.WaitVisible(chromedp.Search(`//dt[text()="Refers to"]`)))
		if loc := get(t, ctx, "location", chromedp.Location()); !strings.HasSuffix(loc, sig) {
			t.Errorf("signature link led to %s", loc)
		}
		page = text(t, ctx, "main")
		if !strings.Contains(page, "Signature (cosign)") || !strings.Contains(page, "Refers to") || !strings.Contains(page, "oras pull") {
			t.Errorf("signature page: %q", page)
		}
		screenshots(t, ctx, "signature")
	})

	t.Run("markup in labels and annotations is text", func(t *testing.T) {
		do(t, ctx, "hostile image", chromedp.Navigate(base+"/ui/r/team-a/hostile/-/t/xss"), visible("#labels"))
		// Scripts below run in this page (not the one before it).
		if rows := get(t, ctx, "label rows", chromedp.Evaluate[int](`document.querySelectorAll("#labels tr, #annotations tr").length`)); rows != 4 {
			t.Fatalf("the page shows %d label and annotation rows, want 4", rows)
		}
		xss := get(t, ctx, "window.__xss", chromedp.Evaluate[*string](`window.__xss === undefined ? null : String(window.__xss)`))
		elems := get(t, ctx, "elements", chromedp.Evaluate[int](`document.querySelectorAll("#labels img, #annotations img, #labels script, #annotations script").length`))
		if xss != nil || elems != 0 {
			t.Errorf("markup ran or became elements: window.__xss=%v, %d img/script elements", xss, elems)
		}
		labels, annotations := text(t, ctx, "#labels"), text(t, ctx, "#annotations")
		for _, want := range []string{`<script>window.__xss="label"</script>`, `<img src=x onerror="window.__xss='img-label'">`} {
			if !strings.Contains(labels, want) {
				t.Errorf("labels do not show %q as text: %q", want, labels)
			}
		}
		for _, want := range []string{`<img src=x onerror="window.__xss='annotation'">`, `<script>window.__xss="annotation"</script>`} {
			if !strings.Contains(annotations, want) {
				t.Errorf("annotations do not show %q as text: %q", want, annotations)
			}
		}
	})

	t.Run("delete a tag, the sibling stays", func(t *testing.T) {
		do(t, ctx, "select v1", chromedp.Navigate(base+"/ui/r/team-a/app"), visible("#tags"),
			click(`input[name=tag][value="v1"]`), click(`button[data-needs-selection]`), visible("#confirm-delete"))
		if c := text(t, ctx, "section.confirm"); !strings.Contains(c, "latest") {
			t.Errorf("the confirmation does not name the sibling tag: %q", c)
		}
		screenshots(t, ctx, "delete-tag")
		do(t, ctx, "confirm", click("#confirm-delete"), visible(".notice"))
		names := get(t, ctx, "tag names", chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll("td.tag")).map(e => e.textContent.trim())`))
		if slices.Contains(names, "v1") || !slices.Contains(names, "latest") {
			t.Errorf("tags after deleting v1: %q", names)
		}
		if root.hasManifest("team-a/app", "v1") || !root.hasManifest("team-a/app", "latest") || !root.hasManifest("team-a/app", idx) {
			t.Errorf("after deleting v1 through the UI: v1 %v, latest %v, index %v",
				root.hasManifest("team-a/app", "v1"), root.hasManifest("team-a/app", "latest"), root.hasManifest("team-a/app", idx))
		}
	})

	t.Run("a cross-site form with the session cookie deletes nothing", func(t *testing.T) {
		// Another origin on the same host (so the same site: the SameSite
		// cookie goes along) serves a page whose form deletes a tag.
		evil := evilSite(t, fmt.Sprintf(`<form method="post" action="%s/ui/r/team-a/app/-/tags/delete"><input type="hidden" name="tag" value="latest"><button id="go">win a prize</button></form>`, base))
		do(t, ctx, "evil page", chromedp.Navigate(evil), visible("#go"), click("#go"), visible("section.error"))
		if status := text(t, ctx, "h1"); !strings.HasPrefix(status, "403") {
			t.Errorf("cross-site POST answered %q", status)
		}
		if !root.hasManifest("team-a/app", "latest") {
			t.Fatal("the cross-site form deleted the tag")
		}
		// The same with the session cookie sent by hand and the headers a
		// browser sets on a cross-site form.
		c := browserCookies(t, ctx, base)["registryd_session"]
		if c == nil {
			t.Fatal("no session cookie in the browser")
		}
		req, _ := http.NewRequest(http.MethodPost, base+"/ui/r/team-a/app/-/tags/delete", strings.NewReader("tag=latest"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", "http://attacker.example")
		req.Header.Set("Sec-Fetch-Site", "cross-site")
		req.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
		resp, err := http.DefaultClient.Do(req)
		must(t, err)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden || !root.hasManifest("team-a/app", "latest") {
			t.Errorf("cross-site POST with the cookie: %s; tag still there: %v", resp.Status, root.hasManifest("team-a/app", "latest"))
		}
	})

	t.Run("delete a repository, it leaves the catalog", func(t *testing.T) {
		do(t, ctx, "doomed", chromedp.Navigate(base+"/ui/r/team-a/doomed"), visible("#tags"),
			click("#delete-repo"), visible("#confirm"))
		screenshots(t, ctx, "delete-repository")
		do(t, ctx, "type the name", chromedp.SendKeys(chromedp.ID("confirm"), "team-a/doomed"), click("#confirm-delete"), visible(".notice"))
		if repos := text(t, ctx, "#repos"); strings.Contains(repos, "team-a/doomed") || !strings.Contains(repos, "team-a/app") {
			t.Errorf("catalog after the delete: %q", repos)
		}
		if slices.Contains(root.catalog(), "team-a/doomed") {
			t.Errorf("/v2/_catalog still lists team-a/doomed")
		}
		if root.hasManifest("team-a/doomed", "only") {
			t.Errorf("team-a/doomed:only still pulls")
		}
	})

	t.Run("keyboard", func(t *testing.T) {
		do(t, ctx, "repository", chromedp.Navigate(base+"/ui/r/team-a/app"), visible("#tags"), chromedp.KeyEvent(kb.Tab))
		if first := get(t, ctx, "first focus", chromedp.Evaluate[string](`document.activeElement.textContent`)); first != "Skip to content" {
			t.Errorf("the first Tab focuses %q, want the skip link", first)
		}
		// A tag link opened with Enter, as a keyboard user does.
		do(t, ctx, "enter on a tag", chromedp.Focus(chromedp.CSS(`td.tag a`)), chromedp.KeyEvent(kb.Enter), visible("#pull"))
	})

	t.Run("storage page changes after GC", func(t *testing.T) {
		// As root, who has the admin right.
		do(t, ctx, "log out", chromedp.Navigate(base+"/ui/"), visible(".user"), click("header form button"), visible(`a[href="/ui/login"]`),
			chromedp.Navigate(base+"/ui/login"), visible("#username"),
			chromedp.SendKeys(chromedp.ID("username"), "root"), chromedp.SendKeys(chromedp.ID("password"), authUsers["root"]),
			chromedp.Submit(chromedp.ID("password")), visible(".user"))
		bytesOf := func(id string) int64 {
			return int64(get(t, ctx, id, chromedp.Evaluate[float64](fmt.Sprintf(`Number(document.getElementById(%q).dataset.bytes)`, id))))
		}
		do(t, ctx, "storage", chromedp.Navigate(base+"/ui/storage"), visible("#storage-table"))
		total0, unref0 := bytesOf("total"), bytesOf("unreferenced")
		screenshots(t, ctx, "storage")
		do(t, ctx, "delete team-a/big", chromedp.Navigate(base+"/ui/r/team-a/big/-/delete"), visible("#confirm"),
			chromedp.SendKeys(chromedp.ID("confirm"), "team-a/big"), click("#confirm-delete"), visible(".notice"),
			chromedp.Navigate(base+"/ui/storage"), visible("#usage"))
		total1, unref1 := bytesOf("total"), bytesOf("unreferenced")
		if total1 != total0 || unref1 < unref0+bigLayer {
			t.Errorf("after deleting team-a/big: on disk %d -> %d (same expected), unreferenced %d -> %d (+%d at least expected)", total0, total1, unref0, unref1, bigLayer)
		}
		// Collect: offline, as this server has no online collector.
		srv.stop()
		runCmd(t, nil, 2*time.Minute, registrydBin, "garbage-collect", srv.Config)
		must(t, srv.start(parent, srv.Config))
		do(t, ctx, "storage after GC", chromedp.Navigate(base+"/ui/storage"), visible("#usage"))
		total2, unref2 := bytesOf("total"), bytesOf("unreferenced")
		if total2 > total1-bigLayer || unref2 >= unref1 {
			t.Errorf("after garbage collection: on disk %d -> %d, unreferenced %d -> %d", total1, total2, unref1, unref2)
		}
		if !root.hasManifest("team-a/app", "latest") {
			t.Errorf("garbage collection lost team-a/app:latest")
		}
	})

	t.Run("phone width", func(t *testing.T) {
		do(t, ctx, "narrow", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateScale(2)),
			chromedp.Navigate(base+"/ui/r/team-a/app/-/t/latest"), visible("#pull"))
		if overflow := get(t, ctx, "overflow", chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth + 1`)); overflow {
			t.Errorf("the image page scrolls sideways at phone width")
		}
		screenshots(t, ctx, "image-phone")
		do(t, ctx, "wide again", chromedp.ResetViewport())
	})
}

// browserCookies are the browser's cookies for base, by name.
func browserCookies(t *testing.T, ctx context.Context, base string) map[string]*network.Cookie {
	t.Helper()
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{base + "/ui/"}})
	if err != nil {
		t.Fatalf("cookies: %v", err)
	}
	out := map[string]*network.Cookie{}
	for _, c := range res.Cookies {
		out[c.Name] = c
	}
	return out
}

// evilSite serves body as a page on another loopback port: another origin,
// the same site.
func evilSite(t *testing.T, body string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, "<!doctype html><title>prize</title>%s", body)
	}), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return (&url.URL{Scheme: "http", Host: ln.Addr().String(), Path: "/"}).String()
}

// TestUILoginTokenServer: with registryd's own token server, the UI logs
// in the same htpasswd users and applies the same access rules (HTTP
// only: the browser steps are TestUIBrowser's).
func TestUILoginTokenServer(t *testing.T) {
	srv := startAuthRegistryd(t, "token")
	base := "http://" + srv.Addr
	// Content pushed with a token, as clients do.
	crane := craneClient(t)
	if _, err := crane("auth", "login", srv.Addr, "-u", "root", "-p", authUsers["root"]); err != nil {
		t.Fatalf("crane auth login: %v", err)
	}
	img := newTestImage(t, t.TempDir(), "v1", "ui-token")
	for _, repo := range []string{"team-a/app", "ops/secret"} {
		if r, err := crane("push", img.Layout, srv.Addr+"/"+repo+":v1"); err != nil {
			t.Fatalf("push %s: %v\n%s", repo, err, r.Stderr)
		}
	}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	post := func(user, pw string) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, base+"/ui/login", strings.NewReader(url.Values{"username": {user}, "password": {pw}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		resp, err := noRedirect.Do(req)
		must(t, err)
		resp.Body.Close()
		return resp
	}
	if resp := post("alice", "wrong"); resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != "" {
		t.Fatalf("wrong password: %s, WWW-Authenticate %q", resp.Status, resp.Header.Get("WWW-Authenticate"))
	}
	resp := post("alice", authUsers["alice"])
	var session *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "registryd_session" {
			session = c
		}
	}
	if resp.StatusCode != http.StatusSeeOther || session == nil {
		t.Fatalf("login: %s, cookie %v", resp.Status, session)
	}
	req, _ := http.NewRequest(http.MethodGet, base+"/ui/", nil)
	req.AddCookie(session)
	page, err := noRedirect.Do(req)
	must(t, err)
	body, _ := io.ReadAll(page.Body)
	page.Body.Close()
	if page.StatusCode != http.StatusOK || !strings.Contains(string(body), "team-a/app") || strings.Contains(string(body), "ops/secret") {
		t.Errorf("alice's catalog through the token server's users: %s\n%s", page.Status, body)
	}
}

// TestUIRetentionPreview: the maintenance page previews retention (a dry
// run that lists what it would delete and deletes nothing), then runs it.
func TestUIRetentionPreview(t *testing.T) {
	srv := startRegistryd(t,
		`REGISTRY_STORAGE_MAINTENANCE_RETENTION_POLICIES=[{repositories: ["team/**"], keeptags: [{patterns: ["^v"]}]}]`,
		"REGISTRY_STORAGE_MAINTENANCE_RETENTION_MAXSHARE=1",
		"REGISTRY_STORAGE_MAINTENANCE_RETENTION_INTERVAL=0s")
	base := "http://" + srv.Addr
	p := &uiPusher{t: t, base: base, user: "root", c: &http.Client{Timeout: time.Minute}}
	for _, tag := range []string{"v1", "old-1", "old-2"} {
		p.image("team/app", tag, "amd64", nil, nil)
	}
	ctx := chromium(t, 2*time.Minute)
	visible := func(sel string) chromedp.Action[chromedp.Void] { return chromedp.WaitVisible(chromedp.CSS(sel)) }
	do(t, ctx, "preview", chromedp.Navigate(base+"/ui/maintenance"), visible("#dryrun-retention"),
		chromedp.Click(chromedp.CSS("#dryrun-retention")), visible(`#report[data-dry="true"]`))
	report := text(t, ctx, "#report")
	if !strings.Contains(report, "preview") || !strings.Contains(report, "would delete 2 tags") || !strings.Contains(report, "old-1") || !strings.Contains(report, "old-2") || strings.Contains(report, "v1") {
		t.Errorf("dry-run report: %q", report)
	}
	screenshots(t, ctx, "maintenance")
	for _, tag := range []string{"v1", "old-1", "old-2"} {
		if !p.hasManifest("team/app", tag) {
			t.Fatalf("the dry run deleted %s", tag)
		}
	}
	do(t, ctx, "run", chromedp.Click(chromedp.CSS("#run-retention")), visible(`#report[data-dry="false"]`))
	if r := text(t, ctx, "#report"); !strings.Contains(r, "deleted 2 tags") {
		t.Errorf("run report: %q", r)
	}
	if !p.hasManifest("team/app", "v1") || p.hasManifest("team/app", "old-1") || p.hasManifest("team/app", "old-2") {
		t.Errorf("after the run: v1 %v, old-1 %v, old-2 %v", p.hasManifest("team/app", "v1"), p.hasManifest("team/app", "old-1"), p.hasManifest("team/app", "old-2"))
	}
}
