package main

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/registryd/registryd/config"
)

// A registry (re)started while its disk is full starts anyway: it serves
// pulls, refuses writes with 503 UNAVAILABLE until it could register with
// the storage, and accepts them once space is freed, with no operator.
// Needs root for the tmpfs it fills.
func TestServeStartsOnFullDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("!!! SKIPPING: mounting a tmpfs to fill needs root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m", "registryd-lease", dir).CombinedOutput(); err != nil {
		t.Skipf("!!! SKIPPING: cannot mount a tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	root := filepath.Join(dir, "data")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	ballast := filepath.Join(dir, "ballast")
	f, err := os.Create(ballast)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			break
		}
	}
	f.Close()

	cfg := config.Default()
	cfg.Storage.Filesystem.RootDirectory = root
	cfg.HTTP.Addr = freeAddr(t)
	base := startServe(t, cfg)
	if code, _, _ := get(t, base+"/v2/_catalog"); code != http.StatusOK {
		t.Fatalf("catalog on a full disk: %d", code)
	}
	code, body, h := do(t, "POST", base+"/v2/a/blobs/uploads/", nil, "")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "UNAVAILABLE") || h.Get("Retry-After") == "" {
		t.Fatalf("push on a full disk: %d %s", code, body)
	}
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body, _ := do(t, "POST", base+"/v2/a/blobs/uploads/", nil, "")
		if code == http.StatusAccepted {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("push 30 s after space was freed: %d %s", code, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
