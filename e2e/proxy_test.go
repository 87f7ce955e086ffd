package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/registryd/registryd/internal/localsrv"
)

// The pull-through cache against real upstreams on loopback: a second
// registryd with its token issuer (the Docker token flow), Debian's
// docker-registry with htpasswd, each behind a faultProxy that counts what
// the upstream served and misbehaves on request; real clients through the
// mirror: dockerd with registry-mirrors, crane and skopeo with path-prefix
// names, containerd's ctr with a hosts.toml that sends ?ns= for two
// upstreams.

// refUpstream is Debian's docker-registry with htpasswd.
type refUpstream struct {
	Addr string
	user string
	pass string
	log  string
}

const (
	refUser = "ci"
	refPass = "ci-upstream-pw"
)

// startReferenceHtpasswd starts the reference registry with Basic auth.
func startReferenceHtpasswd(t *testing.T) *refUpstream {
	t.Helper()
	bin := referenceBin
	if fi, err := os.Stat(bin); err != nil || fi.IsDir() {
		t.Fatalf("reference registry not found at %s: %s", bin, installHint)
	}
	dir := t.TempDir()
	h, err := bcrypt.GenerateFromPassword([]byte(refPass), bcrypt.MinCost)
	must(t, err)
	htp := filepath.Join(dir, "htpasswd")
	must(t, os.WriteFile(htp, []byte(refUser+":"+string(h)+"\n"), 0o600))
	s := &refUpstream{user: refUser, pass: refPass, log: filepath.Join(dir, "reference.log")}
	for attempt := 0; attempt < 3; attempt++ {
		addr, err := localsrv.FreeAddr()
		must(t, err)
		s.Addr = addr
		cfg := fmt.Sprintf("version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: %s\nauth:\n  htpasswd:\n    realm: reference\n    path: %s\n",
			filepath.Join(dir, "data"), addr, htp)
		cfgPath := filepath.Join(dir, "config.yml")
		must(t, os.WriteFile(cfgPath, []byte(cfg), 0o644))
		if waitUp(t, bin, cfgPath, s.log, addr, http.StatusUnauthorized) {
			return s
		}
	}
	t.Fatalf("the reference registry did not start:\n%s", tail(s.log, 30))
	return nil
}

// waitUp starts bin serve cfg and waits for GET /v2/ to answer status;
// the process is stopped when the test ends.
func waitUp(t *testing.T, bin, cfg, logPath, addr string, status int) bool {
	t.Helper()
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	must(t, err)
	cmd := exec.Command(bin, "serve", cfg)
	cmd.Env = serverEnv(nil)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	must(t, cmd.Start())
	exited := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(exited) }()
	stop := func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}
	c := &http.Client{Timeout: 2 * time.Second}
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		select {
		case <-exited:
			return false
		default:
		}
		resp, err := c.Get("http://" + addr + "/v2/")
		if err != nil {
			continue
		}
		resp.Body.Close()
		if resp.StatusCode == status {
			t.Cleanup(stop)
			return true
		}
	}
	stop()
	return false
}

// mirrorSetup is a mirror with two upstreams behind fault proxies.
type mirrorSetup struct {
	tokenUp *authServer  // registryd with its token issuer ("docker.io" to the mirror)
	refUp   *refUpstream // the reference with htpasswd ("upstream-b.test")
	faultA  *upstreamFault
	faultB  *upstreamFault
	mirror  *Server
	hello   testImage // library/e2e-hello:v1 on tokenUp
	app     testImage // team/app:v1 on refUp
	ctrA    testImage // library/e2e-ctr:v1 on tokenUp, pulled by ctr only
	ctrB    testImage // team/ctr:v1 on refUp, pulled by ctr only
	docker  testImage // library/e2e-docker:v1 on tokenUp, pulled cold by dockerd only
}

const mirrorHostB = "upstream-b.test"

// proxyYAML is the mirror's proxy section.
func proxyYAML(a, b string, extra string) string {
	y := fmt.Sprintf(`proxy:
  revalidate: 3s
  timeout: 2s
  notfoundttl: 1s
  upstreams:
    - name: docker.io
      url: %s
      username: root
      password: %s
    - name: %s
      url: %s
      username: %s
      password: %s
  defaultupstream: docker.io
`, a, authUsers["root"], mirrorHostB, b, refUser, refPass)
	return y + extra
}

