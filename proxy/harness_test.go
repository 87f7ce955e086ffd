package proxy_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	mrand "math/rand"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/crypto/bcrypt"

	v2 "github.com/registryd/registryd/api/v2"
	"github.com/registryd/registryd/auth"
	"github.com/registryd/registryd/internal/httpmux"
	"github.com/registryd/registryd/proxy"
	"github.com/registryd/registryd/storage"
	"github.com/registryd/registryd/storage/driver/inmemory"
)

// The tests run a real registryd API handler as the upstream (in-process,
// over in-memory storage) behind a recorder that counts what it served
// and can be told to misbehave, and a second one as the mirror. The
// end-to-end tests (e2e/proxy_test.go) do the same with processes.

// upstreamServer is an upstream registry with a request log and faults.
type upstreamServer struct {
	*httptest.Server
	reg *storage.Registry

	mu  sync.Mutex
	log []string // "METHOD kind path" of every request served
	// fault, when set, sees every request first; it answers it (true) or
	// lets the registry do (false). next is the registry, for faults that
	// wrap its answer.
	fault func(w http.ResponseWriter, r *http.Request, next http.Handler) bool
	auths []string // Authorization headers seen on /v2/ requests
}

// kind classifies a path for counting.
func kind(path string) string {
	switch {
	case strings.HasPrefix(path, "/auth/"):
		return "token"
	case strings.Contains(path, "/manifests/"):
		return "manifest"
	case strings.Contains(path, "/blobs/"):
		return "blob"
	case strings.HasSuffix(path, "/tags/list"):
		return "tags"
	}
	return "other"
}

// count returns how many requests of method and kind the upstream served
// ("" matches any).
func (u *upstreamServer) count(method, k string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	n := 0
	for _, l := range u.log {
		f := strings.Fields(l)
		if (method == "" || f[0] == method) && (k == "" || f[1] == k) {
			n++
		}
	}
	return n
}

func (u *upstreamServer) reset() {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.log = nil
	u.auths = nil
}

func (u *upstreamServer) requests() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.log...)
}

func (u *upstreamServer) setFault(f func(w http.ResponseWriter, r *http.Request, next http.Handler) bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.fault = f
}

type upstreamOpts struct {
	token bool // Docker token flow with registryd's issuer; bob may pull private/**, anyone public/**
	basic bool // HTTP Basic (htpasswd) with the same rules
}

const (
	upUser = "bob"
	upPass = "bob-upstream-pw"
)

func startUpstream(t *testing.T, o upstreamOpts) *upstreamServer {
	t.Helper()
	reg := storage.New(inmemory.New(), storage.Options{})
	u := &upstreamServer{reg: reg}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	var authz auth.Authorizer
	var tokens http.Handler
	if o.token || o.basic {
		dir := t.TempDir()
		h, _ := bcrypt.GenerateFromPassword([]byte(upPass), bcrypt.MinCost)
		htp := filepath.Join(dir, "htpasswd")
		must(t, os.WriteFile(htp, []byte(upUser+":"+string(h)+"\n"), 0o600))
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		der, _ := x509.MarshalPKCS8PrivateKey(k)
		keyPath := filepath.Join(dir, "key.pem")
		must(t, os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600))
		cfg := auth.Config{
			Htpasswd: &auth.HtpasswdConfig{Realm: "up", Path: htp},
			Access: &auth.AccessConfig{
				Rules:     []auth.Rule{{Repositories: []string{"private/**"}, Users: []string{upUser}, Actions: []string{"pull"}}},
				Anonymous: []auth.AnonymousRule{{Repositories: []string{"public/**"}, Actions: []string{"pull"}}},
			},
		}
		if o.token {
			cfg.Token = &auth.TokenConfig{Realm: base + "/auth/token", Service: "upstream", Issuer: "upstream-issuer"}
			cfg.Issuer = &auth.IssuerConfig{Key: keyPath}
		}
		authz, tokens, err = auth.New(cfg, nil)
		must(t, err)
	}
	api := v2.NewHandler(reg, v2.Options{Authorizer: authz, DeleteEnabled: true})
	mux := httpmux.New()
	if tokens != nil {
		mux.Handle("/auth/token", tokens)
	}
	mux.Handle("/", api)
	root := v2.Middleware(mux, nil)
	u.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		line := r.Method + " " + kind(r.URL.Path) + " " + r.URL.RequestURI()
		if rg := r.Header.Get("Range"); rg != "" {
			line += " " + rg
		}
		u.log = append(u.log, line)
		if strings.HasPrefix(r.URL.Path, "/v2/") {
			u.auths = append(u.auths, r.Header.Get("Authorization"))
		}
		fault := u.fault
		u.mu.Unlock()
		if fault != nil && fault(w, r, root) {
			return
		}
		root.ServeHTTP(w, r)
	}))
	u.Server.Listener.Close()
	u.Server.Listener = ln
	u.Server.Start()
	t.Cleanup(u.Server.Close)
	return u
}

