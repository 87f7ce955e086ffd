package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// webhook is a notification receiver on 127.0.0.1 that can go down and
// come back on the same address.
type webhook struct {
	t    *testing.T
	addr string
	mu   sync.Mutex
	srv  *http.Server
	got  []hookEvent
	hdrs []http.Header
}

// hookEvent is what the test reads of an event: the fields a webhook
// consumer relies on.
type hookEvent struct {
	ID        string `json:"id"`
	Timestamp string `json:"timestamp"`
	Action    string `json:"action"`
	Target    struct {
		MediaType  string `json:"mediaType"`
		Size       int64  `json:"size"`
		Digest     string `json:"digest"`
		Repository string `json:"repository"`
		URL        string `json:"url"`
		Tag        string `json:"tag"`
	} `json:"target"`
	Request struct {
		ID        string `json:"id"`
		Method    string `json:"method"`
		UserAgent string `json:"useragent"`
	} `json:"request"`
	Source struct {
		Addr       string `json:"addr"`
		InstanceID string `json:"instanceID"`
	} `json:"source"`
}

func (e hookEvent) String() string {
	return fmt.Sprintf("%s %s %s@%s tag=%q", e.Action, e.Target.MediaType, e.Target.Repository, e.Target.Digest, e.Target.Tag)
}

func startWebhook(t *testing.T) *webhook {
	h := &webhook{t: t}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.addr = ln.Addr().String()
	h.serve(ln)
	t.Cleanup(h.stop)
	return h
}

func (h *webhook) serve(ln net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var env struct {
			Events []hookEvent `json:"events"`
		}
		if r.URL.Path != "/events" || r.Method != http.MethodPost {
			h.t.Errorf("webhook: %s %s", r.Method, r.URL.Path)
		}
		if err := json.NewDecoder(r.Body).Decode(&env); err != nil {
			h.t.Errorf("webhook: body is not an envelope: %v", err)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		h.mu.Lock()
		h.got = append(h.got, env.Events...)
		h.hdrs = append(h.hdrs, r.Header.Clone())
		h.mu.Unlock()
	})}
	h.mu.Lock()
	h.srv = srv
	h.mu.Unlock()
	go srv.Serve(ln)
}

// stop closes the listener and every connection: the registry's next
// attempt is refused.
func (h *webhook) stop() {
	h.mu.Lock()
	srv := h.srv
	h.mu.Unlock()
	srv.Close()
}

// restart listens again on the same address.
func (h *webhook) restart() {
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ {
		if ln, err = net.Listen("tcp", h.addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		h.t.Fatalf("webhook: listen again on %s: %v", h.addr, err)
	}
	h.serve(ln)
}

func (h *webhook) events() []hookEvent {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.got)
}

