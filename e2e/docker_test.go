package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// dockerd is a private Docker daemon for one test: its own data root, exec
// root and unix socket under a short /tmp directory, no networking set up
// (no bridge, no iptables), vfs storage (works on any filesystem).
type dockerd struct {
	Dir    string
	Host   string // unix://DIR/docker.sock
	cli    string
	env    []string
	cmd    *exec.Cmd
	exited chan struct{}
	log    string
}

func startDockerd(t *testing.T, extraArgs ...string) *dockerd {
	t.Helper()
	if os.Getenv("REGISTRYD_E2E_SKIP_DOCKER") == "1" {
		t.Skip("REGISTRYD_E2E_SKIP_DOCKER=1")
	}
	bin := system(t, "dockerd", "/usr/sbin/dockerd", "/usr/bin/dockerd")
	// Prefer the CLI of the same package as the daemon (docker.io), whatever
	// else is first on $PATH.
	cli := system(t, "docker", "/usr/bin/docker")
	if os.Geteuid() != 0 {
		t.Fatalf("the docker test starts its own dockerd and needs root; set REGISTRYD_E2E_SKIP_DOCKER=1 to skip it")
	}
	// unix socket paths are limited to 108 bytes: keep the directory short
	dir, err := os.MkdirTemp("/tmp", "rd-dk-")
	must(t, err)
	d := &dockerd{
		Dir:  dir,
		Host: "unix://" + filepath.Join(dir, "docker.sock"),
		cli:  cli,
		log:  filepath.Join(dir, "dockerd.log"),
	}
	d.env = append(clientEnv(t), "DOCKER_HOST="+d.Host, "DOCKER_BUILDKIT=0", "DOCKER_CLI_HINTS=false")
	logf, err := os.Create(d.log)
	must(t, err)
	d.cmd = exec.Command(bin, append([]string{
		"--data-root", filepath.Join(dir, "data"),
		"--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", filepath.Join(dir, "docker.pid"),
		"-H", d.Host,
		"--iptables=false", "--ip6tables=false", "--bridge=none", "--ip-masq=false",
		"--storage-driver", "vfs",
	}, extraArgs...)...)
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	must(t, d.cmd.Start())
	d.exited = make(chan struct{})
	go func() { d.cmd.Wait(); logf.Close(); close(d.exited) }()
	t.Cleanup(func() {
		d.stop(t)
		if t.Failed() {
			t.Logf("---- dockerd log, last lines:\n%s", tail(d.log, 40))
		}
		os.RemoveAll(dir)
	})

	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-d.exited:
			t.Fatalf("dockerd exited at startup:\n%s", tail(d.log, 40))
		default:
		}
		if c, err := net.Dial("unix", filepath.Join(dir, "docker.sock")); err == nil {
			c.Close()
			if _, err := tryCmd(d.env, 10*time.Second, cli, "version"); err == nil {
				return d
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("dockerd not ready within 60s:\n%s", tail(d.log, 40))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// stop terminates dockerd by its PID (it stops its own containerd) and waits.
func (d *dockerd) stop(t *testing.T) {
	select {
	case <-d.exited:
		return
	default:
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(30 * time.Second):
		t.Logf("dockerd did not stop within 30s; killing it")
		d.cmd.Process.Kill()
		<-d.exited
	}
	// a containerd it started should be gone with it; make sure
	if b, err := os.ReadFile(filepath.Join(d.Dir, "exec", "containerd", "containerd.pid")); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
			if p, err := os.FindProcess(pid); err == nil && p.Signal(syscall.Signal(0)) == nil {
				p.Kill()
			}
		}
	}
}

func (d *dockerd) run(t *testing.T, args ...string) string {
	t.Helper()
	return strings.TrimSpace(runCmd(t, d.env, 5*time.Minute, d.cli, args...).Stdout)
}

// TestDocker pushes an image with the docker CLI (through a private dockerd),
// removes it locally, pulls it back and checks it is the same image.
func TestDocker(t *testing.T) {
	d := startDockerd(t)
	srv := startRegistryd(t)

	// No base image can be pulled here: import a tiny root filesystem.
	rootfs := filepath.Join(t.TempDir(), "rootfs.tar")
	writeTar(t, rootfs, map[string]string{
		"etc/registryd-e2e": "docker round trip\n",
		"hello.txt":         "hello from docker\n",
	})
	ref := srv.Addr + "/e2e/docker:v1"
	d.run(t, "import", "--change", "CMD [\"/hello\"]", rootfs, ref)
	id := d.run(t, "image", "inspect", "--format", "{{.Id}}", ref)
	d.run(t, "push", ref)
	repoDigests := d.run(t, "image", "inspect", "--format", "{{join .RepoDigests \"\\n\"}}", ref)
	var pushed string
	for _, l := range lines(repoDigests) {
		if strings.HasPrefix(l, srv.Addr+"/e2e/docker@") {
			pushed = strings.TrimPrefix(l, srv.Addr+"/e2e/docker@")
		}
	}
	if pushed == "" {
		t.Fatalf("docker push left no repo digest for %s: %q", ref, repoDigests)
	}
	checkManifest(t, srv, "e2e/docker", "v1", pushed, mtDockerManifest)

	d.run(t, "rmi", ref)
	if _, err := tryCmd(d.env, time.Minute, d.cli, "image", "inspect", ref); err == nil {
		t.Fatalf("%s still present after docker rmi", ref)
	}
	d.run(t, "pull", ref)
	if got := d.run(t, "image", "inspect", "--format", "{{.Id}}", ref); got != id {
		t.Errorf("pulled image ID %s, pushed %s", got, id)
	}
	if got := d.run(t, "image", "inspect", "--format", "{{join .RepoDigests \"\\n\"}}", ref); !strings.Contains(got, pushed) {
		t.Errorf("pulled image repo digests %q, expected %s", got, pushed)
	}

	// by digest, into a second repository name
	d.run(t, "rmi", ref)
	byDigest := fmt.Sprintf("%s/e2e/docker@%s", srv.Addr, pushed)
	d.run(t, "pull", byDigest)
	if got := d.run(t, "image", "inspect", "--format", "{{.Id}}", byDigest); got != id {
		t.Errorf("image pulled by digest has ID %s, pushed %s", got, id)
	}
	ref2 := srv.Addr + "/e2e/docker-again:v2"
	d.run(t, "tag", byDigest, ref2)
	d.run(t, "push", ref2)
	checkManifest(t, srv, "e2e/docker-again", "v2", pushed, mtDockerManifest)
}
