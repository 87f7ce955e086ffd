package e2e

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The client reads credentials where docker, podman and crane keep them, and
// speaks Basic and token auth.

// TestCLIDockerLogin: a real `docker login` (through a private dockerd)
// writes the docker config; registryd's client uses what it wrote, against a
// registry with htpasswd and against one with the token issuer; and
// `registryd login` writes credentials docker's way.
func TestCLIDockerLogin(t *testing.T) {
	d := startDockerd(t)
	crane := tool(t, "crane")
	for _, mode := range []string{"htpasswd", "token"} {
		t.Run(mode, func(t *testing.T) {
			srv := startAuthRegistryd(t, mode)
			h := srv.Addr
			if _, err := tryCmdStdin(d.env, authUsers["alice"]+"\n", d.cli, "login", h, "-u", "alice", "--password-stdin"); err != nil {
				t.Fatalf("docker login: %v", err)
			}
			cfgPath := filepath.Join(envValue(d.env, "DOCKER_CONFIG"), "config.json")
			var cfg struct {
				Auths map[string]struct{ Auth string } `json:"auths"`
			}
			b, err := os.ReadFile(cfgPath)
			must(t, err)
			must(t, json.Unmarshal(b, &cfg))
			if got, _ := base64.StdEncoding.DecodeString(cfg.Auths[h].Auth); string(got) != "alice:"+authUsers["alice"] {
				t.Fatalf("docker login wrote no credentials for %s in %s:\n%s", h, cfgPath, b)
			}

			img := newTestImage(t, t.TempDir(), "v1", "cli-auth-"+mode)
			runCmd(t, d.env, clientTimeout, crane, "push", "--insecure", img.Layout, h+"/team-a/app:v1")
			runCmd(t, d.env, clientTimeout, crane, "tag", "--insecure", h+"/team-a/app:v1", "v2")

			// As alice, from docker's config.
			if r := rdOK(t, d.env, "repo", "ls", "--format", "{{.Repository}}", h); r.Stdout != "team-a/app\n" {
				t.Errorf("repo ls as alice:\n%s", r)
			}
			if r := rdOK(t, d.env, "tag", "ls", "--format", "{{.Name}}", h+"/team-a/app"); r.Stdout != "v1\nv2\n" {
				t.Errorf("tag ls as alice:\n%s", r)
			}
			if r := rdOK(t, d.env, "digest", h+"/team-a/app:v1"); r.Stdout != img.Digest+"\n" {
				t.Errorf("digest as alice:\n%s", r)
			}
			if r := rdOK(t, d.env, "tag", "rm", "--yes", h+"/team-a/app:v2"); !strings.Contains(r.Stdout, "removed tag") {
				t.Errorf("tag rm as alice:\n%s", r)
			}
			if r := rdOK(t, d.env, "du", "--format", "{{.Repository}} {{.Exclusive}}", h+"/team-a/app"); r.Stdout != "team-a/app "+strconv.FormatInt(imageSize(img), 10)+"\n" {
				t.Errorf("du as alice:\n%s", r)
			}

			// Anonymous: refused, with the way out.
			anon := clientEnv(t)
			if r := rd(t, anon, "tag", "ls", h+"/team-a/app"); r.Code != 1 || !strings.Contains(r.Stderr, "registryd login") {
				t.Errorf("tag ls anonymously:\n%s", r)
			}

			// registryd login: a wrong password stores nothing; bob's
			// password is checked and stored, and bob may read, not delete.
			bob := clientEnv(t)
			if r := rdStdin(t, bob, "wrong\n", "login", "-u", "bob", "--password-stdin", h); r.Code != 1 {
				t.Errorf("login with a wrong password:\n%s", r)
			}
			if _, err := os.Stat(filepath.Join(envValue(bob, "DOCKER_CONFIG"), "config.json")); err == nil {
				t.Error("a failed login wrote the docker config")
			}
			if r := rdStdin(t, bob, authUsers["bob"]+"\n", "login", "-u", "bob", "--password-stdin", h); r.Code != 0 || !strings.Contains(r.Stdout, "Login succeeded") {
				t.Fatalf("login as bob:\n%s", r)
			}
			if r := rdOK(t, bob, "tag", "ls", "--format", "{{.Name}}", h+"/team-a/app"); r.Stdout != "v1\n" {
				t.Errorf("tag ls as bob:\n%s", r)
			}
			if r := rd(t, bob, "tag", "rm", "--yes", h+"/team-a/app:v1"); r.Code != 1 {
				t.Errorf("tag rm as bob (pull only):\n%s", r)
			}
			// docker reads what registryd login wrote.
			bobDocker := append(append([]string(nil), d.env...), "DOCKER_CONFIG="+envValue(bob, "DOCKER_CONFIG"))
			runCmd(t, bobDocker, clientTimeout, d.cli, "pull", h+"/team-a/app:v1")
			if r := rdOK(t, bob, "logout", h); !strings.Contains(r.Stdout, "removed the credentials") {
				t.Errorf("logout:\n%s", r)
			}
			if r := rd(t, bob, "tag", "ls", h+"/team-a/app"); r.Code != 1 {
				t.Errorf("tag ls after logout:\n%s", r)
			}
			checkNoPasswordsLogged(t, srv)
		})
	}
}

