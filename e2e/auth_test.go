package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/registryd/registryd/internal/localsrv"
)

// The users of the auth tests and what the access rules give them:
// alice everything on team-a, bob pull on team-a, root everything
// (administration too), and anonymous callers pull on public.
var authUsers = map[string]string{"alice": "alice-secret-pw", "bob": "bob-secret-pw", "root": "root-secret-pw"}

const authAccess = `access:
  groups:
    admins: [root]
  rules:
    - repositories: ["team-a/**"]
      users: [alice]
      actions: [pull, push, delete]
    - repositories: ["team-a/**"]
      users: [bob]
      actions: [pull]
    - repositories: ["**"]
      groups: [admins]
      actions: ["*"]
    - repositories: ["**"]
      groups: [admins]
      actions: [admin]
  anonymous:
    - repositories: ["public/**"]
      actions: [pull]
`

// authServer is a registryd process started with an auth configuration;
// the harness's Server waits for GET /v2/ to answer 200, which a registry
// with authentication never does.
type authServer struct {
	Addr    string
	LogPath string
	TLS     *testCA // nil: plain HTTP
	Config  string  // the config file's path
	proc    *os.Process
	stop    func() // stops the process started last
}

// restart stops the server and starts it again on the same config (the
// web UI's sessions survive it: the config sets http.secret).
func (s *authServer) restart(t *testing.T) {
	t.Helper()
	s.stop()
	if err := s.start(t, s.Config); err != nil {
		t.Fatal(err)
	}
}

func (s *authServer) URL(path string) string {
	if s.TLS != nil {
		return "https://" + s.Addr + path
	}
	return "http://" + s.Addr + path
}

// client trusts the server's test CA when it serves TLS.
func (s *authServer) client() *http.Client {
	if s.TLS == nil {
		return &http.Client{Timeout: 60 * time.Second}
	}
	return &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.TLS.Pool}}}
}

// startAuthRegistryd writes the htpasswd file and, in token mode, a token
// signing key, then starts registryd with the config mode builds, and waits
// for GET /v2/ to answer 401. mode is "htpasswd" or "token".
func startAuthRegistryd(t *testing.T, mode string) *authServer {
	t.Helper()
	return startAuthRegistrydTLS(t, mode, nil)
}

// startAuthRegistrydTLS is startAuthRegistryd serving HTTPS with a
// certificate from ca when ca is not nil.
func startAuthRegistrydTLS(t *testing.T, mode string, ca *testCA) *authServer {
	t.Helper()
	if buildErr != nil {
		t.Fatalf("registryd does not build: %v", buildErr)
	}
	dir := t.TempDir()
	var htp strings.Builder
	for u, pw := range authUsers {
		h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
		must(t, err)
		fmt.Fprintf(&htp, "%s:$2y$%s\n", u, h[4:])
	}
	htpath := filepath.Join(dir, "htpasswd")
	must(t, os.WriteFile(htpath, []byte(htp.String()), 0o600))
	keyPath := filepath.Join(dir, "token.key")
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	der, err := x509.MarshalPKCS8PrivateKey(k)
	must(t, err)
	must(t, os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600))

	s := &authServer{LogPath: filepath.Join(dir, "registryd.log"), TLS: ca}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		addr, err := localsrv.FreeAddr()
		must(t, err)
		s.Addr = addr
		cfg := fmt.Sprintf(`version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
  secret: registryd-e2e-secret
auth:
  htpasswd:
    realm: registryd-e2e
    path: %s
`, filepath.Join(dir, "data"), s.Addr, htpath)
		if ca != nil {
			cfg = strings.Replace(cfg, "http:\n  addr: "+s.Addr+"\n", fmt.Sprintf("http:\n  addr: %s\n  tls:\n    certificate: %s\n    key: %s\n", s.Addr, ca.CertFile, ca.KeyFile), 1)
		}
		if mode == "token" {
			cfg += fmt.Sprintf(`  token:
    realm: %s/auth/token
    service: registryd-e2e
    issuer: registryd-e2e-issuer
  tokenserver:
    key: %s
`, strings.TrimSuffix(s.URL(""), "/"), keyPath)
		}
		cfgPath := filepath.Join(dir, "config.yml")
		must(t, os.WriteFile(cfgPath, []byte(cfg+authAccess), 0o644))
		s.Config = cfgPath
		if lastErr = s.start(t, cfgPath); lastErr == nil {
			return s
		}
	}
	t.Fatalf("registryd did not start: %v", lastErr)
	return nil
}