func startMirrorSetup(t *testing.T) *mirrorSetup {
	t.Helper()
	ms := &mirrorSetup{}
	ms.tokenUp = startAuthRegistryd(t, "token")
	ms.refUp = startReferenceHtpasswd(t)
	ms.faultA = startUpstreamFault(t, ms.tokenUp.Addr)
	ms.faultB = startUpstreamFault(t, ms.refUp.Addr)

	crane := tool(t, "crane")
	env := clientEnv(t)
	runCmd(t, env, clientTimeout, crane, "auth", "login", ms.tokenUp.Addr, "-u", "root", "-p", authUsers["root"], "--insecure")
	runCmd(t, env, clientTimeout, crane, "auth", "login", ms.refUp.Addr, "-u", refUser, "-p", refPass, "--insecure")
	ms.hello = newTestImage(t, t.TempDir(), "v1", "proxy-hello")
	runCmd(t, env, clientTimeout, crane, "push", "--insecure", ms.hello.Layout, ms.tokenUp.Addr+"/library/e2e-hello:v1")
	ms.app = newTestImage(t, t.TempDir(), "v1", "proxy-app")
	runCmd(t, env, clientTimeout, crane, "push", "--insecure", ms.app.Layout, ms.refUp.Addr+"/team/app:v1")
	ms.ctrA = newTestImage(t, t.TempDir(), "v1", "proxy-ctr-a")
	runCmd(t, env, clientTimeout, crane, "push", "--insecure", ms.ctrA.Layout, ms.tokenUp.Addr+"/library/e2e-ctr:v1")
	ms.docker = newTestImage(t, t.TempDir(), "v1", "proxy-docker")
	runCmd(t, env, clientTimeout, crane, "push", "--insecure", ms.docker.Layout, ms.tokenUp.Addr+"/library/e2e-docker:v1")
	ms.ctrB = newTestImage(t, t.TempDir(), "v1", "proxy-ctr-b")
	runCmd(t, env, clientTimeout, crane, "push", "--insecure", ms.ctrB.Layout, ms.refUp.Addr+"/team/ctr:v1")

	if buildErr != nil {
		t.Fatalf("registryd does not build: %v", buildErr)
	}
	ms.mirror = startServerExtra(t, "registryd", registrydBin, t.TempDir(), "", proxyYAML(ms.faultA.URL(), ms.faultB.URL(), ""), nil)
	ms.faultA.reset()
	ms.faultB.reset()
	return ms
}

// craneDigest asks crane for ref's digest through the mirror.
func craneDigest(t *testing.T, ref string) string {
	t.Helper()
	return strings.TrimSpace(runCmd(t, clientEnv(t), clientTimeout, tool(t, "crane"), "digest", "--insecure", ref).Stdout)
}

// cranePull pulls ref into a tarball, failing the test on error.
func cranePull(t *testing.T, ref string) error {
	t.Helper()
	_, err := tryCmd(clientEnv(t), clientTimeout, tool(t, "crane"), "pull", "--insecure", ref, filepath.Join(t.TempDir(), "img.tar"))
	return err
}

