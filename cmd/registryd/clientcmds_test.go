package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// gc is both the offline garbage-collect's alias and the client's remote
// collection: the argument decides.
func TestRemoteGC(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "registry-config")
	if err := os.WriteFile(cfg, []byte("version: 0.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args   []string
		remote bool
	}{
		{nil, false},
		{[]string{"--dry-run"}, false},
		{[]string{"config.yml"}, false},
		{[]string{"/etc/docker/registry/config.yaml", "--dry-run"}, false},
		{[]string{"--workers", "4", "config.yml"}, false},
		{[]string{cfg}, false}, // an existing file, whatever its name
		{[]string{"localhost:5000"}, true},
		{[]string{"--dry-run", "registry.example.com"}, true},
		{[]string{"--format", "json", "127.0.0.1:5000"}, true},
		{[]string{"--format=json", "127.0.0.1:5000"}, true},
		{[]string{"--", "localhost:5000"}, true},
		{[]string{"localhost:5000/repo"}, false}, // not a registry: the offline command says what is wrong
	} {
		if got := remoteGC(tc.args); got != tc.remote {
			t.Errorf("remoteGC(%q) = %v", tc.args, got)
		}
	}
	var out, errb bytes.Buffer
	if code := run([]string{"gc", "--dry-run", "127.0.0.1:1"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "registryd gc:") {
		t.Errorf("gc HOST runs the client's gc: %d %q %q", code, out.String(), errb.String())
	}
	out.Reset()
	if code := run([]string{"help", "gc"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "Usage: registryd garbage-collect") || !strings.Contains(out.String(), "Usage: registryd gc [--dry-run] [flags] HOST[:PORT]") {
		t.Errorf("help gc shows both: %q", out.String())
	}
}

// The completion scripts are valid for their shells and know every
// command.
func TestCompletionScripts(t *testing.T) {
	for _, sh := range []string{"bash", "zsh"} {
		var out, errb bytes.Buffer
		if code := run([]string{"completion", sh}, &out, &errb); code != 0 {
			t.Fatalf("completion %s: %d %s", sh, code, errb.String())
		}
		for _, want := range []string{"repo", "manifest", "rm", "inspect", "--dry-run", "--format", "garbage-collect", "--delete-untagged", "__complete"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("the %s script lacks %q", sh, want)
			}
		}
		bin, err := exec.LookPath(sh)
		if err != nil {
			if sh == "zsh" {
				t.Logf("zsh not installed: syntax not checked here (e2e's TestCLICompletion runs it)")
				continue
			}
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "-n")
		cmd.Stdin = &out
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s -n: %v\n%s", sh, err, b)
		}
	}
	var errb bytes.Buffer
	if code := run([]string{"completion", "fish"}, &bytes.Buffer{}, &errb); code != 2 {
		t.Errorf("completion fish: %d", code)
	}
}
