package proxy_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/registryd/registryd/proxy"
)

// Several upstreams in one instance: chosen by ?ns=, by a first path
// component naming one, or as the default; each cached under its own
// namespace; Docker Hub's aliases and library/; hosted repositories beside.
func TestRouting(t *testing.T) {
	hub := startUpstream(t, upstreamOpts{})
	ghcr := startUpstream(t, upstreamOpts{})
	alpine := hub.push(t, "library/alpine", "3", 4<<10, 40)
	hubApp := hub.push(t, "org/app", "v1", 4<<10, 41)
	ghApp := ghcr.push(t, "org/app", "v1", 4<<10, 42) // same name, other content
	hubOnly := true
	m := startMirror(t, proxy.Options{
		Upstreams: []proxy.UpstreamConfig{
			{Name: "docker.io", URL: hub.URL, Namespace: "docker.io", Library: &hubOnly},
			{Name: "ghcr.io", URL: ghcr.URL, Namespace: "ghcr.io", Aliases: []string{"ghcr"}},
		},
		Default: "docker.io",
		Hosted:  []string{"team/**"},
	})
	get := func(path string) result { return do(t, "GET", m.URL+path, accept) }

	cases := []struct {
		path string
		want image
		ns   string
	}{
		{"/v2/alpine/manifests/3", alpine, ""},                               // default upstream, library/
		{"/v2/library/alpine/manifests/3", alpine, ""},                       // as dockerd sends it
		{"/v2/library/alpine/manifests/3?ns=docker.io", alpine, "docker.io"}, // containerd
		{"/v2/library/alpine/manifests/3?ns=registry-1.docker.io", alpine, "registry-1.docker.io"},
		{"/v2/docker.io/library/alpine/manifests/3", alpine, ""}, // path prefix (podman, override_path)
		{"/v2/org/app/manifests/v1", hubApp, ""},
		{"/v2/org/app/manifests/v1?ns=ghcr.io", ghApp, "ghcr.io"},
		{"/v2/ghcr.io/org/app/manifests/v1", ghApp, ""},
		{"/v2/ghcr/org/app/manifests/v1", ghApp, ""},
	}
	for _, tc := range cases {
		r := get(tc.path)
		if r.status != 200 || !bytes.Equal(r.body, tc.want.manifest) || r.header.Get("OCI-Namespace") != tc.ns {
			t.Errorf("%s: %d OCI-Namespace %q: %s", tc.path, r.status, r.header.Get("OCI-Namespace"), r.body)
		}
	}
	// Each upstream's content lives under its namespace; one fetch served
	// every spelling of a name.
	for name, img := range map[string]image{"docker.io/library/alpine": alpine, "docker.io/org/app": hubApp, "ghcr.io/org/app": ghApp} {
		got, err := m.cacheRepo(t, name).GetManifest(t.Context(), img.tag)
		if err != nil || got.Digest != img.digest {
			t.Errorf("cache repository %s: %v", name, err)
		}
	}
	if n := hub.count("GET", "manifest"); n != 2 {
		t.Errorf("docker.io served %d manifest GETs, want 2 (alpine and org/app): %v", n, hub.requests())
	}
	// A blob by ns, the catalog of cached repositories.
	r := do(t, "GET", m.URL+"/v2/org/app/blobs/"+ghApp.layer.String()+"?ns=ghcr.io", nil)
	if r.status != 200 || !bytes.Equal(r.body, ghApp.blobs[ghApp.layer]) {
		t.Errorf("blob by ns: %d", r.status)
	}

	// ns names only configured upstreams.
	r = get("/v2/org/app/manifests/v1?ns=evil.example.com")
	if r.status != 404 || !strings.Contains(string(r.body), "NAME_UNKNOWN") {
		t.Errorf("unknown ns: %d %s", r.status, r.body)
	}
	// Hosted beside cached: team/** is pushable; cached namespaces are not.
	r = do(t, "POST", m.URL+"/v2/team/tool/blobs/uploads/", nil)
	if r.status != http.StatusAccepted {
		t.Errorf("push to a hosted repository: %d %s", r.status, r.body)
	}
	for _, p := range []string{"/v2/docker.io/x/blobs/uploads/", "/v2/ghcr.io/x/blobs/uploads/", "/v2/other/blobs/uploads/", "/v2/x/blobs/uploads/?ns=ghcr.io"} {
		if r := do(t, "POST", m.URL+p, nil); r.status != http.StatusMethodNotAllowed {
			t.Errorf("push %s: %d, want 405", p, r.status)
		}
	}
	// tags/list comes from the upstream, under the client's name.
	r = do(t, "GET", m.URL+"/v2/org/app/tags/list?ns=ghcr.io", nil)
	if r.status != 200 || string(r.body) != `{"name":"org/app","tags":["v1"]}` {
		t.Errorf("tags: %d %s", r.status, r.body)
	}
}

// Without a default upstream, names that name no upstream are hosted.
func TestRoutingNoDefault(t *testing.T) {
	ghcr := startUpstream(t, upstreamOpts{})
	img := ghcr.push(t, "org/app", "v1", 1<<10, 43)
	m := startMirror(t, proxy.Options{Upstreams: []proxy.UpstreamConfig{{Name: "ghcr.io", URL: ghcr.URL, Namespace: "cache/ghcr"}}})
	pull(t, m, "ghcr.io/org/app", img)
	pull(t, m, "cache/ghcr/org/app", img) // the namespace itself is the cache too
	if r := do(t, "POST", m.URL+"/v2/org/app/blobs/uploads/", nil); r.status != http.StatusAccepted {
		t.Errorf("hosted push: %d", r.status)
	}
	if r := do(t, "GET", m.URL+"/v2/org/app/manifests/v1", accept); r.status != 404 {
		t.Errorf("hosted repository answered from an upstream: %d", r.status)
	}
}