func (s *authServer) start(t *testing.T, cfgPath string) error {
	logf, err := os.OpenFile(s.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(registrydBin, "serve", cfgPath)
	cmd.Env = serverEnv(nil)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	s.proc = cmd.Process
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
	s.stop = stop

	client := s.client()
	client.Timeout = 2 * time.Second
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		select {
		case <-exited:
			return fmt.Errorf("registryd exited before serving:\n%s", tail(s.LogPath, 40))
		default:
		}
		resp, err := client.Get(s.URL("/v2/"))
		if err != nil {
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			stop()
			return fmt.Errorf("GET /v2/ without credentials: %s, expected 401", resp.Status)
		}
		t.Cleanup(func() {
			stop()
			if t.Failed() {
				t.Logf("---- registryd log, last lines:\n%s", tail(s.LogPath, 60))
			}
		})
		return nil
	}
	stop()
	return fmt.Errorf("registryd not ready within 20s:\n%s", tail(s.LogPath, 40))
}

func basicHeader(user string) http.Header {
	return http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+authUsers[user]))}}
}

// checkNoPasswordsLogged fails if the server log holds a password.
func checkNoPasswordsLogged(t *testing.T, s *authServer) {
	t.Helper()
	b, err := os.ReadFile(s.LogPath)
	must(t, err)
	for u, pw := range authUsers {
		if strings.Contains(string(b), pw) {
			t.Errorf("the server log holds %s's password", u)
		}
	}
}

// craneClient runs crane with a docker config of its own, so that each
// user's login stays with that user's client.
func craneClient(t *testing.T) func(args ...string) (cmdResult, error) {
	t.Helper()
	crane := tool(t, "crane")
	env := clientEnv(t)
	return func(args ...string) (cmdResult, error) {
		return tryCmd(env, clientTimeout, crane, append(args, "--insecure")...)
	}
}

func TestAuthHtpasswd(t *testing.T) {
	srv := startAuthRegistryd(t, "htpasswd")
	r := doHTTP(t, http.MethodGet, srv.URL("/v2/"), nil, nil)
	if got := r.Header.Get("WWW-Authenticate"); got != `Basic realm="registryd-e2e"` {
		t.Fatalf("GET /v2/: challenge %q", got)
	}
	if r := doHTTP(t, http.MethodGet, srv.URL("/v2/"), basicHeader("alice"), nil); r.Status != http.StatusOK {
		t.Fatalf("GET /v2/ as alice: %s", r)
	}
	img := newTestImage(t, t.TempDir(), "v1", "auth-htpasswd")
	authClients(t, srv, img)

	// The catalog lists what the caller may pull.
	for user, want := range map[string][]string{
		"bob":  {"public/base", "team-a/app", "team-a/skopeo"},
		"root": {"public/base", "team-a/app", "team-a/skopeo", "team-b/app"},
		"":     {"public/base"},
	} {
		var h http.Header
		if user != "" {
			h = basicHeader(user)
		}
		r := doHTTP(t, http.MethodGet, srv.URL("/v2/_catalog"), h, nil)
		var body struct{ Repositories []string }
		_ = json.Unmarshal(r.Body, &body)
		if r.Status != http.StatusOK || !slices.Equal(body.Repositories, want) {
			t.Errorf("catalog for %q: %s, expected %v", user, r, want)
		}
	}
	checkNoPasswordsLogged(t, srv)
}

