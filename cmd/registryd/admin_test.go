package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/crypto/bcrypt"

	"github.com/registryd/registryd/api/admin"
	"github.com/registryd/registryd/config"
	"github.com/registryd/registryd/notifications"
)

// adminClient is a test client of a registry started by serve.
type adminClient struct {
	t          *testing.T
	base       string
	user, pass string
}

func (c *adminClient) as(user, pass string) *adminClient {
	return &adminClient{t: c.t, base: c.base, user: user, pass: pass}
}

type reply struct {
	status int
	body   []byte
	header http.Header
}

func (c *adminClient) do(method, path string, body []byte, hdr ...string) reply {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	if c.user != "" {
		req.SetBasicAuth(c.user, c.pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, b, resp.Header}
}

// json GETs path, expects status and decodes the body into v.
func (c *adminClient) json(path string, status int, v any) reply {
	c.t.Helper()
	r := c.do(http.MethodGet, path, nil)
	if r.status != status {
		c.t.Fatalf("GET %s: %d %s, want %d", path, r.status, r.body, status)
	}
	if v != nil {
		if err := json.Unmarshal(r.body, v); err != nil {
			c.t.Fatalf("GET %s: %v in %s", path, err, r.body)
		}
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		c.t.Fatalf("GET %s: Content-Type %q", path, ct)
	}
	return r
}

// wantError checks an OCI error body with status and code.
func wantError(t *testing.T, what string, r reply, status int, code string) {
	t.Helper()
	var body struct {
		Errors []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	if r.status != status || json.Unmarshal(r.body, &body) != nil || len(body.Errors) == 0 || body.Errors[0].Code != code {
		t.Fatalf("%s: %d %s, want %d %s", what, r.status, r.body, status, code)
	}
}

func (c *adminClient) blob(name string, content []byte) (digest.Digest, int) {
	c.t.Helper()
	d := digest.FromBytes(content)
	r := c.do(http.MethodPost, "/v2/"+name+"/blobs/uploads/?digest="+d.String(), content)
	if r.status != http.StatusCreated {
		c.t.Fatalf("push blob to %s: %d %s", name, r.status, r.body)
	}
	return d, len(content)
}

// image pushes a config naming arch and the layers and the manifest,
// under ref (a tag, or "" for by digest); it returns the manifest.
func (c *adminClient) image(name, ref, arch string, layers ...string) []byte {
	c.t.Helper()
	cfg := []byte(fmt.Sprintf(`{"architecture":%q,"os":"linux","rootfs":{"type":"layers"},"n":%q}`, arch, name+ref))
	cd, cn := c.blob(name, cfg)
	var ls []string
	for _, l := range layers {
		d, n := c.blob(name, []byte(l))
		ls = append(ls, fmt.Sprintf(`{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":%d}`, d, n))
	}
	m := []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},"layers":[%s]}`,
		cd, cn, strings.Join(ls, ",")))
	c.manifest(name, ref, "application/vnd.oci.image.manifest.v1+json", m)
	return m
}

func (c *adminClient) manifest(name, ref, mt string, m []byte) digest.Digest {
	c.t.Helper()
	d := digest.FromBytes(m)
	if ref == "" {
		ref = d.String()
	}
	r := c.do(http.MethodPut, "/v2/"+name+"/manifests/"+ref, m, "Content-Type", mt)
	if r.status != http.StatusCreated {
		c.t.Fatalf("push manifest %s:%s: %d %s", name, ref, r.status, r.body)
	}
	return d
}

func (c *adminClient) index(name, ref string, children map[string][]byte) []byte {
	c.t.Helper()
	var ms []string
	for _, arch := range slices.Sorted(func(yield func(string) bool) {
		for a := range children {
			if !yield(a) {
				return
			}
		}
	}) {
		m := children[arch]
		d := c.manifest(name, "", "application/vnd.oci.image.manifest.v1+json", m)
		ms = append(ms, fmt.Sprintf(`{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":%q,"size":%d,"platform":{"os":"linux","architecture":%q}}`, d, len(m), arch))
	}
	idx := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[` + strings.Join(ms, ",") + `]}`)
	c.manifest(name, ref, "application/vnd.oci.image.index.v1+json", idx)
	return idx
}

// nextLink returns the path of a Link rel=next header, "" without one.
func nextLink(h http.Header) string {
	l := h.Get("Link")
	if l == "" {
		return ""
	}
	i, j := strings.Index(l, "<"), strings.Index(l, ">")
	if i < 0 || j < i || !strings.HasSuffix(l, `rel="next"`) {
		return "bad link " + l
	}
	return l[i+1 : j]
}

func adminConfig(t *testing.T) *config.Config {
	cfg := config.Default()
	cfg.HTTP.Addr = freeAddr(t)
	cfg.Storage.Driver = "filesystem"
	cfg.Storage.Filesystem.RootDirectory = t.TempDir()
	cfg.Storage.Delete.Enabled = true
	cfg.Storage.Maintenance.PullTimes.Interval = 50 * time.Millisecond
	return cfg
}

// Every endpoint of the admin API through serve's wiring, without auth:
// documents, pagination, sorting, sizes, bad input, errors.
func TestAdminAPI(t *testing.T) {
	var mu sync.Mutex
	var events []notifications.Event
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var env notifications.Envelope
		_ = json.NewDecoder(r.Body).Decode(&env)
		mu.Lock()
		events = append(events, env.Events...)
		mu.Unlock()
	}))
	defer hook.Close()
	cfg := adminConfig(t)
	cfg.Notifications.Endpoints = []config.Endpoint{{Name: "hook", URL: hook.URL, Timeout: time.Second, Threshold: 3, Backoff: 10 * time.Millisecond}}
	c := &adminClient{t: t, base: startServe(t, cfg)}

	// team/app: an index of two platforms (v1, latest) and an image (v2);
	// team/lib shares a layer; other has its own.
	amd := c.image("team/app", "", "amd64", "shared layer", "amd64 layer")
	arm := c.image("team/app", "", "arm64", "shared layer", "arm64 layer")
	idx := c.index("team/app", "v1", map[string][]byte{"amd64": amd, "arm64": arm})
	c.manifest("team/app", "latest", "application/vnd.oci.image.index.v1+json", idx)
	time.Sleep(20 * time.Millisecond)
	v2 := c.image("team/app", "v2", "amd64", "shared layer", "v2 layer")
	c.image("team/lib", "1.0", "amd64", "shared layer", "lib layer")
	c.image("other", "x", "amd64", "other layer")
	_ = v2

	// Discovery and info.
	var disc admin.Discovery
	c.json(admin.DiscoverPath, 200, &disc)
	if len(disc.Extensions) != 1 || disc.Extensions[0].Name != "_registryd" || disc.Extensions[0].Endpoints[0] != "_registryd/v1" {
		t.Fatalf("discovery %+v", disc)
	}
	var info admin.Info
	c.json(admin.Prefix, 200, &info)
	if info.Version != 1 || !info.Features.DeleteEnabled || !info.Features.PullTimes || !info.Features.PushTimes || !info.Features.Sizes ||
		info.Features.GC || info.Features.Retention || !info.Caller.Admin {
		t.Fatalf("info %+v", info)
	}

	// Repositories: pages of one, following Link.
	var got []admin.Repository
	next := admin.Prefix + "/repositories?n=1"
	for i := 0; next != ""; i++ {
		var page admin.RepositoryList
		r := c.json(next, 200, &page)
		got = append(got, page.Repositories...)
		next = nextLink(r.header)
		if i > 10 {
			t.Fatal("no end to the pages")
		}
	}
	var names []string
	for _, r := range got {
		names = append(names, r.Name)
	}
	if !slices.Equal(names, []string{"other", "team/app", "team/lib"}) {
		t.Fatalf("repositories %v", names)
	}
	app := got[1]
	// Four manifests: the index, its two children and v2.
	if app.TagCount != 3 || app.Manifests != 4 || app.LastPushed == nil || app.Size == nil || app.Size.Unique <= 0 || app.Size.Exclusive >= app.Size.Unique || app.Size.Logical < app.Size.Unique {
		t.Fatalf("team/app %+v %+v", app, app.Size)
	}
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"prefix=team/", []string{"team/app", "team/lib"}},
		{"prefix=team/a", []string{"team/app"}},
		{"q=LIB", []string{"team/lib"}},
		{"q=t&prefix=o", []string{"other"}},
		{"prefix=nothing", nil},
		{"n=5000", []string{"other", "team/app", "team/lib"}},
	} {
		var page admin.RepositoryList
		c.json(admin.Prefix+"/repositories?"+tc.query, 200, &page)
		var ns []string
		for _, r := range page.Repositories {
			ns = append(ns, r.Name)
		}
		if !slices.Equal(ns, tc.want) {
			t.Errorf("%s: %v, want %v", tc.query, ns, tc.want)
		}
		if page.Repositories == nil {
			t.Errorf("%s: repositories is null, not []", tc.query)
		}
	}
	wantError(t, "n=abc", c.do("GET", admin.Prefix+"/repositories?n=abc", nil), 400, "PAGINATION_NUMBER_INVALID")
	wantError(t, "n=-1", c.do("GET", admin.Prefix+"/repositories?n=-1", nil), 400, "PAGINATION_NUMBER_INVALID")

	// One repository.
	var one admin.Repository
	c.json(admin.Prefix+"/repositories/team/app", 200, &one)
	if one.Name != "team/app" || one.TagCount != 3 || *one.Size != *app.Size {
		t.Fatalf("one %+v", one)
	}
	c.json(admin.Prefix+"/repositories/team%2Fapp", 200, &one)
	wantError(t, "unknown repository", c.do("GET", admin.Prefix+"/repositories/no/such", nil), 404, "NAME_UNKNOWN")
	wantError(t, "namespace", c.do("GET", admin.Prefix+"/repositories/team", nil), 404, "NAME_UNKNOWN")
	wantError(t, "bad name", c.do("GET", admin.Prefix+"/repositories/Team/App", nil), 400, "NAME_INVALID")
	wantError(t, "dot dot", c.do("GET", admin.Prefix+"/repositories/team/../other", nil), 400, "NAME_INVALID")
	wantError(t, "encoded junk", c.do("GET", admin.Prefix+"/repositories/team%00x", nil), 400, "NAME_INVALID")

	// Tags, with a pull recorded first.
	if r := c.do("GET", "/v2/team/app/manifests/v1", nil, "Accept", "application/vnd.oci.image.index.v1+json"); r.status != 200 {
		t.Fatalf("pull: %d", r.status)
	}
	var tl admin.TagList
	c.json(admin.Prefix+"/repositories/team/app/tags", 200, &tl)
	if tl.Name != "team/app" || len(tl.Tags) != 3 || tl.Tags[0].Name != "latest" || tl.Tags[1].Name != "v1" || tl.Tags[2].Name != "v2" {
		t.Fatalf("tags %+v", tl)
	}
	v1 := tl.Tags[1]
	if v1.Digest != digest.FromBytes(idx).String() || v1.MediaType != "application/vnd.oci.image.index.v1+json" ||
		!slices.Equal(v1.Platforms, []string{"linux/amd64", "linux/arm64"}) || v1.Size <= int64(len(idx)) ||
		v1.Pushed == nil || v1.LastPulled == nil || tl.Tags[2].LastPulled != nil || !slices.Equal(tl.Tags[2].Platforms, []string{"linux/amd64"}) {
		t.Fatalf("v1 %+v / v2 %+v", v1, tl.Tags[2])
	}
	// By push time, newest first, a page at a time.
	var order []string
	next = admin.Prefix + "/repositories/team/app/tags?sort=pushed&n=2"
	for i := 0; next != ""; i++ {
		var page admin.TagList
		r := c.json(next, 200, &page)
		for _, tg := range page.Tags {
			order = append(order, tg.Name)
		}
		next = nextLink(r.header)
		if i > 5 {
			t.Fatal("no end to the pages")
		}
	}
	if len(order) != 3 || order[0] != "v2" {
		t.Fatalf("by push time: %v", order)
	}
	wantError(t, "sort", c.do("GET", admin.Prefix+"/repositories/team/app/tags?sort=size", nil), 400, "UNSUPPORTED")
	wantError(t, "tags of unknown", c.do("GET", admin.Prefix+"/repositories/no/such/tags", nil), 404, "NAME_UNKNOWN")

	// Impact of deleting the index: its two tags, no referrers, and the
	// bytes only it holds (its own manifest: the children are revisions).
	var imp admin.Impact
	c.json(admin.Prefix+"/repositories/team/app/manifests/"+digest.FromBytes(idx).String()+"/impact", 200, &imp)
	if imp.Digest != digest.FromBytes(idx).String() || !slices.Equal(imp.Tags, []string{"latest", "v1"}) || imp.Referrers == nil || imp.Exclusive != int64(len(idx)) {
		t.Fatalf("impact %+v", imp)
	}
	wantError(t, "impact bad digest", c.do("GET", admin.Prefix+"/repositories/team/app/manifests/sha256:zz/impact", nil), 400, "DIGEST_INVALID")
	wantError(t, "impact unknown", c.do("GET", admin.Prefix+"/repositories/team/app/manifests/"+digest.FromString("x").String()+"/impact", nil), 404, "MANIFEST_UNKNOWN")

	// Usage.
	var u admin.Usage
	c.json(admin.Prefix+"/usage", 200, &u)
	if u.Repositories != 3 || u.Unique <= 0 || u.Exclusive != u.Unique || u.Total < u.Unique {
		t.Fatalf("usage %+v", u)
	}
	var ut admin.Usage
	c.json(admin.Prefix+"/usage?prefix=team/", 200, &ut)
	if ut.Prefix != "team/" || ut.Repositories != 2 || ut.Exclusive >= u.Unique || ut.Exclusive <= 0 {
		t.Fatalf("usage team/ %+v", ut)
	}

	// GC and retention are off here: they say so.
	for _, kind := range []string{"gc", "retention"} {
		var st admin.Maintenance
		c.json(admin.Prefix+"/"+kind, 200, &st)
		if st.Enabled || st.Runs == nil {
			t.Fatalf("%s: %+v", kind, st)
		}
		wantError(t, "POST "+kind, c.do("POST", admin.Prefix+"/"+kind+"?dryrun=true", nil), 405, "UNSUPPORTED")
		wantError(t, "POST "+kind+" bad", c.do("POST", admin.Prefix+"/"+kind+"?dryrun=maybe", nil), 400, "UNSUPPORTED")
	}

	// Unknown endpoints and methods.
	wantError(t, "unknown", c.do("GET", admin.Prefix+"/nothing", nil), 404, "UNSUPPORTED")
	wantError(t, "method", c.do("PUT", admin.Prefix+"/repositories/team/app", nil), 405, "UNSUPPORTED")
	wantError(t, "method info", c.do("POST", admin.Prefix, nil), 405, "UNSUPPORTED")
	wantError(t, "v3", c.do("GET", "/v2/_registryd/v2/repositories", nil), 404, "UNSUPPORTED")

	// Repository delete: 202, the catalog and tags/list forget it, a
	// second delete is NAME_UNKNOWN, the event is sent, the others pull.
	r := c.do("DELETE", admin.Prefix+"/repositories/team/app", nil)
	var del admin.RepositoryDeleted
	if r.status != 202 || json.Unmarshal(r.body, &del) != nil || del != (admin.RepositoryDeleted{Name: "team/app", Tags: 3, Manifests: 4}) {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	var cat struct{ Repositories []string }
	if json.Unmarshal(c.do("GET", "/v2/_catalog", nil).body, &cat); !slices.Equal(cat.Repositories, []string{"other", "team/lib"}) {
		t.Fatalf("catalog after delete %v", cat.Repositories)
	}
	wantError(t, "tags/list after delete", c.do("GET", "/v2/team/app/tags/list", nil), 404, "NAME_UNKNOWN")
	wantError(t, "second delete", c.do("DELETE", admin.Prefix+"/repositories/team/app", nil), 404, "NAME_UNKNOWN")
	wantError(t, "delete bad name", c.do("DELETE", admin.Prefix+"/repositories/x//y", nil), 400, "NAME_INVALID")
	if r := c.do("GET", "/v2/team/lib/manifests/1.0", nil); r.status != 200 {
		t.Fatalf("team/lib after the delete: %d", r.status)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		found := slices.ContainsFunc(events, func(e notifications.Event) bool {
			return e.Action == "delete" && e.Target.Repository == "team/app" && e.Target.Digest == "" && e.Target.Tag == ""
		})
		mu.Unlock()
		if found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no repository delete event")
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.json(admin.Prefix+"/usage", 200, &u)
	if u.Repositories != 2 {
		t.Fatalf("usage after delete %+v", u)
	}
}

// Deletes disabled, or read-only: 405 UNSUPPORTED, nothing deleted.
func TestAdminDeleteGated(t *testing.T) {
	for _, mode := range []string{"disabled", "readonly"} {
		t.Run(mode, func(t *testing.T) {
			cfg := adminConfig(t)
			dir := cfg.Storage.Filesystem.RootDirectory
			c := &adminClient{t: t, base: startServe(t, cfg)}
			c.image("a", "v1", "amd64", "l")
			if mode == "disabled" {
				cfg2 := adminConfig(t)
				cfg2.Storage.Filesystem.RootDirectory = dir
				cfg2.Storage.Delete.Enabled = false
				c = &adminClient{t: t, base: startServe(t, cfg2)}
			} else {
				cfg2 := adminConfig(t)
				cfg2.Storage.Filesystem.RootDirectory = dir
				cfg2.Storage.Maintenance.ReadOnly.Enabled = true
				c = &adminClient{t: t, base: startServe(t, cfg2)}
			}
			wantError(t, "delete", c.do("DELETE", admin.Prefix+"/repositories/a", nil), 405, "UNSUPPORTED")
			if r := c.do("GET", "/v2/a/manifests/v1", nil); r.status != 200 {
				t.Fatalf("a after a refused delete: %d", r.status)
			}
		})
	}
}

// With htpasswd and access rules: lists are filtered by pull, reads need
// pull, deletes need delete, usage of the registry and GC need admin.
func TestAdminAPIAccess(t *testing.T) {
	dir := t.TempDir()
	var lines []string
	for _, u := range []string{"alice", "bob", "ops"} {
		h, err := bcrypt.GenerateFromPassword([]byte(u+"-pw"), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, u+":"+string(h))
	}
	htpasswd := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(htpasswd, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := adminConfig(t)
	cfg.Auth.Htpasswd = &config.AuthHtpasswd{Realm: "admin-test", Path: htpasswd}
	cfg.Access = &config.Access{Rules: []config.AccessRule{
		{Repositories: []string{"team/**"}, Users: []string{"alice"}, Actions: []string{"pull"}},
		{Repositories: []string{"team/**"}, Users: []string{"bob"}, Actions: []string{"pull", "push", "delete"}},
		{Repositories: []string{"**"}, Users: []string{"ops"}, Actions: []string{"pull", "push", "admin"}},
	}}
	anon := &adminClient{t: t, base: startServe(t, cfg)}
	alice, bob, ops := anon.as("alice", "alice-pw"), anon.as("bob", "bob-pw"), anon.as("ops", "ops-pw")
	ops.image("team/a", "v1", "amd64", "l1")
	ops.image("team/b", "v1", "amd64", "l2")
	ops.image("private", "v1", "amd64", "l3")

	r := anon.do("GET", admin.Prefix, nil)
	wantError(t, "anonymous info", r, 401, "UNAUTHORIZED")
	if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Basic ") {
		t.Fatalf("challenge %q", r.header.Get("WWW-Authenticate"))
	}
	wantError(t, "anonymous discovery", anon.do("GET", admin.DiscoverPath, nil), 401, "UNAUTHORIZED")
	wantError(t, "wrong password", alice.as("alice", "nope").do("GET", admin.Prefix, nil), 401, "UNAUTHORIZED")

	var info admin.Info
	alice.json(admin.Prefix, 200, &info)
	if info.Caller.Name != "alice" || info.Caller.Admin {
		t.Fatalf("alice info %+v", info.Caller)
	}
	ops.json(admin.Prefix, 200, &info)
	if !info.Caller.Admin {
		t.Fatalf("ops info %+v", info.Caller)
	}
	var page admin.RepositoryList
	alice.json(admin.Prefix+"/repositories", 200, &page)
	if len(page.Repositories) != 2 || page.Repositories[0].Name != "team/a" {
		t.Fatalf("alice lists %+v", page)
	}
	ops.json(admin.Prefix+"/repositories", 200, &page)
	if len(page.Repositories) != 3 {
		t.Fatalf("ops lists %+v", page)
	}
	alice.json(admin.Prefix+"/repositories/team/a", 200, nil)
	alice.json(admin.Prefix+"/repositories/team/a/tags", 200, nil)
	wantError(t, "alice private", alice.do("GET", admin.Prefix+"/repositories/private", nil), 403, "DENIED")
	wantError(t, "alice private tags", alice.do("GET", admin.Prefix+"/repositories/private/tags", nil), 403, "DENIED")
	// A repository that does not exist is denied, not unknown: names are
	// not leaked.
	wantError(t, "alice unknown", alice.do("GET", admin.Prefix+"/repositories/nope", nil), 403, "DENIED")
	wantError(t, "alice usage", alice.do("GET", admin.Prefix+"/usage", nil), 403, "DENIED")
	alice.json(admin.Prefix+"/usage?prefix=team/", 200, nil)
	wantError(t, "alice usage of all", alice.do("GET", admin.Prefix+"/usage?prefix=p", nil), 403, "DENIED")
	wantError(t, "alice gc", alice.do("GET", admin.Prefix+"/gc", nil), 403, "DENIED")
	wantError(t, "alice retention run", alice.do("POST", admin.Prefix+"/retention?dryrun=true", nil), 403, "DENIED")
	wantError(t, "alice delete", alice.do("DELETE", admin.Prefix+"/repositories/team/a", nil), 403, "DENIED")
	wantError(t, "ops delete (no delete action)", ops.do("DELETE", admin.Prefix+"/repositories/team/a", nil), 403, "DENIED")
	wantError(t, "anonymous delete", anon.do("DELETE", admin.Prefix+"/repositories/team/a", nil), 401, "UNAUTHORIZED")
	ops.json(admin.Prefix+"/usage", 200, nil)
	ops.json(admin.Prefix+"/gc", 200, nil)
	if r := bob.do("DELETE", admin.Prefix+"/repositories/team/a", nil); r.status != 202 {
		t.Fatalf("bob delete: %d %s", r.status, r.body)
	}
	wantError(t, "bob deletes outside", bob.do("DELETE", admin.Prefix+"/repositories/private", nil), 403, "DENIED")
}

// With registryd's token server: the admin endpoints challenge for the
// scope registry:catalog:admin, which the server grants to admins only.
func TestAdminAPITokenScope(t *testing.T) {
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	keyPath := filepath.Join(dir, "token.key")
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, u := range []string{"alice", "ops"} {
		h, _ := bcrypt.GenerateFromPassword([]byte(u+"-pw"), bcrypt.MinCost)
		lines = append(lines, u+":"+string(h))
	}
	htpasswd := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(htpasswd, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := adminConfig(t)
	base := "http://" + cfg.HTTP.Addr
	cfg.Auth.Htpasswd = &config.AuthHtpasswd{Realm: "admin-token", Path: htpasswd}
	cfg.Auth.Token = &config.AuthToken{Realm: base + "/auth/token", Service: "admin-test", Issuer: "admin-test"}
	cfg.Auth.TokenServer = &config.AuthTokenServer{Path: "/auth/token", Key: keyPath}
	cfg.Access = &config.Access{Rules: []config.AccessRule{
		{Repositories: []string{"**"}, Users: []string{"alice"}, Actions: []string{"pull"}},
		{Repositories: []string{"**"}, Users: []string{"ops"}, Actions: []string{"pull", "admin"}},
	}}
	c := &adminClient{t: t, base: startServe(t, cfg)}

	r := c.do("GET", admin.Prefix+"/gc", nil)
	wantError(t, "no token", r, 401, "UNAUTHORIZED")
	if ch := r.header.Get("WWW-Authenticate"); !strings.Contains(ch, `scope="registry:catalog:admin"`) {
		t.Fatalf("challenge %q", ch)
	}
	token := func(user string) string {
		req, _ := http.NewRequest("GET", base+"/auth/token?service=admin-test&scope=registry:catalog:admin", nil)
		req.SetBasicAuth(user, user+"-pw")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var tb struct {
			Token string `json:"token"`
		}
		if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&tb) != nil {
			t.Fatalf("token for %s: %d", user, resp.StatusCode)
		}
		return tb.Token
	}
	for _, tc := range []struct {
		user   string
		status int
	}{{"ops", 200}, {"alice", 401}} {
		r := c.do("GET", admin.Prefix+"/gc", nil, "Authorization", "Bearer "+token(tc.user))
		if r.status != tc.status {
			t.Fatalf("%s's token: %d %s", tc.user, r.status, r.body)
		}
		if tc.status == 401 && !strings.Contains(r.header.Get("WWW-Authenticate"), `error="insufficient_scope"`) {
			t.Fatalf("%s: challenge %q", tc.user, r.header.Get("WWW-Authenticate"))
		}
	}
}