// TestProxyMirror is the mirror with real clients and real upstreams:
// dockerd's registry-mirrors, path-prefix names for crane and skopeo,
// ctr with ?ns= for two upstreams; freshness counted at the upstream; the
// upstream going away and a restart with it gone.
func TestProxyMirror(t *testing.T) {
	ms := startMirrorSetup(t)
	m := ms.mirror

	t.Run("path prefix: crane and skopeo", func(t *testing.T) {
		if got := craneDigest(t, m.Addr+"/"+mirrorHostB+"/team/app:v1"); got != ms.app.Digest {
			t.Fatalf("crane digest through the mirror: %s, want %s", got, ms.app.Digest)
		}
		must(t, cranePull(t, m.Addr+"/"+mirrorHostB+"/team/app:v1"))
		skopeo := system(t, "skopeo", "/usr/bin/skopeo")
		out := filepath.Join(t.TempDir(), "oci")
		runCmd(t, clientEnv(t), clientTimeout, skopeo, "--insecure-policy", "copy", "--src-tls-verify=false",
			"docker://"+m.Addr+"/docker.io/library/e2e-hello:v1", "oci:"+out+":v1")
		if got := layoutManifestDigest(t, out, "v1"); got != ms.hello.Digest {
			t.Errorf("skopeo pulled %s, want %s", got, ms.hello.Digest)
		}
		for d, b := range ms.hello.Blobs {
			got, err := os.ReadFile(filepath.Join(out, "blobs", "sha256", strings.TrimPrefix(d, "sha256:")))
			if err != nil || !bytes.Equal(got, b) {
				t.Errorf("skopeo's copy of %s differs from the upstream's", d)
			}
		}
		if n := ms.faultA.served("GET", "manifest"); n != 1 {
			t.Errorf("token upstream: %d manifest GETs, want 1: %v", n, ms.faultA.requests())
		}
		if n := ms.faultB.served("GET", "blob"); n != 2 {
			t.Errorf("reference upstream: %d blob GETs for crane's pull, want 2: %v", n, ms.faultB.requests())
		}
	})

	t.Run("dockerd registry-mirrors", func(t *testing.T) {
		d := startDockerd(t, "--registry-mirror", "http://"+m.Addr, "--insecure-registry", m.Addr)
		ms.faultA.reset()
		d.run(t, "pull", "e2e-hello:v1")
		if got := d.run(t, "image", "inspect", "--format", "{{join .RepoDigests \",\"}}", "e2e-hello:v1"); !strings.Contains(got, ms.hello.Digest) {
			t.Errorf("docker pulled %q, want %s", got, ms.hello.Digest)
		}
		// Cached by skopeo's pull before: docker's pull asked the
		// upstream nothing (within revalidate) or one HEAD.
		for _, r := range ms.faultA.requests() {
			if r.Method == http.MethodGet {
				t.Errorf("docker pull of a cached image made the upstream serve %s", r)
			}
		}
		// Cold: nothing of it cached. dockerd names it e2e-docker, the
		// mirror asks Docker Hub's stand-in for library/e2e-docker through
		// its token flow, and each blob and the manifest cross once.
		ms.faultA.reset()
		d.run(t, "pull", "e2e-docker:v1")
		if got := d.run(t, "image", "inspect", "--format", "{{join .RepoDigests \",\"}}", "e2e-docker:v1"); !strings.Contains(got, ms.docker.Digest) {
			t.Errorf("docker pulled %q cold, want %s", got, ms.docker.Digest)
		}
		if mg, bg := ms.faultA.served("GET", "manifest"), ms.faultA.served("GET", "blob"); mg != 1 || bg != len(ms.docker.Blobs) {
			t.Errorf("cold docker pull: the upstream served %d manifest and %d blob GETs, want 1 and %d: %v", mg, bg, len(ms.docker.Blobs), ms.faultA.requests())
		}
		var tags struct{ Tags []string }
		getJSON(t, m, "/v2/docker.io/library/e2e-docker/tags/list", &tags)
		if len(tags.Tags) != 1 || tags.Tags[0] != "v1" {
			t.Errorf("the cache repository docker.io/library/e2e-docker has tags %v, want [v1]", tags.Tags)
		}
		// Again after docker forgot it: from the cache, the upstream asked
		// nothing (within revalidate) or one HEAD.
		d.run(t, "rmi", "e2e-docker:v1")
		ms.faultA.reset()
		d.run(t, "pull", "e2e-docker:v1")
		if n := ms.faultA.count("GET", ""); n != 0 {
			t.Errorf("warm docker pull: the upstream served %v", ms.faultA.requests())
		}
	})

	t.Run("ctr with ns for two upstreams", func(t *testing.T) {
		c := startContainerd(t)
		hosts := t.TempDir()
		for _, h := range []struct{ dir, server string }{{"docker.io", "https://registry-1.docker.io"}, {mirrorHostB, "https://" + mirrorHostB}} {
			must(t, os.MkdirAll(filepath.Join(hosts, h.dir), 0o755))
			must(t, os.WriteFile(filepath.Join(hosts, h.dir, "hosts.toml"), []byte(fmt.Sprintf(
				"server = %q\n\n[host.\"http://%s\"]\n  capabilities = [\"pull\", \"resolve\"]\n", h.server, m.Addr)), 0o644))
		}
		for ref, want := range map[string]string{"docker.io/library/e2e-ctr:v1": ms.ctrA.Digest, mirrorHostB + "/team/ctr:v1": ms.ctrB.Digest} {
			c.ctr(t, "images", "pull", "--local", "--hosts-dir", hosts, "--snapshotter", "native", ref)
			out := c.ctr(t, "images", "ls", "-q")
			if !strings.Contains(out, ref) {
				t.Errorf("ctr images ls after pulling %s: %s", ref, out)
			}
			if got := c.ctr(t, "images", "ls"); !strings.Contains(got, want) {
				t.Errorf("ctr pulled %s as something else than %s:\n%s", ref, want, got)
			}
		}
		// Both went through the mirror (the hosts' servers do not
		// resolve), told apart by ?ns= alone: ctr asks for library/e2e-ctr
		// and team/ctr, and their cache repositories are the two
		// upstreams' (team/ctr without ns would have gone to the default,
		// docker.io, which does not have it).
		var cat struct{ Repositories []string }
		getJSON(t, m, "/v2/_catalog", &cat)
		got := strings.Join(cat.Repositories, " ")
		for _, want := range []string{"docker.io/library/e2e-ctr", mirrorHostB + "/team/ctr"} {
			if !strings.Contains(got, want) {
				t.Errorf("catalog %v lacks %s", cat.Repositories, want)
			}
		}
		if strings.Contains(got, "docker.io/team/ctr") {
			t.Errorf("catalog %v: team/ctr went to the default upstream", cat.Repositories)
		}
	})

	t.Run("warm pulls: none within revalidate, one HEAD after", func(t *testing.T) {
		ref := m.Addr + "/" + mirrorHostB + "/team/app:v1"
		must(t, cranePull(t, ref))
		time.Sleep(3200 * time.Millisecond) // revalidate: 3s
		must(t, cranePull(t, ref))
		ms.faultB.reset()
		must(t, cranePull(t, ref))
		if reqs := ms.faultB.requests(); len(reqs) != 0 {
			t.Errorf("warm pull within revalidate: the upstream served %v", reqs)
		}
		time.Sleep(3200 * time.Millisecond)
		must(t, cranePull(t, ref))
		reqs := ms.faultB.requests()
		if ms.faultB.served("HEAD", "manifest") != 1 || ms.faultB.count("GET", "") != 0 {
			t.Errorf("warm pull after revalidate: the upstream served %v, want one HEAD", reqs)
		}
	})

	t.Run("upstream down", func(t *testing.T) {
		// Hung first (accepts, never answers): the first pull from each
		// upstream costs one request that the mirror gives up on after its
		// timeout (2s), then the breaker spares the rest: counted at the
		// upstream, not timed (the machine is shared).
		ms.faultA.add(&faultRule{match: anyRequest, hang: true})
		ms.faultB.add(&faultRule{match: anyRequest, hang: true})
		time.Sleep(3200 * time.Millisecond)
		ms.faultA.reset()
		ms.faultB.reset()
		refs := []string{m.Addr + "/" + mirrorHostB + "/team/app:v1", m.Addr + "/docker.io/library/e2e-hello:v1", m.Addr + "/library/e2e-hello:v1"}
		// Upstream requests (A, B) after each pull: the first pull from B
		// and the first from A each make one, the second from A none.
		want := [][2]int{{0, 1}, {1, 1}, {1, 1}}
		for i, ref := range refs {
			start := time.Now()
			if err := cranePull(t, ref); err != nil {
				t.Fatalf("pull of cached %s with the upstream hung: %v", ref, err)
			}
			t.Logf("%s: %v", ref, time.Since(start))
			if a, b := len(ms.faultA.requests()), len(ms.faultB.requests()); a != want[i][0] || b != want[i][1] {
				t.Errorf("after pulling %s with the upstreams hung: %d and %d upstream requests, want %d and %d (one timeout per upstream, then the breaker): %v %v",
					ref, a, b, want[i][0], want[i][1], ms.faultA.requests(), ms.faultB.requests())
			}
		}
		r := getManifest(t, m, "library/e2e-hello", "v1")
		if r.Status != 200 || !strings.HasPrefix(r.Header.Get("Warning"), "110 ") {
			t.Errorf("stale answer: %d Warning %q", r.Status, r.Header.Get("Warning"))
		}
		// Gone (connection refused), and the mirror restarted meanwhile.
		ms.faultA.goAway()
		ms.faultB.goAway()
		m.Restart()
		for _, ref := range refs {
			if err := cranePull(t, ref); err != nil {
				t.Errorf("after a restart with the upstream gone, cached %s: %v", ref, err)
			}
		}
		r = getManifest(t, m, "library/never-cached", "v1")
		if r.Status != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" {
			t.Errorf("uncached with the upstream gone: %s", r)
		}
		ms.faultA.comeBack()
		ms.faultB.comeBack()
		ms.faultA.clearFaults()
		ms.faultB.clearFaults()
	})

	t.Run("dockerd with the upstream gone", func(t *testing.T) {
		// Docker Hub down: a docker engine with nothing of its own pulls
		// through the mirror what the mirror cached (e2e-docker by the
		// dockerd above, e2e-hello by skopeo), tags revalidated and served
		// stale.
		ms.faultA.goAway()
		defer ms.faultA.comeBack()
		d := startDockerd(t, "--registry-mirror", "http://"+m.Addr, "--insecure-registry", m.Addr)
		for _, img := range []struct {
			name   string
			digest string
		}{{"e2e-docker:v1", ms.docker.Digest}, {"e2e-hello:v1", ms.hello.Digest}} {
			d.run(t, "pull", img.name)
			if got := d.run(t, "image", "inspect", "--format", "{{join .RepoDigests \",\"}}", img.name); !strings.Contains(got, img.digest) {
				t.Errorf("docker pulled %s as %q with the upstream gone, want %s", img.name, got, img.digest)
			}
		}
	})
}

