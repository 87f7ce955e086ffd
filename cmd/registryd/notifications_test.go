package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/sirupsen/logrus"

	"github.com/registryd/registryd/config"
	"github.com/registryd/registryd/notifications"
)

// serve sends events to the configured endpoints (not the disabled ones),
// counts them in the metrics and flushes what is queued when it stops.
func TestServeNotifications(t *testing.T) {
	var mu sync.Mutex
	var events []notifications.Event
	var auths []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var env notifications.Envelope
		_ = json.NewDecoder(r.Body).Decode(&env)
		mu.Lock()
		events = append(events, env.Events...)
		auths = append(auths, r.Header.Get("Authorization"))
		mu.Unlock()
	}))
	defer hook.Close()
	disabled := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("the disabled endpoint got a request")
	}))
	defer disabled.Close()

	cfg := config.Default()
	cfg.Storage.Filesystem.RootDirectory = t.TempDir()
	cfg.HTTP.Addr = freeAddr(t)
	cfg.HTTP.Debug.Addr = freeAddr(t)
	cfg.HTTP.Debug.Prometheus.Enabled = true
	cfg.Notifications.Endpoints = []config.Endpoint{
		{Name: "hook", URL: hook.URL, Headers: http.Header{"Authorization": {"Bearer t"}}, Timeout: time.Second, Threshold: 3, Backoff: 10 * time.Millisecond},
		{Name: "off", URL: disabled.URL, Disabled: true, Timeout: time.Second, Threshold: 3, Backoff: time.Second},
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	log := logrus.New()
	log.SetOutput(io.Discard)
	go func() { done <- serve(ctx, cfg, log) }()
	base := "http://" + cfg.HTTP.Addr
	for i := 0; ; i++ {
		if resp, err := http.Get(base + "/v2/"); err == nil {
			resp.Body.Close()
			break
		}
		if i == 100 {
			t.Fatal("serve did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}

	blob := []byte("notified blob")
	d := digest.FromBytes(blob)
	resp, err := http.Post(base+"/v2/n/blobs/uploads/?digest="+d.String(), "application/octet-stream", bytes.NewReader(blob))
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("push: %v %v", err, resp)
	}
	resp.Body.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(events)
		mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no event")
		}
		time.Sleep(10 * time.Millisecond)
	}
	_, metricsText, _ := get(t, "http://"+cfg.HTTP.Debug.Addr+"/metrics")
	if want := `registryd_notifications_events_total{endpoint="hook",outcome="sent"} 1`; !strings.Contains(metricsText, want) {
		t.Errorf("metrics lack %s", want)
	}

	// A pull right before the stop is delivered before serve returns.
	if code, _, _ := get(t, base+"/v2/n/blobs/"+d.String()); code != 200 {
		t.Fatalf("pull: %d", code)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not stop")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(events) != 2 || events[0].Action != "push" || events[1].Action != "pull" || events[1].Target.Digest != d.String() {
		t.Fatalf("events %+v", events)
	}
	ev := events[0]
	if ev.Target.Repository != "n" || ev.Source.InstanceID == "" || !strings.HasSuffix(ev.Source.Addr, cfg.HTTP.Addr[strings.LastIndex(cfg.HTTP.Addr, ":"):]) {
		t.Errorf("event %+v", ev)
	}
	if auths[0] != "Bearer t" {
		t.Errorf("Authorization sent: %q", auths[0])
	}
}
