package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/sirupsen/logrus"
	"golang.org/x/crypto/bcrypt"

	"github.com/registryd/registryd/config"
	"github.com/registryd/registryd/storage"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startServe runs serve in-process with cfg and returns its base URL.
func startServe(t *testing.T, cfg *config.Config) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	log := logrus.New()
	log.SetOutput(io.Discard)
	go func() { done <- serve(ctx, cfg, log) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("serve did not stop")
		}
	})
	base := "http://" + cfg.HTTP.Addr
	for i := 0; i < 100; i++ {
		if resp, err := http.Get(base + "/v2/"); err == nil {
			resp.Body.Close()
			return base
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("serve did not start")
	return ""
}

func get(t *testing.T, url string) (int, string, http.Header) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func TestServeHealthMetricsRequestID(t *testing.T) {
	cfg := config.Default()
	cfg.Storage.Filesystem.RootDirectory = t.TempDir()
	cfg.HTTP.Addr = freeAddr(t)
	cfg.HTTP.Debug.Addr = freeAddr(t)
	cfg.HTTP.Debug.Prometheus.Enabled = true
	base := startServe(t, cfg)

	if code, body, _ := get(t, base+"/healthz"); code != 200 || strings.TrimSpace(body) != "ok" {
		t.Fatalf("healthz: %d %q", code, body)
	}
	if code, body, _ := get(t, base+"/readyz"); code != 200 || strings.TrimSpace(body) != "ok" {
		t.Fatalf("readyz: %d %q", code, body)
	}
	_, _, h := get(t, base+"/v2/")
	if h.Get("X-Request-Id") == "" || h.Get("X-Registry-Version") != version {
		t.Fatalf("headers: %v", h)
	}
	// a client's own request id comes back
	req, _ := http.NewRequest("GET", base+"/v2/", nil)
	req.Header.Set("X-Request-Id", "trace-123")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("X-Request-Id") != "trace-123" {
		t.Fatalf("request id not kept: %q", resp.Header.Get("X-Request-Id"))
	}

	// push and pull a blob, then the counters show it
	blob := []byte("metrics blob")
	d := digest.FromBytes(blob)
	resp, err = http.Post(base+"/v2/m/blobs/uploads/?digest="+d.String(), "application/octet-stream", bytes.NewReader(blob))
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("push: %v %v", err, resp.Status)
	}
	resp.Body.Close()
	if code, body, _ := get(t, base+"/v2/m/blobs/"+d.String()); code != 200 || body != string(blob) {
		t.Fatalf("pull: %d", code)
	}
	_, metricsText, _ := get(t, "http://"+cfg.HTTP.Debug.Addr+"/metrics")
	for _, want := range []string{
		`registryd_http_requests_total{code="201",method="POST",route="upload"} 1`,
		`registryd_http_requests_total{code="200",method="GET",route="blob"} 1`,
		`registryd_content_served_total{kind="blob"} 1`,
		`registryd_http_request_bytes_total{route="upload"} 12`,
		`registryd_storage_operation_duration_seconds_count{driver="filesystem",op="put_content"}`,
		`registryd_http_uploads_in_flight 0`,
	} {
		if !strings.Contains(metricsText, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if code, _, _ := get(t, "http://"+cfg.HTTP.Debug.Addr+"/debug/pprof/"); code != 200 {
		t.Errorf("pprof on the debug listener: %d", code)
	}
	if code, _, _ := get(t, base+"/debug/pprof/"); code == 200 {
		t.Errorf("pprof served on the registry listener")
	}
	if code, _, _ := get(t, base+"/metrics"); code == 200 {
		t.Errorf("metrics served on the registry listener")
	}
}

func TestServeReadOnly(t *testing.T) {
	cfg := config.Default()
	cfg.Storage.Filesystem.RootDirectory = t.TempDir()
	cfg.HTTP.Addr = freeAddr(t)
	cfg.Storage.Maintenance.ReadOnly.Enabled = true
	base := startServe(t, cfg)
	if code, body, _ := get(t, base+"/readyz"); code != 200 || !strings.Contains(body, "read-only") {
		t.Fatalf("readyz: %d %q", code, body)
	}
	resp, err := http.Post(base+"/v2/m/blobs/uploads/", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 405 || !strings.Contains(string(b), "UNSUPPORTED") {
		t.Fatalf("push in read-only mode: %d %s", resp.StatusCode, b)
	}
	if code, _, _ := get(t, base+"/v2/_catalog"); code != 200 {
		t.Fatalf("catalog in read-only mode: %d", code)
	}
}

func TestReadyzFailsWhenStorageBreaks(t *testing.T) {
	cfg := config.Default()
	root := t.TempDir()
	cfg.Storage.Filesystem.RootDirectory = root
	cfg.HTTP.Addr = freeAddr(t)
	base := startServe(t, cfg)
	if code, _, _ := get(t, base+"/readyz"); code != 200 {
		t.Fatalf("readyz: %d", code)
	}
	// replace the storage directory by a file: nothing can be written
	if err := removeAndBlock(root); err != nil {
		t.Fatal(err)
	}
	if code, body, _ := get(t, base+"/readyz"); code != 503 || !strings.Contains(body, "not ready") {
		t.Fatalf("readyz with broken storage: %d %q", code, body)
	}
	if code, _, _ := get(t, base+"/healthz"); code != 200 {
		t.Fatalf("healthz must stay up: %d", code)
	}
}

func TestServeRefusesWritesDuringGC(t *testing.T) {
	cfg := config.Default()
	cfg.Storage.Filesystem.RootDirectory = t.TempDir()
	cfg.HTTP.Addr = freeAddr(t)
	d, err := newDriver(cfg)
	if err != nil {
		t.Fatal(err)
	}
	lease := storage.LocalInstance()
	lease.ID, lease.Role = "gc-test", storage.RoleGC
	release, err := storage.New(d, storage.Options{}).RegisterLease(context.Background(), lease, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	log := logrus.New()
	log.SetOutput(io.Discard)
	err = serve(context.Background(), cfg, log)
	if err == nil || !strings.Contains(err.Error(), "garbage-collect") || !strings.Contains(err.Error(), "readonly") {
		t.Fatalf("serve during gc: %v", err)
	}
	// read-only is fine: it serves pulls while the collection runs
	cfg.Storage.Maintenance.ReadOnly.Enabled = true
	startServe(t, cfg)
}

func TestServeAuth(t *testing.T) {
	dir := t.TempDir()
	hash, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	htpasswd := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(htpasswd, []byte("alice:"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.HTTP.Addr = freeAddr(t)
	cfg.Storage.Driver = "inmemory"
	cfg.Auth.Htpasswd = &config.AuthHtpasswd{Realm: "serve-test", Path: htpasswd}
	base := startServe(t, cfg)
	status, _, h := get(t, base+"/v2/")
	if status != http.StatusUnauthorized || h.Get("WWW-Authenticate") != `Basic realm="serve-test"` {
		t.Fatalf("GET /v2/ without credentials: %d %v", status, h)
	}
	req, _ := http.NewRequest(http.MethodGet, base+"/v2/", nil)
	req.SetBasicAuth("alice", "pw")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v2/ as alice: %d", resp.StatusCode)
	}
	// Health stays open to probes without credentials.
	if status, _, _ := get(t, base+"/healthz"); status != http.StatusOK {
		t.Errorf("/healthz: %d", status)
	}

	// A configuration auth refuses stops serve before it listens.
	bad := config.Default()
	bad.HTTP.Addr = freeAddr(t)
	bad.Storage.Driver = "inmemory"
	bad.Auth.Htpasswd = &config.AuthHtpasswd{Path: filepath.Join(dir, "missing")}
	log := logrus.New()
	log.SetOutput(io.Discard)
	if err := serve(context.Background(), bad, log); err == nil || !strings.Contains(err.Error(), "auth.htpasswd") {
		t.Fatalf("serve with a missing htpasswd file: %v", err)
	}
}

// storage.s3 selects the s3 driver, for serve and garbage-collect alike.
func TestNewDriverS3(t *testing.T) {
	cfg, err := config.Parse([]byte("version: 0.1\nstorage:\n  s3:\n    bucket: b\n    regionendpoint: http://127.0.0.1:9\n    accesskey: a\n    secretkey: s\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	d, err := newDriver(cfg)
	if err != nil || d.Name() != "s3" {
		t.Fatalf("newDriver: %v %v", d, err)
	}
	if _, ok := d.(urlDriver); !ok {
		t.Fatal("the s3 driver has no URLs for redirects")
	}
	cfg.Storage.S3.ChunkSize = 1
	if _, err := newDriver(cfg); err == nil {
		t.Fatal("newDriver accepted a 1-byte chunk size")
	}
}