// containerd is a private containerd (Debian's daemon) for ctr, which
// scripts/install-deps.sh builds from the module proxy.
type containerd struct {
	sock string
	bin  string
}

func startContainerd(t *testing.T) *containerd {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("containerd needs root")
	}
	daemon := system(t, "containerd", "/usr/bin/containerd")
	ctr := tool(t, "ctr")
	dir, err := os.MkdirTemp("/tmp", "rd-ctd-")
	must(t, err)
	c := &containerd{sock: filepath.Join(dir, "c.sock"), bin: ctr}
	cfg := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = %q
[ttrpc]
  address = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), c.sock, filepath.Join(dir, "t.sock"))
	must(t, os.WriteFile(filepath.Join(dir, "config.toml"), []byte(cfg), 0o644))
	logPath := filepath.Join(dir, "containerd.log")
	logf, err := os.Create(logPath)
	must(t, err)
	cmd := exec.Command(daemon, "--config", filepath.Join(dir, "config.toml"))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	must(t, cmd.Start())
	exited := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("---- containerd log:\n%s", tail(logPath, 30))
		}
		os.RemoveAll(dir)
	})
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if _, err := tryCmd(nil, 10*time.Second, ctr, "--address", c.sock, "version"); err == nil {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("containerd not ready:\n%s", tail(logPath, 30))
		}
	}
}

