package ui

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/crypto/bcrypt"

	"github.com/registryd/registryd/auth"
	"github.com/registryd/registryd/storage"
	"github.com/registryd/registryd/storage/driver/inmemory"
)

// fixture is a UI over an in-memory registry.
type fixture struct {
	t   *testing.T
	reg *storage.Registry
	ui  *UI
	htp string // htpasswd path, when auth is on
}

func newFixture(t *testing.T, opts Options) *fixture {
	t.Helper()
	reg := storage.New(inmemory.New(), storage.Options{TombstoneRefresh: 20 * time.Millisecond})
	opts.Registry = reg
	if opts.Path == "" {
		opts.Path = "/ui/"
	}
	if opts.Version == "" {
		opts.Version = "test"
	}
	u, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, reg: reg, ui: u}
}

// htpasswdFile writes users (name -> password) as bcrypt entries.
func htpasswdFile(t *testing.T, users map[string]string) string {
	t.Helper()
	var b strings.Builder
	for u, p := range users {
		h, err := bcrypt.GenerateFromPassword([]byte(p), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(u + ":" + string(h) + "\n")
	}
	path := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// newAuthFixture is a fixture with htpasswd users and access rules.
func newAuthFixture(t *testing.T, users map[string]string, access *auth.AccessConfig, opts Options) *fixture {
	t.Helper()
	path := htpasswdFile(t, users)
	authz, _, err := auth.New(auth.Config{Htpasswd: &auth.HtpasswdConfig{Path: path}, Access: access}, nil)
	if err != nil {
		t.Fatal(err)
	}
	opts.Authorizer = authz
	f := newFixture(t, opts)
	f.htp = path
	return f
}

func (f *fixture) repo(name string) *storage.Repository {
	f.t.Helper()
	r, err := f.reg.Repository(name)
	if err != nil {
		f.t.Fatal(err)
	}
	return r
}

func (f *fixture) blob(repo string, b []byte) digest.Digest {
	f.t.Helper()
	ctx := context.Background()
	up, err := f.repo(repo).NewUpload(ctx, digest.SHA256)
	if err != nil {
		f.t.Fatal(err)
	}
	d := digest.FromBytes(b)
	if _, err := up.Commit(ctx, bytes.NewReader(b), 0, d); err != nil {
		f.t.Fatal(err)
	}
	return d
}

func (f *fixture) manifest(repo, ref, mediaType string, m any) digest.Digest {
	f.t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		f.t.Fatal(err)
	}
	got, err := f.repo(repo).PutManifest(context.Background(), ref, mediaType, b, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	return got.Digest
}

type desc struct {
	MediaType    string            `json:"mediaType"`
	Digest       digest.Digest     `json:"digest"`
	Size         int64             `json:"size"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Platform     map[string]string `json:"platform,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
}

const (
	mtManifest = "application/vnd.oci.image.manifest.v1+json"
	mtIndex    = "application/vnd.oci.image.index.v1+json"
	mtConfig   = "application/vnd.oci.image.config.v1+json"
	mtLayer    = "application/vnd.oci.image.layer.v1.tar+gzip"
)

// image pushes a one-layer image with the given labels and manifest
// annotations under ref (a tag, or "" for by digest).
func (f *fixture) image(repo, ref, arch string, labels, annotations map[string]string) (digest.Digest, int64) {
	f.t.Helper()
	layer := []byte("layer of " + repo + " " + arch + " " + ref)
	ld := f.blob(repo, layer)
	cfg, _ := json.Marshal(map[string]any{
		"architecture": arch, "os": "linux", "created": "2024-05-01T10:00:00Z",
		"config":  map[string]any{"Labels": labels, "Env": []string{"PATH=/usr/bin", "MODE=" + arch}, "Entrypoint": []string{"/bin/app"}, "Cmd": []string{"--serve"}},
		"rootfs":  map[string]any{"type": "layers", "diff_ids": []string{digest.FromBytes(layer).String()}},
		"history": []map[string]any{{"created": "2024-05-01T10:00:00Z", "created_by": "COPY app /bin/app"}, {"created_by": "CMD --serve", "empty_layer": true}},
	})
	cd := f.blob(repo, cfg)
	m := map[string]any{
		"schemaVersion": 2, "mediaType": mtManifest,
		"config":      desc{MediaType: mtConfig, Digest: cd, Size: int64(len(cfg))},
		"layers":      []desc{{MediaType: mtLayer, Digest: ld, Size: int64(len(layer))}},
		"annotations": annotations,
	}
	b, _ := json.Marshal(m)
	if ref == "" {
		ref = digest.FromBytes(b).String()
	}
	return f.manifest(repo, ref, mtManifest, m), int64(len(b))
}

// multiArch pushes an index of amd64 and arm64 images and a BuildKit
// attestation entry, tagged tag.
func (f *fixture) multiArch(repo, tag string) digest.Digest {
	f.t.Helper()
	amd, amdSize := f.image(repo, "", "amd64", nil, nil)
	arm, armSize := f.image(repo, "", "arm64", nil, nil)
	att := f.artifact(repo, "", "application/vnd.in-toto+json", "", nil)
	return f.manifest(repo, tag, mtIndex, map[string]any{
		"schemaVersion": 2, "mediaType": mtIndex,
		"manifests": []desc{
			{MediaType: mtManifest, Digest: amd, Size: amdSize, Platform: map[string]string{"os": "linux", "architecture": "amd64"}},
			{MediaType: mtManifest, Digest: arm, Size: armSize, Platform: map[string]string{"os": "linux", "architecture": "arm64", "variant": "v8"}},
			{MediaType: mtManifest, Digest: att.d, Size: att.size, Platform: map[string]string{"os": "unknown", "architecture": "unknown"},
				Annotations: map[string]string{"vnd.docker.reference.type": "attestation-manifest", "vnd.docker.reference.digest": amd.String()}},
		},
	})
}

type pushed struct {
	d    digest.Digest
	size int64
}

// artifact pushes an OCI artifact of artifactType, with subject when not
// empty, under ref ("" for by digest).
func (f *fixture) artifact(repo, ref, artifactType string, subject digest.Digest, annotations map[string]string) pushed {
	f.t.Helper()
	empty := []byte("{}")
	ed := f.blob(repo, empty)
	payload := []byte("payload " + artifactType + " " + string(subject))
	pd := f.blob(repo, payload)
	m := map[string]any{
		"schemaVersion": 2, "mediaType": mtManifest, "artifactType": artifactType,
		"config":      desc{MediaType: "application/vnd.oci.empty.v1+json", Digest: ed, Size: 2},
		"layers":      []desc{{MediaType: "application/octet-stream", Digest: pd, Size: int64(len(payload)), Annotations: map[string]string{"org.opencontainers.image.title": "payload.json"}}},
		"annotations": annotations,
	}
	if subject != "" {
		sm, err := f.repo(repo).GetManifest(context.Background(), subject.String())
		if err != nil {
			f.t.Fatal(err)
		}
		m["subject"] = desc{MediaType: sm.MediaType, Digest: subject, Size: int64(len(sm.Content))}
	}
	b, _ := json.Marshal(m)
	if ref == "" {
		ref = digest.FromBytes(b).String()
	}
	return pushed{f.manifest(repo, ref, mtManifest, m), int64(len(b))}
}

// do sends a request to the UI, with cookies and headers.
func (f *fixture) do(method, target string, form url.Values, hdr map[string]string, cookies ...*http.Cookie) *httptest.ResponseRecorder {
	f.t.Helper()
	var body *strings.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	} else {
		body = strings.NewReader("")
	}
	req := httptest.NewRequest(method, target, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	for _, c := range cookies {
		req.AddCookie(c)
	}
	w := httptest.NewRecorder()
	f.ui.ServeHTTP(w, req)
	return w
}

func (f *fixture) get(target string, cookies ...*http.Cookie) *httptest.ResponseRecorder {
	f.t.Helper()
	return f.do(http.MethodGet, target, nil, nil, cookies...)
}

// sameOrigin are the headers a browser sends with a form POST from our own page.
var sameOrigin = map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": "http://example.com"}

// login logs user in and returns the session cookie.
func (f *fixture) login(user, password string) *http.Cookie {
	f.t.Helper()
	w := f.do(http.MethodPost, "/ui/login", url.Values{"username": {user}, "password": {password}}, sameOrigin)
	if w.Code != http.StatusSeeOther {
		f.t.Fatalf("login %s: %d\n%s", user, w.Code, w.Body)
	}
	for _, c := range w.Result().Cookies() {
		if c.Name == cookieName {
			return c
		}
	}
	f.t.Fatalf("login %s: no session cookie", user)
	return nil
}

func (f *fixture) hasTag(repo, tag string) bool {
	f.t.Helper()
	_, err := f.repo(repo).GetManifest(context.Background(), tag)
	return err == nil
}
