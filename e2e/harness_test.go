// Package e2e tests a live registryd process from the outside: the OCI
// distribution-spec conformance suite, real clients (skopeo, crane, oras,
// regctl, docker) and on-disk compatibility with the reference registry
// (Debian's docker-registry, distribution 2.8).
//
// The tests only exec binaries; they do not import registryd's packages.
// They need the tools that scripts/install-deps.sh installs (`make test` runs
// it first); a missing tool fails the test with that hint.
//
// Environment (relative paths are from the repository root):
//
//	REGISTRYD_E2E_BINARY=path      test this binary instead of building ./cmd/registryd
//	                               (any binary run as `BIN serve config.yml`, e.g.
//	                               /usr/bin/docker-registry to check the harness itself)
//	REGISTRYD_E2E_REFERENCE=path   the reference registry (default /usr/bin/docker-registry)
//	REGISTRYD_E2E_TOOLS_BIN=dir    where install-deps.sh put the tools (default .cache/bin)
//	REGISTRYD_E2E_SKIP_DOCKER=1    skip the docker test
//	REGISTRYD_MINIO=path           the minio binary for the S3 tests (default .cache/bin/minio,
//	                               then $(go env GOPATH)/bin/minio, then $PATH)
//	REGISTRYD_S3_SKIP=1            skip the S3 tests when no minio binary is found (else they fail)
//	REGISTRYD_E2E_LOG_LEVEL=level  server log level (default error)
//	REGISTRYD_E2E_RESULTS_DIR=dir  keep conformance results (report.html, junit.xml) there
//	OCI_*                          passed on to the conformance suite, overriding the test's settings
package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/registryd/registryd/internal/localsrv"
)

const installHint = "run scripts/install-deps.sh (make test does)"

var (
	repoRoot     string // the main module's directory
	registrydBin string // the binary under test
	buildErr     error  // why registrydBin could not be built
	referenceBin string // Debian's docker-registry
	toolsBin     string // where install-deps.sh puts conformance, crane, oras, regctl
	serverLogLvl = "error"
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	wd, err := os.Getwd()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	repoRoot = filepath.Dir(wd)
	if _, err := os.Stat(filepath.Join(repoRoot, "go.mod")); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: cannot find the repository root from %s: %v\n", wd, err)
		return 1
	}
	toolsBin = fromRoot(envOr("REGISTRYD_E2E_TOOLS_BIN", filepath.Join(repoRoot, ".cache", "bin")))
	referenceBin = envOr("REGISTRYD_E2E_REFERENCE", "/usr/bin/docker-registry")
	serverLogLvl = envOr("REGISTRYD_E2E_LOG_LEVEL", "error")

	tmp, err := os.MkdirTemp("", "registryd-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)

	if b := os.Getenv("REGISTRYD_E2E_BINARY"); b != "" {
		registrydBin = fromRoot(b)
		fmt.Fprintf(os.Stderr, "e2e: testing REGISTRYD_E2E_BINARY=%s\n", b)
	} else {
		registrydBin = filepath.Join(tmp, "registryd")
		cmd := exec.Command("go", "build", "-buildvcs=false", "-o", registrydBin, "./cmd/registryd")
		cmd.Dir = repoRoot
		out, err := cmd.CombinedOutput()
		if err != nil {
			// Every test that needs the server fails with this; the others still run.
			buildErr = fmt.Errorf("go build ./cmd/registryd: %v\n%s", err, out)
		}
	}
	return m.Run()
}

// fromRoot makes a relative path (given from the repository root, where make
// runs) absolute; go test itself runs in e2e/.
func fromRoot(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(repoRoot, p)
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// tool returns the path of a tool that scripts/install-deps.sh builds into
// .cache/bin, failing the test when it is missing.
func tool(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(toolsBin, name)
	if fi, err := os.Stat(p); err != nil || fi.IsDir() {
		t.Fatalf("%s not found at %s: %s", name, p, installHint)
	}
	return p
}

// system returns the path of a program from a Debian package, failing the
// test when it is missing. Candidates are tried in order, then $PATH.
func system(t testing.TB, name string, candidates ...string) string {
	t.Helper()
	for _, c := range candidates {
		if fi, err := os.Stat(c); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return c
		}
	}
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: %s", name, installHint)
	}
	return p
}