func (c *containerd) ctr(t *testing.T, args ...string) string {
	t.Helper()
	return runCmd(t, clientEnv(t), clientTimeout, c.bin, append([]string{"--address", c.sock}, args...)...).Stdout
}

// plainUpstream is a registryd without auth behind a fault proxy, and a
// mirror of it (proxy.remoteurl mode).
type plainSetup struct {
	up     *Server
	fault  *upstreamFault
	mirror *Server
}

func startPlainSetup(t *testing.T, extraProxy string) *plainSetup {
	t.Helper()
	ps := &plainSetup{up: startRegistryd(t)}
	ps.fault = startUpstreamFault(t, ps.up.Addr)
	ps.mirror = startServerExtra(t, "registryd", registrydBin, t.TempDir(), "",
		fmt.Sprintf("proxy:\n  remoteurl: %s\n  revalidate: 1m\n  timeout: 2s\n%s", ps.fault.URL(), extraProxy), nil)
	return ps
}

// pushRandomImage pushes an image whose one layer is size random bytes
// (seeded), returning the manifest digest and the layer.
func pushRandomImage(t *testing.T, s *Server, repo, tag string, size int, seed int64) (string, string, []byte) {
	t.Helper()
	layer := make([]byte, size)
	rand.New(rand.NewSource(seed)).Read(layer)
	ld := pushBlobMonolithic(t, s.URL(""), repo, layer, "")
	cfg := []byte(fmt.Sprintf(`{"architecture":"amd64","os":"linux","seed":%d}`, seed))
	cd := pushBlobMonolithic(t, s.URL(""), repo, cfg, "")
	man := imageManifest(cd, len(cfg), ld, size)
	r := doHTTP(t, http.MethodPut, s.URL("/v2/"+repo+"/manifests/"+tag), http.Header{"Content-Type": {mtOCIManifest}}, man)
	if r.Status != http.StatusCreated {
		t.Fatalf("push manifest %s:%s: %s", repo, tag, r)
	}
	return sha256Digest(man), ld, layer
}

// getAll GETs a blob through the mirror and returns its sha256 (or the
// error that broke the download).
func getDigest(url string) (string, int64, error) {
	resp, err := http.Get(url)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", 0, fmt.Errorf("%s", resp.Status)
	}
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	if err != nil {
		return "", n, err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), n, nil
}

// TestProxyCoalesce is 32 concurrent cold pulls of a 256 MiB layer
// through the mirror: exactly one blob GET reaches the upstream, and every
// client gets the exact bytes.
func TestProxyCoalesce(t *testing.T) {
	ps := startPlainSetup(t, "")
	const size = 256 << 20
	_, layer, _ := pushRandomImage(t, ps.up, "big/app", "v1", size, 256)
	ps.fault.reset()
	const clients = 32
	var wg sync.WaitGroup
	errs := make([]error, clients)
	start := time.Now()
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			got, n, err := getDigest(ps.mirror.URL("/v2/big/app/blobs/" + layer))
			if err == nil && (got != layer || n != size) {
				err = fmt.Errorf("got %s (%d bytes)", got, n)
			}
			errs[i] = err
		}(i)
	}
	wg.Wait()
	t.Logf("%d concurrent cold pulls of 256 MiB: %v", clients, time.Since(start))
	for i, err := range errs {
		if err != nil {
			t.Errorf("client %d: %v", i, err)
		}
	}
	if n := ps.fault.count("GET", "blob"); n != 1 {
		t.Errorf("the upstream got %d blob GETs for %d clients, want 1: %v", n, clients, ps.fault.requests())
	}
}