func TestAuthTokenServer(t *testing.T) {
	srv := startAuthRegistryd(t, "token")
	r := doHTTP(t, http.MethodGet, srv.URL("/v2/"), nil, nil)
	want := fmt.Sprintf(`Bearer realm="http://%s/auth/token",service="registryd-e2e"`, srv.Addr)
	if got := r.Header.Get("WWW-Authenticate"); got != want {
		t.Fatalf("GET /v2/: challenge %q, expected %q", got, want)
	}
	// The token endpoint as docker login uses it.
	r = doHTTP(t, http.MethodGet, srv.URL("/auth/token?service=registryd-e2e&account=alice&client_id=docker&offline_token=true"), basicHeader("alice"), nil)
	var tok struct {
		Token     string `json:"token"`
		ExpiresIn int    `json:"expires_in"`
	}
	if r.Status != http.StatusOK || json.Unmarshal(r.Body, &tok) != nil || tok.Token == "" || tok.ExpiresIn != 300 {
		t.Fatalf("token request: %s", r)
	}
	if r := doHTTP(t, http.MethodGet, srv.URL("/v2/"), http.Header{"Authorization": {"Bearer " + tok.Token}}, nil); r.Status != http.StatusOK {
		t.Fatalf("GET /v2/ with the token: %s", r)
	}
	bad := http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte("alice:wrong"))}}
	if r := doHTTP(t, http.MethodGet, srv.URL("/auth/token?service=registryd-e2e"), bad, nil); r.Status != http.StatusUnauthorized {
		t.Fatalf("token request with a wrong password: %s", r)
	}
	img := newTestImage(t, t.TempDir(), "v1", "auth-token")
	authClients(t, srv, img)
	checkNoPasswordsLogged(t, srv)
}

// authClients runs real clients against an auth-enabled registry: logins,
// pushes and pulls allowed and refused by the rules, anonymous pulls.
func authClients(t *testing.T, srv *authServer, img testImage) {
	t.Helper()
	root, alice, bob, anon := craneClient(t), craneClient(t), craneClient(t), craneClient(t)
	for user, cr := range map[string]func(...string) (cmdResult, error){"root": root, "alice": alice, "bob": bob} {
		if _, err := cr("auth", "login", srv.Addr, "-u", user, "-p", authUsers[user]); err != nil {
			t.Fatalf("crane auth login as %s: %v", user, err)
		}
	}
	ok := func(what string, r cmdResult, err error) cmdResult {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return r
	}
	refused := func(what string, _ cmdResult, err error) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s succeeded; it must be refused", what)
		}
		// Clients word it differently (HEAD answers have no body).
		msg := strings.ToLower(err.Error())
		if !strings.Contains(msg, "denied") && !strings.Contains(msg, "unauthorized") && !strings.Contains(msg, "401") && !strings.Contains(msg, "403") {
			t.Errorf("%s: refused, but not for lack of access: %v", what, err)
		}
	}
	ref := func(repo string) string { return srv.Addr + "/" + repo + ":v1" }

	r, err := root("push", img.Layout, ref("team-b/app"))
	ok("root pushes team-b/app", r, err)
	r, err = root("push", img.Layout, ref("public/base"))
	ok("root pushes public/base", r, err)
	r, err = alice("push", img.Layout, ref("team-a/app"))
	ok("alice pushes team-a/app", r, err)
	r, err = alice("push", img.Layout, ref("team-b/other"))
	refused("alice pushes team-b/other", r, err)
	r, err = bob("digest", ref("team-a/app"))
	if got := strings.TrimSpace(ok("bob reads team-a/app", r, err).Stdout); got != img.Digest {
		t.Errorf("bob reads digest %s, expected %s", got, img.Digest)
	}
	r, err = bob("push", img.Layout, srv.Addr+"/team-a/app:v2")
	refused("bob pushes team-a/app", r, err)
	r, err = bob("delete", srv.Addr+"/team-a/app@"+img.Digest)
	refused("bob deletes from team-a/app", r, err)
	r, err = bob("digest", ref("team-b/app"))
	refused("bob reads team-b/app", r, err)
	r, err = anon("digest", ref("public/base"))
	ok("anonymous reads public/base", r, err)
	r, err = anon("push", img.Layout, srv.Addr+"/public/base:v2")
	refused("anonymous pushes public/base", r, err)
	r, err = anon("digest", ref("team-a/app"))
	refused("anonymous reads team-a/app", r, err)

	// skopeo (containers/image) with credentials on the command line.
	skopeo := system(t, "skopeo", "/usr/bin/skopeo")
	env := clientEnv(t)
	out := filepath.Join(t.TempDir(), "oci")
	if _, err := tryCmd(env, clientTimeout, skopeo, "--insecure-policy", "copy", "--src-tls-verify=false",
		"--src-creds", "bob:"+authUsers["bob"], "docker://"+ref("team-a/app"), "oci:"+out+":v1"); err != nil {
		t.Fatalf("skopeo copy as bob: %v", err)
	}
	if got := layoutManifestDigest(t, out, "v1"); got != img.Digest {
		t.Errorf("skopeo pulled %s, expected %s", got, img.Digest)
	}
	if _, err := tryCmd(env, clientTimeout, skopeo, "--insecure-policy", "copy", "--dest-tls-verify=false",
		"--dest-creds", "bob:"+authUsers["bob"], "oci:"+out+":v1", "docker://"+srv.Addr+"/team-a/skopeo:v1"); err == nil {
		t.Error("skopeo push as bob succeeded")
	}
	if _, err := tryCmd(env, clientTimeout, skopeo, "--insecure-policy", "copy", "--dest-tls-verify=false",
		"--dest-creds", "alice:wrong-password", "oci:"+out+":v1", "docker://"+srv.Addr+"/team-a/skopeo:v1"); err == nil {
		t.Error("skopeo push with a wrong password succeeded")
	}
	if _, err := tryCmd(env, clientTimeout, skopeo, "--insecure-policy", "copy", "--dest-tls-verify=false",
		"--dest-creds", "alice:"+authUsers["alice"], "oci:"+out+":v1", "docker://"+srv.Addr+"/team-a/skopeo:v1"); err != nil {
		t.Errorf("skopeo push as alice: %v", err)
	}
}

