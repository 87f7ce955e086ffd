package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

// registryd scrub: 0 when nothing is damaged, 1 naming the blob, image
// and tag when something is, and --repair makes the damaged blob unknown
// (404) instead of served with the wrong bytes.
func TestScrubCommand(t *testing.T) {
	f := newGCFixture(t)
	run := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := dispatch(context.Background(), append([]string{"scrub"}, args...), &out, &errOut)
		return code, out.String(), errOut.String()
	}
	code, out, errOut := run(f.config)
	if code != 0 || !strings.Contains(out, "nothing damaged") {
		t.Fatalf("clean storage: exit %d\n%s%s", code, out, errOut)
	}
	layer := digest.FromString("layer")
	data := filepath.Join(f.root, "docker/registry/v2/blobs/sha256", layer.Encoded()[:2], layer.Encoded(), "data")
	if err := os.WriteFile(data, []byte("LAYER"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, _ = run(f.config)
	if code != 1 {
		t.Fatalf("damaged storage: exit %d\n%s", code, out)
	}
	for _, w := range []string{"blob " + layer.String() + ": content does not match its digest", "image app@", "(tags: v1)", "DAMAGE FOUND", "--repair"} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	// Flags after the config, as garbage-collect takes them.
	code, out, _ = run(f.config, "--repair", "--ratelimit", "100MiB")
	if code != 1 || !strings.Contains(out, "[quarantined]") || !strings.Contains(out, "1 blobs quarantined") {
		t.Fatalf("repair: exit %d\n%s", code, out)
	}
	repo, _ := f.reg.Repository("app")
	if _, err := repo.StatBlob(context.Background(), layer); err == nil {
		t.Fatal("the quarantined blob is still served")
	}
	// Still damaged (the image lacks its layer), and says so, quietly.
	code, out, _ = run("-q", f.config)
	if code != 1 || strings.Contains(out, "scrub:") || !strings.Contains(out, "quarantined earlier") {
		t.Fatalf("after repair: exit %d\n%s", code, out)
	}
	// Usage and configuration problems are 2, not "damage found".
	if code, _, _ := run("--ratelimit", "fast", f.config); code != 2 {
		t.Errorf("bad --ratelimit: exit %d", code)
	}
	if code, _, _ := run(filepath.Join(t.TempDir(), "missing.yml")); code != 2 {
		t.Errorf("missing config: exit %d", code)
	}
}