// TestProxyFaults: a body dropped mid-blob is resumed; 429 with and
// without Retry-After, 503; one corrupted byte leaves nothing cached and
// fails the client.
func TestProxyFaults(t *testing.T) {
	ps := startPlainSetup(t, "")
	m := ps.mirror
	ref := func(repo string) string { return m.Addr + "/" + repo + ":v1" }

	t.Run("dropped mid-blob", func(t *testing.T) {
		_, layer, _ := pushRandomImage(t, ps.up, "fault/drop", "v1", 6<<20, 1)
		ps.fault.add(&faultRule{match: isBlobGet(layer), times: 1, dropAfter: 2 << 20})
		ps.fault.add(&faultRule{match: isBlobGet(layer), times: 1, delay: 300 * time.Millisecond, dropAfter: 1 << 20})
		ps.fault.reset()
		must(t, cranePull(t, ref("fault/drop")))
		var gets []string
		for _, r := range ps.fault.requests() {
			if r.Method == "GET" && strings.Contains(r.Path, layer) {
				gets = append(gets, r.Range)
			}
		}
		if strings.Join(gets, ",") != "bytes=2097152-,bytes=3145728-" && strings.Join(gets, ",") != ",bytes=2097152-,bytes=3145728-" {
			t.Errorf("layer GETs with ranges %q, want the first and two resumes", gets)
		}
	})

	t.Run("429", func(t *testing.T) {
		pushRandomImage(t, ps.up, "fault/limited", "v1", 1000, 2)
		pushRandomImage(t, ps.up, "fault/limited2", "v1", 1000, 3)
		ps.fault.add(&faultRule{match: isManifest(""), times: 1, status: http.StatusTooManyRequests, retryAfter: "7"})
		r := getManifest(t, m, "fault/limited", "v1")
		if r.Status != http.StatusTooManyRequests || r.Header.Get("Retry-After") != "7" || !strings.Contains(string(r.Body), "TOOMANYREQUESTS") {
			t.Errorf("429 with Retry-After: %s", r)
		}
		// The mirror now leaves the upstream alone for 7s: a 429 again,
		// without asking.
		ps.fault.reset()
		if r := getManifest(t, m, "fault/limited2", "v1"); r.Status != http.StatusTooManyRequests || len(ps.fault.requests()) != 0 {
			t.Errorf("within Retry-After: %s, upstream asked %v", r, ps.fault.requests())
		}
	})

	t.Run("429 without Retry-After, 503", func(t *testing.T) {
		// A fresh mirror: the last one is still waiting out the 429.
		ps2 := startPlainSetup(t, "")
		pushRandomImage(t, ps2.up, "fault/a", "v1", 1000, 4)
		must(t, cranePull(t, ps2.mirror.Addr+"/fault/a:v1"))
		ps2.fault.add(&faultRule{match: isManifest(""), status: http.StatusTooManyRequests})
		r := getManifest(t, ps2.mirror, "fault/b", "v1")
		if r.Status != http.StatusTooManyRequests || r.Header.Get("Retry-After") == "" {
			t.Errorf("429 without Retry-After: %s", r)
		}
		ps3 := startPlainSetup(t, "")
		pushRandomImage(t, ps3.up, "fault/a", "v1", 1000, 5)
		ps3.fault.add(&faultRule{match: isManifest(""), status: http.StatusServiceUnavailable})
		r = getManifest(t, ps3.mirror, "fault/a", "v1")
		if r.Status != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" {
			t.Errorf("503, nothing cached: %s", r)
		}
	})

	t.Run("one corrupted byte", func(t *testing.T) {
		_, layer, _ := pushRandomImage(t, ps.up, "fault/corrupt", "v1", 3<<20, 6)
		ps.fault.add(&faultRule{match: isBlobGet(layer), corruptAt: 1<<20 + 7})
		got, n, err := getDigest(m.URL("/v2/fault/corrupt/blobs/" + layer))
		if err == nil {
			t.Fatalf("a corrupted blob was served whole (%s, %d bytes)", got, n)
		}
		if cranePull(t, ref("fault/corrupt")) == nil {
			t.Error("crane pulled an image whose layer arrived corrupted")
		}
		time.Sleep(500 * time.Millisecond) // the fill is over by now; nothing may be left
		data := filepath.Join(m.RootDir, "docker/registry/v2/blobs/sha256", layer[7:9], layer[7:], "data")
		if _, err := os.Stat(data); err == nil {
			t.Errorf("the corrupted blob is in the mirror's store: %s", data)
		}
		ps.fault.clearFaults()
		must(t, cranePull(t, ref("fault/corrupt")))
	})
}