// waitFor waits up to 20 s for an event matching match, and returns it.
func (h *webhook) waitFor(what string, match func(hookEvent) bool) hookEvent {
	h.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		for _, e := range h.events() {
			if match(e) {
				return e
			}
		}
		if time.Now().After(deadline) {
			var b strings.Builder
			for _, e := range h.events() {
				fmt.Fprintf(&b, "  %s\n", e)
			}
			h.t.Fatalf("webhook: no %s event within 20s; received:\n%s", what, b.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func is(action, repo, digest, tag string) func(hookEvent) bool {
	return func(e hookEvent) bool {
		return e.Action == action && e.Target.Repository == repo && e.Target.Digest == digest && e.Target.Tag == tag
	}
}

// TestEvents: a webhook configured through REGISTRY_* variables receives
// the push, pull and delete events of a crane push and plain HTTP pulls and
// deletes; while it is down pushes go on as fast as ever, and when it is
// back on the same address the events queued meanwhile arrive.
func TestEvents(t *testing.T) {
	crane := tool(t, "crane")
	hook := startWebhook(t)
	srv := startRegistryd(t,
		"REGISTRY_NOTIFICATIONS_ENDPOINTS_0_NAME=hook",
		"REGISTRY_NOTIFICATIONS_ENDPOINTS_0_URL=http://"+hook.addr+"/events",
		"REGISTRY_NOTIFICATIONS_ENDPOINTS_0_HEADERS_AUTHORIZATION=[Bearer hook-secret]",
		"REGISTRY_NOTIFICATIONS_ENDPOINTS_0_TIMEOUT=2s",
		"REGISTRY_NOTIFICATIONS_ENDPOINTS_0_THRESHOLD=2",
		"REGISTRY_NOTIFICATIONS_ENDPOINTS_0_BACKOFF=100ms",
	)
	env := clientEnv(t)

	// Push with crane: a push event for each blob and for the manifest,
	// with its tag.
	img := newTestImage(t, t.TempDir(), "v1", "events one")
	runCmd(t, env, clientTimeout, crane, "push", "--insecure", img.Layout, srv.Addr+"/e2e/events:v1")
	push := hook.waitFor("manifest push", is("push", "e2e/events", img.Digest, "v1"))
	if push.Target.MediaType != mtOCIManifest || push.Target.Size != int64(len(img.Manifest)) ||
		push.Target.URL != srv.URL("/v2/e2e/events/manifests/"+img.Digest) {
		t.Errorf("manifest push event: %+v", push)
	}
	if !strings.Contains(push.Request.UserAgent, "go-containerregistry") || push.Request.Method != http.MethodPut || push.Request.ID == "" {
		t.Errorf("manifest push request: %+v", push.Request)
	}
	if push.ID == "" || push.Timestamp == "" || push.Source.InstanceID == "" || !strings.HasSuffix(push.Source.Addr, srv.Addr[strings.LastIndex(srv.Addr, ":"):]) {
		t.Errorf("manifest push event: id %q, timestamp %q, source %+v", push.ID, push.Timestamp, push.Source)
	}
	for d := range img.Blobs {
		e := hook.waitFor("blob push", is("push", "e2e/events", d, ""))
		if e.Target.MediaType != "application/octet-stream" || e.Target.Size != int64(len(img.Blobs[d])) {
			t.Errorf("blob push event: %+v", e)
		}
	}

	// Pulls: GET of the manifest by tag and of a blob; a HEAD is no pull.
	manifestGet := getManifest(t, srv, "e2e/events", "v1")
	if manifestGet.Status != http.StatusOK {
		t.Fatalf("GET manifest: %s", manifestGet)
	}
	doHTTP(t, http.MethodHead, srv.URL("/v2/e2e/events/manifests/"+img.Digest), http.Header{"Accept": manifestAccept}, nil)
	pull := hook.waitFor("manifest pull", is("pull", "e2e/events", img.Digest, "v1"))
	if pull.Request.ID != manifestGet.Header.Get("X-Request-Id") {
		t.Errorf("pull event request id %q, the response said %q", pull.Request.ID, manifestGet.Header.Get("X-Request-Id"))
	}
	var layer string
	for d := range img.Blobs {
		if d != sha256Digest(img.Blobs[d]) {
			t.Fatal("test image blob digest")
		}
		layer = d
	}
	checkBlob(t, srv, "e2e/events", layer, img.Blobs[layer])
	hook.waitFor("blob pull", is("pull", "e2e/events", layer, ""))

	// Deletes: the tag, then the manifest, then a blob.
	for _, p := range []string{"/v2/e2e/events/manifests/v1", "/v2/e2e/events/manifests/" + img.Digest, "/v2/e2e/events/blobs/" + layer} {
		if r := doHTTP(t, http.MethodDelete, srv.URL(p), nil, nil); r.Status != http.StatusAccepted {
			t.Fatalf("DELETE %s: %s", p, r)
		}
	}
	hook.waitFor("tag delete", is("delete", "e2e/events", img.Digest, "v1"))
	hook.waitFor("manifest delete", is("delete", "e2e/events", img.Digest, ""))
	hook.waitFor("blob delete", is("delete", "e2e/events", layer, ""))
	for _, e := range hook.events() {
		if e.Action == "pull" && e.Request.Method == http.MethodHead {
			t.Errorf("a HEAD made a pull event: %s", e)
		}
	}
	hook.mu.Lock()
	if ct := hook.hdrs[0].Get("Content-Type"); ct != "application/vnd.docker.distribution.events.v1+json" {
		t.Errorf("Content-Type %q", ct)
	}
	if a := hook.hdrs[0].Get("Authorization"); a != "Bearer hook-secret" {
		t.Errorf("configured Authorization header not sent: %q", a)
	}
	hook.mu.Unlock()

	// The webhook goes down: pushes still succeed, quickly.
	hook.stop()
	img2 := newTestImage(t, t.TempDir(), "v2", "events two")
	start := time.Now()
	runCmd(t, env, clientTimeout, crane, "push", "--insecure", img2.Layout, srv.Addr+"/e2e/events:v2")
	extra := []byte("pushed while the webhook is down")
	extraDigest := pushBlobHTTP(t, srv, "e2e/other", extra)
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("pushes with the webhook down took %s", took)
	}
	time.Sleep(500 * time.Millisecond) // a few failed attempts
	for _, e := range hook.events() {
		if e.Target.Digest == img2.Digest {
			t.Fatalf("an event reached the webhook while it was down: %s", e)
		}
	}

	// Back on the same address: the queued events arrive, in order.
	hook.restart()
	hook.waitFor("manifest push queued while down", is("push", "e2e/events", img2.Digest, "v2"))
	hook.waitFor("blob push queued while down", is("push", "e2e/other", extraDigest, ""))
	var order []string
	for _, e := range hook.events() {
		if e.Target.Digest == img2.Digest && e.Action == "push" || e.Target.Digest == extraDigest {
			order = append(order, e.Target.Repository)
		}
	}
	if !slices.Equal(order, []string{"e2e/events", "e2e/other"}) {
		t.Errorf("queued events out of order: %v", order)
	}
	if b, err := os.ReadFile(srv.LogPath); err == nil && strings.Contains(string(b), "hook-secret") {
		t.Errorf("the server log shows the webhook's Authorization header")
	}
}