// image is content pushed to the upstream.
type image struct {
	repo, tag string
	manifest  []byte
	digest    digest.Digest
	blobs     map[digest.Digest][]byte
	layer     digest.Digest
}

// push stores an image (a config and one layer of size bytes, random from
// seed) in the upstream's storage.
func (u *upstreamServer) push(t *testing.T, repo, tag string, size int, seed int64) image {
	t.Helper()
	ctx := context.Background()
	r, err := u.reg.Repository(repo)
	must(t, err)
	layer := make([]byte, size)
	mrand.New(mrand.NewSource(seed)).Read(layer)
	cfg := []byte(fmt.Sprintf(`{"architecture":"amd64","os":"linux","seed":%d}`, seed))
	img := image{repo: repo, tag: tag, blobs: map[digest.Digest][]byte{}}
	for _, b := range [][]byte{cfg, layer} {
		d := digest.FromBytes(b)
		up, err := r.NewUpload(ctx, digest.SHA256)
		must(t, err)
		_, err = up.Commit(ctx, bytes.NewReader(b), -1, d)
		must(t, err)
		img.blobs[d] = b
	}
	img.layer = digest.FromBytes(layer)
	m := map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest.FromBytes(cfg), "size": len(cfg)},
		"layers":        []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": img.layer, "size": size}},
	}
	img.manifest, _ = json.Marshal(m)
	got, err := r.PutManifest(ctx, tag, "application/vnd.oci.image.manifest.v1+json", img.manifest, nil)
	must(t, err)
	img.digest = got.Digest
	return img
}

// mirror is a registryd API with a proxy in front of its storage.
type mirror struct {
	*httptest.Server
	reg   *storage.Registry
	p     *proxy.Proxy
	clock *clock
}

// clock is a settable time for revalidation and breaker windows.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func startMirror(t *testing.T, opts proxy.Options) *mirror {
	t.Helper()
	c := &clock{t: time.Now()}
	reg := storage.New(inmemory.New(), storage.Options{Now: c.now, TrackPulls: true})
	if opts.Now == nil {
		opts.Now = c.now
	}
	if opts.SpoolDir == "" {
		opts.SpoolDir = t.TempDir()
	}
	for i := range opts.Upstreams {
		if opts.Upstreams[i].Timeout == 0 {
			opts.Upstreams[i].Timeout = 30 * time.Second
		}
		if opts.Upstreams[i].Revalidate == 0 {
			opts.Upstreams[i].Revalidate = time.Minute
		}
	}
	p, err := proxy.New(reg, opts)
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	p.Run(ctx)
	t.Cleanup(func() { cancel(); p.Close() })
	api := v2.Middleware(v2.NewHandler(reg, v2.Options{Mirror: p, DeleteEnabled: true}), nil)
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	return &mirror{Server: srv, reg: reg, p: p, clock: c}
}

// single is distribution's proxy.remoteurl mode over u.
func single(u *upstreamServer) proxy.Options {
	return proxy.Options{All: true, Upstreams: []proxy.UpstreamConfig{{Name: strings.TrimPrefix(u.URL, "http://"), URL: u.URL, NotRoutable: true}}}
}

type result struct {
	status int
	header http.Header
	body   []byte
	err    error
}

func do(t *testing.T, method, url string, h http.Header) result {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	must(t, err)
	for k, vs := range h {
		req.Header[k] = vs
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return result{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return result{status: resp.StatusCode, header: resp.Header, body: b, err: err}
}

var accept = http.Header{"Accept": {"application/vnd.oci.image.manifest.v1+json", "application/vnd.oci.image.index.v1+json",
	"application/vnd.docker.distribution.manifest.v2+json", "application/vnd.docker.distribution.manifest.list.v2+json"}}

// pull GETs the manifest by tag and every blob, checking the bytes.
func pull(t *testing.T, m *mirror, name string, img image) {
	t.Helper()
	r := do(t, "GET", m.URL+"/v2/"+name+"/manifests/"+img.tag, accept)
	if r.err != nil || r.status != 200 || !bytes.Equal(r.body, img.manifest) || r.header.Get("Docker-Content-Digest") != img.digest.String() {
		t.Fatalf("GET manifest %s:%s: %d %v %s", name, img.tag, r.status, r.err, r.body)
	}
	for d, b := range img.blobs {
		r := do(t, "GET", m.URL+"/v2/"+name+"/blobs/"+d.String(), nil)
		if r.err != nil || r.status != 200 || !bytes.Equal(r.body, b) {
			t.Fatalf("GET blob %s of %s: %d %v (%d bytes, want %d)", d, name, r.status, r.err, len(r.body), len(b))
		}
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// httptestServer serves h for the test, returning its URL.
func httptestServer(t *testing.T, h http.Handler) string {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

func (m *mirror) fillsInFlight() int { return m.p.FillsInFlight() }

// cacheRepo is a repository of the mirror's storage.
func (m *mirror) cacheRepo(t *testing.T, name string) *storage.Repository {
	t.Helper()
	r, err := m.reg.Repository(name)
	must(t, err)
	return r
}