// TestProxyStartsWithUpstreamDown: a mirror whose upstream is down from
// the start serves, and answers 503 for what it does not have.
func TestProxyStartsWithUpstreamDown(t *testing.T) {
	fault := startUpstreamFault(t, "127.0.0.1:1")
	fault.goAway()
	m := startServerExtra(t, "registryd", registrydBin, t.TempDir(), "", "proxy:\n  remoteurl: "+fault.URL()+"\n", nil)
	if r := doHTTP(t, http.MethodGet, m.URL("/v2/"), nil, nil); r.Status != 200 {
		t.Fatalf("GET /v2/: %s", r)
	}
	if r := getManifest(t, m, "library/alpine", "3"); r.Status != http.StatusServiceUnavailable {
		t.Errorf("uncached with the upstream down: %s", r)
	}
}

// TestProxyS3SharedCache: two mirror instances on one MinIO bucket share
// one cache: what one fetched the other serves with the upstream gone.
func TestProxyS3SharedCache(t *testing.T) {
	mn := startMinio(t)
	_, storageYAML := mn.bucket(t)
	up := startRegistryd(t)
	fault := startUpstreamFault(t, up.Addr)
	extra := fmt.Sprintf("proxy:\n  remoteurl: %s\n  timeout: 2s\n", fault.URL())
	a := startServerExtra(t, "registryd", registrydBin, "", storageYAML, extra, nil)
	b := startServerExtra(t, "registryd", registrydBin, "", storageYAML, extra, nil)
	digest, layer, content := pushRandomImage(t, up, "s3/app", "v1", 12<<20, 7)
	if got := craneDigest(t, a.Addr+"/s3/app:v1"); got != digest {
		t.Fatalf("digest through A: %s", got)
	}
	must(t, cranePull(t, a.Addr+"/s3/app:v1"))
	// The fill's commit to the bucket follows the client's download.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		var st struct{ FillsInFlight int }
		getJSON(t, a, "/v2/_registryd/v1/cache", &st)
		if st.FillsInFlight == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("fills still running after 30s")
		}
	}
	fault.goAway()
	must(t, cranePull(t, b.Addr+"/s3/app:v1"))
	r := getBlob(t, b, "s3/app", layer)
	if r.Status != 200 || !bytes.Equal(r.Body, content) {
		t.Fatalf("layer through B from the shared cache: %d, %d bytes", r.Status, len(r.Body))
	}
	if n := fault.served("GET", "blob"); n != 2 {
		t.Errorf("the upstream served %d blob GETs, want 2 (config and layer, once)", n)
	}
}

