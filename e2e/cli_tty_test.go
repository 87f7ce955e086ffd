package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The client on a terminal, as a person sees it: a shell in tmux (a real
// pseudo-terminal and screen), keys typed, the screen read back. Prompts,
// the hidden password, progress bars, and TAB completion in bash and zsh.

// tmuxSession is a tmux server of the test's own (its own socket), with one
// window running a shell.
type tmuxSession struct {
	t    *testing.T
	tmux string
	sock string
	env  []string
}

func startTmux(t *testing.T, env []string, shell ...string) *tmuxSession {
	t.Helper()
	tmux := system(t, "tmux", "/usr/bin/tmux")
	dir, err := os.MkdirTemp("/tmp", "rd-tmux-") // socket paths are short
	must(t, err)
	s := &tmuxSession{t: t, tmux: tmux, sock: filepath.Join(dir, "sock"), env: env}
	t.Cleanup(func() {
		exec.Command(tmux, "-S", s.sock, "kill-server").Run()
		os.RemoveAll(dir)
	})
	args := append([]string{"-S", s.sock, "-f", "/dev/null", "new-session", "-d", "-s", "cli", "-x", "200", "-y", "50"}, shell...)
	cmd := exec.Command(tmux, args...)
	cmd.Env = append(serverEnv(nil), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tmux new-session: %v\n%s", err, out)
	}
	return s
}

// typeLine types text and Enter, as keys.
func (s *tmuxSession) typeLine(text string) {
	s.t.Helper()
	s.keys(text)
	s.run("send-keys", "-t", "cli", "Enter")
}

// keys types text literally, without Enter.
func (s *tmuxSession) keys(text string) {
	s.t.Helper()
	s.run("send-keys", "-t", "cli", "-l", "--", text)
}

func (s *tmuxSession) tab() { s.t.Helper(); s.run("send-keys", "-t", "cli", "Tab") }

func (s *tmuxSession) run(args ...string) string {
	s.t.Helper()
	out, err := exec.Command(s.tmux, append([]string{"-S", s.sock}, args...)...).CombinedOutput()
	if err != nil {
		s.t.Fatalf("tmux %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// screen is what the terminal shows, with its scrollback.
func (s *tmuxSession) screen() string {
	return s.run("capture-pane", "-p", "-N", "-t", "cli", "-S", "-200") // -N: trailing spaces kept
}

// waitFor waits until the screen shows want, and returns the screen.
func (s *tmuxSession) waitFor(want string) string {
	s.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		sc := s.screen()
		if strings.Contains(sc, want) {
			return sc
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("the terminal never showed %q; it shows:\n%s", want, sc)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// clear empties the screen and its scrollback between steps.
func (s *tmuxSession) clear() {
	s.t.Helper()
	s.typeLine("clear")
	time.Sleep(200 * time.Millisecond)
	s.run("clear-history", "-t", "cli")
}

// cliShellEnv is a client environment whose PATH starts with a directory
// holding `registryd`, so that typed commands read as a user types them.
func cliShellEnv(t *testing.T) []string {
	t.Helper()
	if buildErr != nil {
		t.Fatalf("registryd does not build: %v", buildErr)
	}
	bin := t.TempDir()
	must(t, os.Symlink(registrydBin, filepath.Join(bin, "registryd")))
	return append(clientEnv(t), "PATH="+bin+":"+os.Getenv("PATH"), "PS1=rd> ", "TERM=xterm-256color")
}

// TestCLITerminal: the prompts as a person answers them, and progress
// bars where an operation is long. Against registryd's admin API du and
// repo rm are one request each: the answer comes at once, without a bar.
// Against the reference registry (no admin API) they are a walk of every
// manifest and a DELETE per manifest: those draw their bars.
func TestCLITerminal(t *testing.T) {
	srv := startRegistryd(t)
	ref := startReference(t, t.TempDir())
	env := cliShellEnv(t)
	cr := craneIn(t, env)
	h := srv.Addr
	a := newTestImage(t, t.TempDir(), "v1", "tty-a")
	b := newTestImage(t, t.TempDir(), "v1", "tty-b")
	c := newTestImage(t, t.TempDir(), "v1", "tty-c")
	for _, host := range []string{h, ref.Addr} {
		for _, p := range [][2]string{{a.Layout, "v1"}, {b.Layout, "v2"}, {c.Layout, "v3"}} {
			cr("push", p[0], host+"/e2e/tty:"+p[1])
		}
		cr("tag", host+"/e2e/tty:v1", "v1-alias")
	}

	sh := startTmux(t, env, "bash", "--norc", "--noprofile")
	sh.waitFor("rd>")

	// tag rm asks; "n" keeps the tag.
	sh.typeLine("registryd tag rm " + h + "/e2e/tty:v1")
	sc := sh.waitFor("Remove tag v1? [y/N]")
	if !strings.Contains(sc, "the manifest stays, still tagged: v1-alias") {
		t.Errorf("tag rm's plan is not on the screen:\n%s", sc)
	}
	sh.typeLine("n")
	sh.waitFor("not confirmed")
	checkManifest(t, srv, "e2e/tty", "v1", a.Digest, mtOCIManifest)

	// Ctrl-C at the question ends the command at once, deleting nothing.
	sh.clear()
	sh.typeLine("registryd tag rm " + h + "/e2e/tty:v1; echo exit=$?")
	sh.waitFor("Remove tag v1? [y/N]")
	sh.run("send-keys", "-t", "cli", "C-c")
	sh.waitFor("exit=1")
	if sc := sh.screen(); !strings.Contains(sc, "interrupted") {
		t.Errorf("Ctrl-C at the question:\n%s", sc)
	}
	checkManifest(t, srv, "e2e/tty", "v1", a.Digest, mtOCIManifest)

	// manifest rm asks; "y" deletes.
	sh.clear()
	sh.typeLine("registryd manifest rm " + h + "/e2e/tty@" + b.Digest)
	sc = sh.waitFor("[y/N]")
	if !strings.Contains(sc, "tags that go with it: v2") || !strings.Contains(sc, "Delete manifest "+b.Digest+" and its 1 tag(s)?") {
		t.Errorf("manifest rm's question:\n%s", sc)
	}
	sh.typeLine("y")
	sh.waitFor("deleted manifest " + h + "/e2e/tty@" + b.Digest)
	if r := getManifest(t, srv, "e2e/tty", b.Digest); r.Status != 404 {
		t.Errorf("the manifest is still there after a yes: %s", r)
	}

	// du from the admin API: the table at once, no bar.
	sh.clear()
	sh.typeLine("registryd du " + h + "; echo du-exit=$?") // the screen shows du-exit=0 once it is over
	sc = sh.waitFor("du-exit=0")
	if !strings.Contains(sc, "EXCLUSIVE") || !strings.Contains(sc, "e2e/tty") || strings.Contains(sc, "reading repositories") {
		t.Errorf("du with the admin API: the table, and no progress bar:\n%s", sc)
	}

	// du against the reference reads every manifest, with a bar.
	sh.clear()
	sh.typeLine("registryd du " + ref.Addr)
	sc = sh.waitFor("EXCLUSIVE")
	if !strings.Contains(sc, "reading repositories [") || !strings.Contains(sc, "] 1/1") || !strings.Contains(sc, strings.Repeat("#", 20)) {
		t.Errorf("du through the V2 API drew no progress bar on the terminal:\n%s", sc)
	}

	// repo rm wants the name typed. Through the admin API one request
	// deletes the repository: its result, no bar.
	sh.clear()
	sh.typeLine("registryd repo rm " + h + "/e2e/tty")
	sc = sh.waitFor("Type the repository's name (e2e/tty) to delete it:")
	if !strings.Contains(sc, "delete repository "+h+"/e2e/tty: 3 tags, 2 manifests") {
		t.Errorf("repo rm's plan:\n%s", sc)
	}
	sh.typeLine("e2e/tty")
	sc = sh.waitFor("deleted repository " + h + "/e2e/tty: 3 tags, 2 manifests")
	if strings.Contains(sc, "deleting manifests") || strings.Contains(sc, "#####") {
		t.Errorf("repo rm through the admin API drew a progress bar:\n%s", sc)
	}
	for _, d := range []string{a.Digest, c.Digest} {
		if r := getManifest(t, srv, "e2e/tty", d); r.Status != 404 {
			t.Errorf("%s is still there after repo rm: %s", d, r)
		}
	}

	// Against the reference, one DELETE per manifest, with a bar.
	sh.clear()
	sh.typeLine("registryd repo rm " + ref.Addr + "/e2e/tty")
	sh.waitFor("Type the repository's name (e2e/tty) to delete it:")
	sh.typeLine("e2e/tty")
	sc = sh.waitFor("deleted repository " + ref.Addr + "/e2e/tty")
	if !strings.Contains(sc, "deleting manifests [") || !strings.Contains(sc, "] 3/3") || !strings.Contains(sc, strings.Repeat("#", 20)) {
		t.Errorf("repo rm through the V2 API drew no progress bar on the terminal:\n%s", sc)
	}
	for _, d := range []string{a.Digest, b.Digest, c.Digest} {
		if r := getManifest(t, ref, "e2e/tty", d); r.Status != 404 {
			t.Errorf("%s is still there after repo rm: %s", d, r)
		}
	}

	// Piped, the same walk draws nothing and asks nothing.
	sh.clear()
	cr("push", a.Layout, ref.Addr+"/e2e/piped:v1")
	sh.typeLine("registryd du " + ref.Addr + " 2>&1 | cat -A | head -3; echo piped-exit=$?")
	sc = sh.waitFor("piped-exit=0")
	if !strings.Contains(sc, "e2e/piped") || strings.Contains(sc, "reading repositories") || strings.Contains(sc, "^[") {
		t.Errorf("progress drawn into a pipe:\n%s", sc)
	}
}

// TestCLITerminalLogin: registryd login asks for the user and the password
// on the terminal, and the password is not echoed.
func TestCLITerminalLogin(t *testing.T) {
	srv := startAuthRegistryd(t, "htpasswd")
	env := cliShellEnv(t)
	sh := startTmux(t, env, "bash", "--norc", "--noprofile")
	sh.waitFor("rd>")
	sh.typeLine("registryd login " + srv.Addr)
	sh.waitFor("Username: ")
	sh.typeLine("alice")
	sh.waitFor("Password: ")
	sh.typeLine(authUsers["alice"])
	sc := sh.waitFor("Login succeeded")
	if strings.Contains(sc, authUsers["alice"]) {
		t.Errorf("the password was echoed:\n%s", sc)
	}
	if r := rdOK(t, env, "repo", "ls", "--format", "{{.Repository}}", srv.Addr); r.Code != 0 {
		t.Errorf("repo ls after an interactive login:\n%s", r)
	}
}

// TestCLICompletion: TAB in bash and in zsh completes commands, flags,
// repositories and tags (asked of the registry).
func TestCLICompletion(t *testing.T) {
	srv := startRegistryd(t)
	env := cliShellEnv(t)
	h := srv.Addr
	img := newTestImage(t, t.TempDir(), "release-1", "completion")
	craneIn(t, env)("push", img.Layout, h+"/e2e/completion:release-1")

	shells := []struct {
		name  string
		cmd   []string
		setup string
	}{
		{"bash", []string{"bash", "--norc", "--noprofile"}, "source <(registryd completion bash)"},
		{"zsh", []string{system(t, "zsh", "/usr/bin/zsh"), "-f"}, "autoload -U compinit && compinit -u && source <(registryd completion zsh)"},
	}
	for _, shell := range shells {
		t.Run(shell.name, func(t *testing.T) {
			sh := startTmux(t, append(env, "PROMPT=rd> "), shell.cmd...)
			sh.waitFor("rd>")
			sh.typeLine(shell.setup + "; echo setup-done")
			sh.waitFor("setup-done")
			sh.clear()

			sh.keys("registryd manif")
			sh.tab()
			sh.waitFor("registryd manifest ")
			sh.keys("r")
			sh.tab()
			sh.waitFor("registryd manifest rm ")
			sh.keys("--dry")
			sh.tab()
			sh.waitFor("registryd manifest rm --dry-run ")
			sh.run("send-keys", "-t", "cli", "C-c")
			sh.clear()

			sh.keys("registryd tag ls " + h + "/e2e/comp")
			sh.tab()
			sh.waitFor("registryd tag ls " + h + "/e2e/completion")
			sh.keys(":rel")
			sh.tab()
			sh.waitFor("registryd tag ls " + h + "/e2e/completion:release-1")
			sh.run("send-keys", "-t", "cli", "C-c")
		})
	}
}
