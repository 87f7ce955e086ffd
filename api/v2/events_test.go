package v2

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/crypto/bcrypt"

	"github.com/registryd/registryd/auth"
	"github.com/registryd/registryd/notifications"
)

// TestEvents follows one image through push, pull, mount and deletes as
// an authenticated user and checks the events a webhook receives.
func TestEvents(t *testing.T) {
	var mu sync.Mutex
	var got []notifications.Event
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var env notifications.Envelope
		if err := json.NewDecoder(r.Body).Decode(&env); err != nil {
			t.Errorf("webhook body: %v", err)
		}
		mu.Lock()
		got = append(got, env.Events...)
		mu.Unlock()
	}))
	defer hook.Close()
	n := notifications.New(notifications.Config{
		Endpoints:         []notifications.EndpointConfig{{Name: "hook", URL: hook.URL}},
		Source:            notifications.Source{Addr: "registry:5000", InstanceID: "i-1"},
		IncludeReferences: true,
	}, nil, nil)

	hash, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	htpasswd := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(htpasswd, []byte("alice:"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	authz, _, err := auth.New(auth.Config{Htpasswd: &auth.HtpasswdConfig{Realm: "test", Path: htpasswd}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := newTestRegistry(t, Options{DeleteEnabled: true, Notifier: n, Authorizer: authz})
	login := func(hdr ...string) []string {
		req, _ := http.NewRequest("GET", "/", nil)
		req.SetBasicAuth("alice", "pw")
		return append([]string{"Authorization", req.Header.Get("Authorization")}, hdr...)
	}
	do := func(method, path string, body []byte, want int, hdr ...string) *http.Response {
		t.Helper()
		resp := tr.do(method, path, body, login(hdr...)...)
		if resp.StatusCode != want {
			t.Fatalf("%s %s: %d, want %d: %s", method, path, resp.StatusCode, want, readBody(t, resp))
		}
		return resp
	}

	cfg := []byte(`{"os":"linux"}`)
	layer := []byte("layer bytes")
	cd, ld := digest.FromBytes(cfg), digest.FromBytes(layer)
	do("POST", "/v2/lib/app/blobs/uploads/?digest="+cd.String(), cfg, http.StatusCreated)
	up := do("POST", "/v2/lib/app/blobs/uploads/", nil, http.StatusAccepted)
	do("PUT", up.Header.Get("Location")[len(tr.srv.URL):]+"?digest="+ld.String(), layer, http.StatusCreated)
	manifest := []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":%d}]}`,
		ociManifest, cd, len(cfg), ld, len(layer)))
	md := digest.FromBytes(manifest)
	put := do("PUT", "/v2/lib/app/manifests/v1?tag=stable", manifest, http.StatusCreated, "Content-Type", ociManifest, "User-Agent", "events-test/1.0")
	do("HEAD", "/v2/lib/app/manifests/v1", nil, http.StatusOK)      // no event
	do("GET", "/v2/lib/app/manifests/v1", nil, http.StatusOK)       // pull by tag
	do("GET", "/v2/lib/app/blobs/"+ld.String(), nil, http.StatusOK) // pull
	do("GET", "/v2/lib/app/blobs/"+ld.String(), nil, http.StatusPartialContent, "Range", "bytes=2-")
	do("HEAD", "/v2/lib/app/blobs/"+ld.String(), nil, http.StatusOK)
	do("POST", "/v2/lib/copy/blobs/uploads/?mount="+ld.String()+"&from=lib/app", nil, http.StatusCreated)
	do("DELETE", "/v2/lib/app/manifests/stable", nil, http.StatusAccepted)
	do("DELETE", "/v2/lib/app/manifests/"+md.String(), nil, http.StatusAccepted)
	do("DELETE", "/v2/lib/copy/blobs/"+ld.String(), nil, http.StatusAccepted)
	do("GET", "/v2/lib/app/manifests/v1", nil, http.StatusNotFound) // failures send nothing

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.Close(ctx); err != nil {
		t.Fatal(err)
	}

	type summary struct{ Action, MediaType, Digest, Repository, From, Tag string }
	blob := notifications.BlobMediaType
	want := []summary{
		{"push", blob, cd.String(), "lib/app", "", ""},
		{"push", blob, ld.String(), "lib/app", "", ""},
		{"push", ociManifest, md.String(), "lib/app", "", "v1"},
		{"push", ociManifest, md.String(), "lib/app", "", "stable"},
		{"pull", ociManifest, md.String(), "lib/app", "", "v1"},
		{"pull", blob, ld.String(), "lib/app", "", ""},
		{"mount", blob, ld.String(), "lib/copy", "lib/app", ""},
		{"delete", ociManifest, md.String(), "lib/app", "", "stable"},
		{"delete", "", md.String(), "lib/app", "", ""},
		{"delete", "", ld.String(), "lib/copy", "", ""},
	}
	mu.Lock()
	defer mu.Unlock()
	var sums []summary
	for _, e := range got {
		sums = append(sums, summary{e.Action, e.Target.MediaType, e.Target.Digest, e.Target.Repository, e.Target.FromRepository, e.Target.Tag})
	}
	if fmt.Sprint(sums) != fmt.Sprint(want) {
		t.Fatalf("events:\n%v\nwant\n%v", sums, want)
	}
	for _, e := range got {
		if e.Actor.Name != "alice" || e.Source.InstanceID != "i-1" || e.Request.ID == "" || e.ID == "" {
			t.Errorf("event %+v: want actor alice, the source and ids", e)
		}
	}
	push := got[2]
	if push.Request.ID != put.Header.Get(RequestIDHeader) || push.Request.Method != "PUT" || push.Request.UserAgent != "events-test/1.0" {
		t.Errorf("push request %+v; response X-Request-Id %q", push.Request, put.Header.Get(RequestIDHeader))
	}
	if push.Target.Size != int64(len(manifest)) || push.Target.Length != push.Target.Size ||
		push.Target.URL != tr.srv.URL+"/v2/lib/app/manifests/"+md.String() {
		t.Errorf("push target %+v", push.Target)
	}
	if refs := push.Target.References; len(refs) != 2 || refs[0].Digest != cd.String() || refs[1].Digest != ld.String() || refs[1].Size != int64(len(layer)) {
		t.Errorf("references %+v", refs)
	}
	if b := got[5].Target; b.Size != int64(len(layer)) || b.URL != tr.srv.URL+"/v2/lib/app/blobs/"+ld.String() {
		t.Errorf("blob pull target %+v", b)
	}
}

// Without a notifier nothing changes, and with an endpoint that is down a
// push is answered as fast as ever.
func TestEventsEndpointDown(t *testing.T) {
	n := notifications.New(notifications.Config{
		Endpoints: []notifications.EndpointConfig{{Name: "down", URL: "http://127.0.0.1:1/", Backoff: time.Hour}},
	}, nil, nil)
	tr := newTestRegistry(t, Options{Notifier: n})
	start := time.Now()
	for i := 0; i < 20; i++ {
		tr.pushBlob("lib/a", []byte(fmt.Sprint("blob ", i)))
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("20 pushes took %s with the endpoint down", d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := n.Close(ctx); err == nil {
		t.Error("Close reported every event delivered to an endpoint that is down")
	}
}