// dirSize is the bytes of the regular files below dir.
func dirSize(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

// TestProxyEviction: under a small size cap, pulls go on while eviction
// keeps the cache under it, and every image still cached pulls whole with
// the upstream gone.
func TestProxyEviction(t *testing.T) {
	const maxSize = 3 << 20
	up := startRegistryd(t)
	fault := startUpstreamFault(t, up.Addr)
	m := startServerExtra(t, "registryd", registrydBin, t.TempDir(), "", fmt.Sprintf(`proxy:
  remoteurl: %s
  timeout: 2s
  cache:
    maxsize: %d
    highwatermark: 90
    lowwatermark: 60
    interval: 200ms
`, fault.URL(), maxSize), nil)
	const images = 10
	for i := 0; i < images; i++ {
		pushRandomImage(t, up, fmt.Sprintf("evict/app%d", i), "v1", 512<<10, int64(100+i))
	}
	type cacheStatus struct {
		Usage    int64
		Images   int
		LastPass *time.Time
	}
	var maxSeen int64
	for i := 0; i < images; i++ {
		must(t, cranePull(t, fmt.Sprintf("%s/evict/app%d:v1", m.Addr, i)))
		var st cacheStatus
		getJSON(t, m, "/v2/_registryd/v1/cache", &st)
		maxSeen = max(maxSeen, st.Usage)
		if st.Usage > maxSize*90/100 {
			t.Errorf("after pull %d the cache holds %d bytes, over the high watermark of %d", i, st.Usage, maxSize*90/100)
		}
	}
	time.Sleep(500 * time.Millisecond)
	var st cacheStatus
	getJSON(t, m, "/v2/_registryd/v1/cache", &st)
	t.Logf("cache after %d pulls of %d bytes: %d bytes, %d images (most seen %d)", images, 512<<10, st.Usage, st.Images, maxSeen)
	if st.LastPass == nil || st.Usage == 0 || st.Usage > maxSize {
		t.Fatalf("status %+v", st)
	}
	fault.goAway()
	kept := 0
	for i := 0; i < images; i++ {
		repo := fmt.Sprintf("evict/app%d", i)
		r := doHTTP(t, http.MethodGet, m.URL("/v2/"+repo+"/tags/list"), nil, nil)
		if r.Status != 200 || !strings.Contains(string(r.Body), `"v1"`) {
			continue // evicted
		}
		kept++
		if err := cranePull(t, m.Addr+"/"+repo+":v1"); err != nil {
			t.Errorf("%s is still cached but does not pull: %v", repo, err)
		}
	}
	if kept == 0 || kept == images {
		t.Errorf("%d of %d images still cached", kept, images)
	}
}

// TestConformanceBesideMirror: with upstreams configured (one down), the
// hosted repositories beside the cached ones pass the conformance suite as
// a plain registry does.
func TestConformanceBesideMirror(t *testing.T) {
	bin := tool(t, "conformance")
	srv := startRegistryd(t, "REGISTRY_PROXY_UPSTREAMS_0_NAME=ghcr.io", "REGISTRY_PROXY_UPSTREAMS_0_URL=http://127.0.0.1:1",
		"REGISTRY_PROXY_UPSTREAMS_0_TIMEOUT=1s")
	runConformance(t, bin, srv.Addr, "1.1", t.TempDir())
	if r := getManifest(t, srv, "ghcr.io/org/app", "v1"); r.Status != http.StatusServiceUnavailable {
		t.Errorf("a cached repository of the down upstream: %s", r)
	}
}

// TestProxyMirrorAuth: a mirror with its own auth (htpasswd) checks its
// callers before anything reaches the upstream, serves them once logged
// in, never passes their credentials on, and answers a push into the
// cache 405 UNSUPPORTED, as distribution's proxy does, after the login.
func TestProxyMirrorAuth(t *testing.T) {
	const user, pass = "alice", "alice-mirror-pw"
	dir := t.TempDir()
	h, err := bcrypt.GenerateFromPassword([]byte(pass), bcrypt.MinCost)
	must(t, err)
	htp := filepath.Join(dir, "htpasswd")
	must(t, os.WriteFile(htp, []byte(user+":"+string(h)+"\n"), 0o600))
	up := startRegistryd(t)
	fault := startUpstreamFault(t, up.Addr)
	// Started as the reference upstream is: ready when /v2/ asks for
	// credentials.
	m := &Server{Name: "registryd"}
	for attempt := 0; ; attempt++ {
		addr, err := localsrv.FreeAddr()
		must(t, err)
		m.Addr = addr
		cfg := filepath.Join(dir, "config.yml")
		must(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`version: 0.1
storage:
  filesystem:
    rootdirectory: %s
http:
  addr: %s
auth:
  htpasswd:
    realm: mirror
    path: %s
proxy:
  remoteurl: %s
  timeout: 2s
`, filepath.Join(dir, "data"), addr, htp, fault.URL())), 0o644))
		if waitUp(t, registrydBin, cfg, filepath.Join(dir, "registryd.log"), addr, http.StatusUnauthorized) {
			break
		}
		if attempt == 2 {
			t.Fatalf("the mirror did not start:\n%s", tail(filepath.Join(dir, "registryd.log"), 30))
		}
	}
	digest, _, _ := pushRandomImage(t, up, "team/app", "v1", 64<<10, 30)
	fault.reset()

	r := getManifest(t, m, "team/app", "v1")
	if r.Status != http.StatusUnauthorized || r.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("anonymous pull from a mirror with auth: %s", r)
	}
	if reqs := fault.requests(); len(reqs) != 0 {
		t.Errorf("an anonymous request reached the upstream: %v", reqs)
	}

	env := clientEnv(t)
	crane := tool(t, "crane")
	runCmd(t, env, clientTimeout, crane, "auth", "login", m.Addr, "-u", user, "-p", pass, "--insecure")
	if got := strings.TrimSpace(runCmd(t, env, clientTimeout, crane, "digest", "--insecure", m.Addr+"/team/app:v1").Stdout); got != digest {
		t.Errorf("digest through the mirror: %q, want %s", got, digest)
	}
	runCmd(t, env, clientTimeout, crane, "pull", "--insecure", m.Addr+"/team/app:v1", filepath.Join(t.TempDir(), "img.tar"))
	if n := fault.served("GET", "blob"); n != 2 {
		t.Errorf("the upstream served %d blob GETs, want 2: %v", n, fault.requests())
	}
	for _, q := range fault.requests() {
		if q.Auth != "" {
			t.Errorf("a request to the upstream (which wants no credentials) carried Authorization %q: %s", q.Auth, q)
		}
	}

	basic := http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))}}
	r = doHTTP(t, http.MethodPost, m.URL("/v2/team/app/blobs/uploads/"), basic, nil)
	if r.Status != http.StatusMethodNotAllowed || !strings.Contains(string(r.Body), "UNSUPPORTED") {
		t.Errorf("push into the cache: %s", r)
	}
	r = doHTTP(t, http.MethodDelete, m.URL("/v2/team/app/manifests/"+digest), basic, nil)
	if r.Status != http.StatusMethodNotAllowed || !strings.Contains(string(r.Body), "UNSUPPORTED") {
		t.Errorf("delete in the cache: %s", r)
	}
}