// ---------------------------------------------------------------- servers

// Server is a registry process (registryd or the reference) listening on
// 127.0.0.1 with filesystem storage in RootDir.
type Server struct {
	Name    string // "registryd" or "reference"
	Addr    string // 127.0.0.1:PORT
	RootDir string // storage root directory
	// Storage, when set, is the YAML of the storage driver section written
	// in place of filesystem (indented for its place below storage:).
	Storage string
	Config  string // path of the config file
	LogPath string // stdout+stderr of the process (all runs appended)
	// Extra is YAML appended to the config (top-level sections such as
	// proxy:).
	Extra string

	t       testing.TB
	bin     string
	env     []string
	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{} // closed when cmd exits
	waitErr error
}

// URL returns http://ADDR followed by path.
func (s *Server) URL(path string) string { return "http://" + s.Addr + path }

// startRegistryd starts registryd on a free 127.0.0.1 port with filesystem
// storage in a fresh t.TempDir() and deletes enabled; it is stopped when the
// test ends. extraEnv entries (KEY=VALUE, e.g. REGISTRY_* overrides) are added
// to the process environment.
func startRegistryd(t testing.TB, extraEnv ...string) *Server {
	t.Helper()
	return startRegistrydOn(t, t.TempDir(), extraEnv...)
}

// startRegistrydOn is startRegistryd over an existing storage root directory.
func startRegistrydOn(t testing.TB, rootDir string, extraEnv ...string) *Server {
	t.Helper()
	if buildErr != nil {
		t.Fatalf("registryd does not build: %v", buildErr)
	}
	return startServer(t, "registryd", registrydBin, rootDir, extraEnv)
}

// startReference starts the reference registry (Debian's docker-registry,
// distribution 2.8) the same way, over rootDir.
func startReference(t testing.TB, rootDir string, extraEnv ...string) *Server {
	t.Helper()
	bin := referenceBin
	if fi, err := os.Stat(bin); err != nil || fi.IsDir() {
		t.Fatalf("reference registry not found at %s: %s", bin, installHint)
	}
	return startServer(t, "reference", bin, rootDir, extraEnv)
}

// startRegistrydStorage starts registryd with storageYAML as its storage
// driver section (e.g. "  s3:\n    bucket: b\n..."), deletes enabled.
func startRegistrydStorage(t testing.TB, storageYAML string, extraEnv ...string) *Server {
	t.Helper()
	if buildErr != nil {
		t.Fatalf("registryd does not build: %v", buildErr)
	}
	return startServerStorage(t, "registryd", registrydBin, "", storageYAML, extraEnv)
}

func startServer(t testing.TB, name, bin, rootDir string, extraEnv []string) *Server {
	t.Helper()
	return startServerStorage(t, name, bin, rootDir, "", extraEnv)
}

func startServerStorage(t testing.TB, name, bin, rootDir, storageYAML string, extraEnv []string) *Server {
	t.Helper()
	return startServerExtra(t, name, bin, rootDir, storageYAML, "", extraEnv)
}

// startServerExtra is startServerStorage with extra YAML appended to the
// config.
func startServerExtra(t testing.TB, name, bin, rootDir, storageYAML, extra string, extraEnv []string) *Server {
	t.Helper()
	dir := t.TempDir()
	s := &Server{
		Name:    name,
		Extra:   extra,
		RootDir: rootDir,
		Storage: storageYAML,
		Config:  filepath.Join(dir, "config.yml"),
		LogPath: filepath.Join(dir, name+".log"),
		t:       t,
		bin:     bin,
		env:     serverEnv(extraEnv),
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			s.dumpLog()
		}
	})
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		addr, err := localsrv.FreeAddr()
		if err != nil {
			t.Fatalf("free port: %v", err)
		}
		s.Addr = addr
		if err := s.writeConfig(); err != nil {
			t.Fatal(err)
		}
		if lastErr = s.start(); lastErr == nil {
			return s
		}
		// Another process may have taken the port between freePort and start.
	}
	t.Fatalf("%s did not start: %v", name, lastErr)
	return nil
}