// TestCLICredentialStores: docker's credHelpers and credsStore (a helper
// program on $PATH, run by docker's credential-helper package) and podman's
// auth.json.
func TestCLICredentialStores(t *testing.T) {
	srv := startAuthRegistryd(t, "token")
	h := srv.Addr
	crane := tool(t, "crane")
	pushEnv := clientEnv(t)
	runCmd(t, pushEnv, clientTimeout, crane, "auth", "login", h, "-u", "alice", "-p", authUsers["alice"])
	img := newTestImage(t, t.TempDir(), "v1", "cli-stores")
	runCmd(t, pushEnv, clientTimeout, crane, "push", "--insecure", img.Layout, h+"/team-a/stores:v1")

	// A credential helper: docker-credential-e2e keeps what it is given in a
	// file, and answers get from it.
	helperDir := t.TempDir()
	store := filepath.Join(helperDir, "store.json")
	script := `#!/bin/sh
case "$1" in
get) read url; if [ -f "` + store + `" ]; then cat "` + store + `"; else echo "credentials not found in native keychain"; exit 1; fi ;;
store) cat > "` + store + `" ;;
erase) rm -f "` + store + `" ;;
list) echo "{}" ;;
esac
`
	must(t, os.WriteFile(filepath.Join(helperDir, "docker-credential-e2e"), []byte(script), 0o755))
	withHelper := func(config string) []string {
		env := clientEnv(t)
		must(t, os.WriteFile(filepath.Join(envValue(env, "DOCKER_CONFIG"), "config.json"), []byte(config), 0o600))
		return append(env, "PATH="+helperDir+":"+os.Getenv("PATH"))
	}
	creds, _ := json.Marshal(map[string]string{"ServerURL": h, "Username": "alice", "Secret": authUsers["alice"]})
	must(t, os.WriteFile(store, creds, 0o600))

	// credHelpers, per registry
	env := withHelper(`{"credHelpers":{"` + h + `":"e2e"}}`)
	if r := rdOK(t, env, "digest", h+"/team-a/stores:v1"); r.Stdout != img.Digest+"\n" {
		t.Errorf("digest through credHelpers:\n%s", r)
	}

	// credsStore: registryd login stores through the helper, not in the file.
	must(t, os.Remove(store))
	env = withHelper(`{"credsStore":"e2e"}`)
	if r := rd(t, env, "digest", h+"/team-a/stores:v1"); r.Code != 1 {
		t.Errorf("digest with an empty credential store:\n%s", r)
	}
	rdOK(t, env, "login", "-u", "alice", "-p", authUsers["alice"], h)
	b, err := os.ReadFile(store)
	if err != nil || !strings.Contains(string(b), `"Username":"alice"`) {
		t.Fatalf("registryd login did not store through the helper: %v %s", err, b)
	}
	cfg, _ := os.ReadFile(filepath.Join(envValue(env, "DOCKER_CONFIG"), "config.json"))
	if strings.Contains(string(cfg), base64.StdEncoding.EncodeToString([]byte("alice:"+authUsers["alice"]))) {
		t.Errorf("with credsStore, the password landed in config.json:\n%s", cfg)
	}
	if r := rdOK(t, env, "digest", h+"/team-a/stores:v1"); r.Stdout != img.Digest+"\n" {
		t.Errorf("digest through credsStore:\n%s", r)
	}

	// podman's auth.json, with no docker config at all.
	env = clientEnv(t)
	auth := base64.StdEncoding.EncodeToString([]byte("alice:" + authUsers["alice"]))
	dir := filepath.Join(envValue(env, "XDG_RUNTIME_DIR"), "containers")
	must(t, os.MkdirAll(dir, 0o700))
	must(t, os.WriteFile(filepath.Join(dir, "auth.json"), []byte(`{"auths":{"`+h+`":{"auth":"`+auth+`"}}}`), 0o600))
	if r := rdOK(t, env, "digest", h+"/team-a/stores:v1"); r.Stdout != img.Digest+"\n" {
		t.Errorf("digest through podman's auth.json:\n%s", r)
	}
}

// envValue is KEY's value in env (KEY=VALUE entries; the last wins).
func envValue(env []string, key string) string {
	v := ""
	for _, kv := range env {
		if k, val, ok := strings.Cut(kv, "="); ok && k == key {
			v = val
		}
	}
	return v
}

// TestCLITLS: a registry with a certificate from a private CA is trusted
// with --ca, refused without it, and reached unverified with --insecure.
func TestCLITLS(t *testing.T) {
	ca := newTestCA(t)
	srv := startAuthRegistrydTLS(t, "htpasswd", ca)
	h := srv.Addr
	env := clientEnv(t)
	if r := rdStdin(t, env, authUsers["alice"]+"\n", "login", "--ca", ca.CAFile, "-u", "alice", "--password-stdin", h); r.Code != 0 {
		t.Fatalf("login --ca:\n%s", r)
	}
	// registryd's admin API answers: the table has its columns, and no row
	// (nothing pushed).
	if r := rdOK(t, env, "repo", "ls", "--ca", ca.CAFile, h); r.Stdout != "REPOSITORY   TAGS   SIZE   LAST PUSHED\n" {
		t.Errorf("repo ls --ca:\n%s", r)
	}
	if r := rd(t, env, "repo", "ls", h); r.Code != 1 || !strings.Contains(r.Stderr, "certificate") {
		t.Errorf("repo ls without the CA:\n%s", r)
	}
	if r := rd(t, env, "repo", "ls", "--insecure", h); r.Code != 0 {
		t.Errorf("repo ls --insecure:\n%s", r)
	}
	if r := rd(t, env, "repo", "ls", "--ca", "/nonexistent.pem", h); r.Code != 1 || !strings.Contains(r.Stderr, "--ca") {
		t.Errorf("repo ls --ca with a missing file:\n%s", r)
	}
}