// TestAuthDockerLogin is `docker login` against registryd's own token
// server, then a push and a pull with the token flow, through a private
// dockerd.
func TestAuthDockerLogin(t *testing.T) {
	d := startDockerd(t)
	srv := startAuthRegistryd(t, "token")

	if _, err := tryCmdStdin(d.env, "wrong-password\n", d.cli, "login", srv.Addr, "-u", "alice", "--password-stdin"); err == nil {
		t.Fatal("docker login with a wrong password succeeded")
	}
	if _, err := tryCmdStdin(d.env, authUsers["alice"]+"\n", d.cli, "login", srv.Addr, "-u", "alice", "--password-stdin"); err != nil {
		t.Fatalf("docker login: %v", err)
	}
	rootfs := filepath.Join(t.TempDir(), "rootfs.tar")
	writeTar(t, rootfs, map[string]string{"hello.txt": "hello from docker login\n"})
	ref := srv.Addr + "/team-a/docker:v1"
	d.run(t, "import", rootfs, ref)
	id := d.run(t, "image", "inspect", "--format", "{{.Id}}", ref)
	d.run(t, "push", ref)
	d.run(t, "rmi", ref)
	d.run(t, "pull", ref)
	if got := d.run(t, "image", "inspect", "--format", "{{.Id}}", ref); got != id {
		t.Errorf("pulled image ID %s, pushed %s", got, id)
	}
	// Pushing outside alice's repositories is refused.
	other := srv.Addr + "/team-b/docker:v1"
	d.run(t, "tag", ref, other)
	if _, err := tryCmd(d.env, clientTimeout, d.cli, "push", other); err == nil {
		t.Error("alice pushed to team-b")
	}
	d.run(t, "logout", srv.Addr)
	d.run(t, "rmi", ref)
	if _, err := tryCmd(d.env, clientTimeout, d.cli, "pull", ref); err == nil {
		t.Error("pulled team-a anonymously after logout")
	}
	checkNoPasswordsLogged(t, srv)
}

// tryCmdStdin is tryCmd with input on standard input (for
// --password-stdin, so that no password is on a command line).
func tryCmdStdin(env []string, stdin string, name string, args ...string) (cmdResult, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		return cmdResult{}, err
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		r := cmdResult{Stdout: stdout.String(), Stderr: stderr.String()}
		if err != nil {
			return r, fmt.Errorf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, truncate(r.Stderr, 2000))
		}
		return r, nil
	case <-time.After(clientTimeout):
		cmd.Process.Kill()
		<-done
		return cmdResult{}, fmt.Errorf("%s: timed out", name)
	}
}