// serverEnv is the test's environment without REGISTRY_* (which would change
// the config under test), plus extra.
func serverEnv(extra []string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "REGISTRY_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

func (s *Server) writeConfig() error {
	drv := s.Storage
	if drv == "" {
		drv = fmt.Sprintf("  filesystem:\n    rootdirectory: %s\n", s.RootDir)
	}
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: %s
storage:
%s  delete:
    enabled: true
http:
  addr: %s
`, serverLogLvl, drv, s.Addr)
	return os.WriteFile(s.Config, []byte(cfg+s.Extra), 0o644)
}

// start runs the process and waits until GET /v2/ answers 200.
func (s *Server) start() error {
	logf, err := os.OpenFile(s.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(logf, "==== %s %s serve %s (addr %s)\n", time.Now().Format(time.RFC3339Nano), s.bin, s.Config, s.Addr)
	cmd := exec.Command(s.bin, "serve", s.Config)
	cmd.Env = s.env
	cmd.Dir = filepath.Dir(s.Config)
	cmd.Stdout = logf
	cmd.Stderr = logf
	// Never outlive the test binary (e.g. after a go test -timeout panic).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	exited := make(chan struct{})
	s.mu.Lock()
	s.cmd, s.exited, s.waitErr = cmd, exited, nil
	s.mu.Unlock()
	go func() {
		err := cmd.Wait()
		logf.Close()
		s.mu.Lock()
		s.waitErr = err
		s.mu.Unlock()
		close(exited)
	}()

	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(20 * time.Second)
	var lastErr error
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("%s exited before serving: %v\n%s", s.Name, s.wait(), tail(s.LogPath, 40))
		default:
		}
		resp, err := client.Get(s.URL("/v2/"))
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET /v2/: %s", resp.Status)
		}
		lastErr = err
		time.Sleep(50 * time.Millisecond)
	}
	cmd.Process.Kill()
	<-exited
	return fmt.Errorf("%s not ready within 20s: %v\n%s", s.Name, lastErr, tail(s.LogPath, 40))
}

func (s *Server) wait() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.waitErr
}

// running reports whether the process is alive.
func (s *Server) running() bool {
	s.mu.Lock()
	ch := s.exited
	s.mu.Unlock()
	if ch == nil {
		return false
	}
	select {
	case <-ch:
		return false
	default:
		return true
	}
}

// Stop sends SIGTERM and waits up to 10 s, then SIGKILL. It returns the
// process's exit error (nil for a clean exit; after SIGKILL, the kill).
func (s *Server) Stop() error {
	return s.signal(syscall.SIGTERM, 10*time.Second)
}

// Kill sends SIGKILL (a crash, no chance to clean up) and waits for the exit.
func (s *Server) Kill() {
	s.signal(syscall.SIGKILL, 0)
}

func (s *Server) signal(sig syscall.Signal, grace time.Duration) error {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.mu.Unlock()
	if cmd == nil {
		return nil
	}
	select {
	case <-exited:
		return s.wait()
	default:
	}
	cmd.Process.Signal(sig)
	if grace > 0 {
		select {
		case <-exited:
			return s.wait()
		case <-time.After(grace):
			s.t.Logf("%s did not exit within %s of %s; killing it", s.Name, grace, sig)
			cmd.Process.Kill()
		}
	}
	<-exited
	return s.wait()
}

// Restart starts the process again on the same address, config and storage
// (after Stop or Kill; a running process is stopped first).
func (s *Server) Restart() {
	s.t.Helper()
	if s.running() {
		s.Stop()
	}
	var err error
	for i := 0; i < 3; i++ {
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	s.t.Fatalf("restart %s: %v", s.Name, err)
}

func (s *Server) dumpLog() {
	s.t.Logf("---- %s log (%s), last lines:\n%s", s.Name, s.LogPath, tail(s.LogPath, 60))
}

// tail is the end of a server's log, for failure messages.
func tail(path string, n int) string { return localsrv.Tail(path, n) }

// ---------------------------------------------------------------- commands

// cmdResult is what a finished command printed.
type cmdResult struct {
	Stdout, Stderr string
}

// runCmd runs a program with the given extra environment and a timeout,
// failing the test (with the command's output) when it does not exit 0.
func runCmd(t testing.TB, env []string, timeout time.Duration, name string, args ...string) cmdResult {
	t.Helper()
	r, err := tryCmd(env, timeout, name, args...)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return r
}

// runCmdIn is runCmd in the working directory dir.
func runCmdIn(t testing.TB, dir string, env []string, timeout time.Duration, name string, args ...string) cmdResult {
	t.Helper()
	r, err := tryCmdIn(dir, env, timeout, name, args...)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return r
}

// tryCmd is runCmd returning the failure instead.
func tryCmd(env []string, timeout time.Duration, name string, args ...string) (cmdResult, error) {
	return tryCmdIn("", env, timeout, name, args...)
}

func tryCmdIn(dir string, env []string, timeout time.Duration, name string, args ...string) (cmdResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	r := cmdResult{Stdout: stdout.String(), Stderr: stderr.String()}
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			err = fmt.Errorf("timed out after %s", timeout)
		}
		return r, fmt.Errorf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", filepath.Base(name), strings.Join(args, " "), err,
			truncate(r.Stdout, 4000), truncate(r.Stderr, 4000))
	}
	return r, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + fmt.Sprintf("\n... (%d more bytes)", len(s)-n)
}

// clientEnv gives a client program a private HOME (and docker/containers
// config dirs) so that `regctl registry set`, docker's config and friends
// neither read nor change the user's.
func clientEnv(t testing.TB) []string {
	t.Helper()
	home := t.TempDir()
	for _, d := range []string{".docker", ".config", "run", ".regctl"} {
		if err := os.MkdirAll(filepath.Join(home, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	return []string{
		"HOME=" + home,
		"DOCKER_CONFIG=" + filepath.Join(home, ".docker"),
		"XDG_CONFIG_HOME=" + filepath.Join(home, ".config"),
		"XDG_RUNTIME_DIR=" + filepath.Join(home, "run"),
	}
}

// TestHarnessKillRestart checks the harness itself (and the most basic
// durability): content pushed before a kill -9 is served after a restart on
// the same storage and address, and a SIGTERM stops the server cleanly.
func TestHarnessKillRestart(t *testing.T) {
	crane := tool(t, "crane")
	srv := startRegistryd(t)
	img := newTestImage(t, t.TempDir(), "v1", "restart")
	env := clientEnv(t)
	runCmd(t, env, clientTimeout, crane, "push", "--insecure", img.Layout, srv.Addr+"/e2e/restart:v1")
	addr := srv.Addr

	srv.Kill()
	if srv.running() {
		t.Fatal("still running after Kill")
	}
	if _, err := http.Get(srv.URL("/v2/")); err == nil {
		t.Fatal("still answering after Kill")
	}
	srv.Restart()
	if srv.Addr != addr {
		t.Errorf("restarted on %s, expected %s", srv.Addr, addr)
	}
	checkManifest(t, srv, "e2e/restart", "v1", img.Digest, mtOCIManifest)
	for d, b := range img.Blobs {
		checkBlob(t, srv, "e2e/restart", d, b)
	}
	if err := srv.Stop(); err != nil && srv.bin == registrydBin && os.Getenv("REGISTRYD_E2E_BINARY") == "" {
		t.Errorf("registryd did not exit cleanly on SIGTERM: %v", err)
	}
	srv.Restart()
	checkManifest(t, srv, "e2e/restart", img.Digest, img.Digest, mtOCIManifest)
}
