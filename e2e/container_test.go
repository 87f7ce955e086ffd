package e2e

import (
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/registryd/registryd/internal/localsrv"
)

// TestContainerImage builds the image with `make image` through a private
// dockerd and uses it the way the README tells users to: run it with
// REGISTRY_* variables, push and pull through it, find a digest with HEAD,
// delete by digest; without REGISTRY_STORAGE_DELETE_ENABLED the delete is
// refused.
func TestContainerImage(t *testing.T) {
	d := startDockerd(t)
	const version = "e2e-image"
	runCmdIn(t, repoRoot, d.env, 10*time.Minute, "make", "image", "VERSION="+version)

	size, err := strconv.ParseInt(d.run(t, "image", "inspect", "--format", "{{.Size}}", "registryd:dev"), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("registryd:dev is %.1f MB", float64(size)/1e6)
	if size > 30e6 {
		t.Errorf("image is %d bytes, want under 30 MB", size)
	}
	if user := d.run(t, "image", "inspect", "--format", "{{.Config.User}}", "registryd:dev"); user == "" || strings.HasPrefix(user, "0") || user == "root" {
		t.Errorf("image runs as %q, want a non-root user", user)
	}
	if out := d.run(t, "run", "--rm", "--network", "host", "registryd:dev", "version"); !strings.Contains(out, version) {
		t.Errorf("registryd version in the image: %q, want %s", out, version)
	}

	// a container like the README's, deletes enabled
	addr := runContainer(t, d, "-e", "REGISTRY_STORAGE_DELETE_ENABLED=true")
	rootfs := filepath.Join(t.TempDir(), "rootfs.tar")
	writeTar(t, rootfs, map[string]string{"hello.txt": "hello from a container test\n"})
	ref := addr + "/e2e/container:v1"
	d.run(t, "import", rootfs, ref)
	id := d.run(t, "image", "inspect", "--format", "{{.Id}}", ref)
	d.run(t, "push", ref)
	d.run(t, "rmi", ref)
	d.run(t, "pull", ref)
	if got := d.run(t, "image", "inspect", "--format", "{{.Id}}", ref); got != id {
		t.Fatalf("pulled %s, pushed %s", got, id)
	}
	// the seeds' workflow: HEAD for the digest, DELETE by digest
	head := doHTTP(t, http.MethodHead, "http://"+addr+"/v2/e2e/container/manifests/v1", http.Header{"Accept": manifestAccept}, nil)
	dg := head.Header.Get("Docker-Content-Digest")
	if head.Status != 200 || dg == "" {
		t.Fatalf("HEAD manifest: %s", head)
	}
	if r := doHTTP(t, http.MethodDelete, "http://"+addr+"/v2/e2e/container/manifests/"+dg, nil, nil); r.Status != http.StatusAccepted {
		t.Fatalf("DELETE by digest: %s", r)
	}
	if r := doHTTP(t, http.MethodGet, "http://"+addr+"/v2/e2e/container/manifests/v1", http.Header{"Accept": manifestAccept}, nil); r.Status != http.StatusNotFound {
		t.Fatalf("deleted image still served: %s", r)
	}

	// the same image without the variable: delete refused
	addr2 := runContainer(t, d)
	ref2 := addr2 + "/e2e/container:v1"
	d.run(t, "tag", ref, ref2)
	d.run(t, "push", ref2)
	head = doHTTP(t, http.MethodHead, "http://"+addr2+"/v2/e2e/container/manifests/v1", http.Header{"Accept": manifestAccept}, nil)
	r := doHTTP(t, http.MethodDelete, "http://"+addr2+"/v2/e2e/container/manifests/"+head.Header.Get("Docker-Content-Digest"), nil, nil)
	if r.Status != http.StatusMethodNotAllowed || !strings.Contains(string(r.Body), "UNSUPPORTED") {
		t.Fatalf("delete with deletes disabled: %s", r)
	}
}

// runContainer starts registryd:dev on a free loopback port (host network)
// and removes the container, by id, when the test ends.
func runContainer(t *testing.T, d *dockerd, extra ...string) string {
	t.Helper()
	addr, err := localsrv.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"run", "-d", "--network", "host", "-e", "REGISTRY_HTTP_ADDR=" + addr}, extra...)
	id := d.run(t, append(args, "registryd:dev")...)
	t.Cleanup(func() { tryCmd(d.env, time.Minute, d.cli, "rm", "-f", id) })
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return addr
			}
		}
		if time.Now().After(deadline) {
			logs, _ := tryCmd(d.env, time.Minute, d.cli, "logs", id)
			t.Fatalf("container %s not serving on %s: %v\n%s", id, addr, err, logs.Stdout+logs.Stderr)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
