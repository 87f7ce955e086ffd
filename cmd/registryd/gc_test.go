package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/registryd/registryd/storage"
	"github.com/registryd/registryd/storage/driver/filesystem"
)

// gcFixture is a filesystem store with one tagged image and one stray
// blob, and a config file pointing at it.
type gcFixture struct {
	t      *testing.T
	ctx    context.Context
	root   string
	config string
	reg    *storage.Registry
	stray  digest.Digest
}

func newGCFixture(t *testing.T) *gcFixture {
	t.Helper()
	dir := t.TempDir()
	root := filepath.Join(dir, "data")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "config.yml")
	yml := "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: " + root +
		"\n  maintenance:\n    uploadpurging:\n      enabled: false\nhttp:\n  addr: 127.0.0.1:0\n"
	if err := os.WriteFile(cfg, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := filesystem.New(root)
	if err != nil {
		t.Fatal(err)
	}
	f := &gcFixture{t: t, ctx: context.Background(), root: root, config: cfg, reg: storage.New(d, storage.Options{})}
	cfgDesc := f.blob("app", `{"architecture":"amd64"}`)
	layer := f.blob("app", "layer")
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: cfgDesc, Layers: []ocispec.Descriptor{layer}}
	m.SchemaVersion = 2
	b, _ := json.Marshal(m)
	repo, _ := f.reg.Repository("app")
	if _, err := repo.PutManifest(f.ctx, "v1", m.MediaType, b, nil); err != nil {
		t.Fatal(err)
	}
	f.stray = f.blob("app", "stray, never referenced").Digest
	return f
}

func (f *gcFixture) blob(name, content string) ocispec.Descriptor {
	f.t.Helper()
	repo, err := f.reg.Repository(name)
	if err != nil {
		f.t.Fatal(err)
	}
	up, err := repo.NewUpload(f.ctx, "")
	if err != nil {
		f.t.Fatal(err)
	}
	d := digest.FromString(content)
	if _, err := up.Commit(f.ctx, strings.NewReader(content), 0, d); err != nil {
		f.t.Fatal(err)
	}
	return ocispec.Descriptor{MediaType: "application/octet-stream", Digest: d, Size: int64(len(content))}
}

func (f *gcFixture) hasStray() bool {
	f.t.Helper()
	found := false
	if err := f.reg.WalkBlobs(f.ctx, func(d digest.Digest, _ int64) error {
		found = found || d == f.stray
		return nil
	}); err != nil {
		f.t.Fatal(err)
	}
	return found
}

// lease registers a lease as a registry would; pid 0 keeps this process's.
func (f *gcFixture) lease(readOnly bool, pid int) {
	f.t.Helper()
	in := storage.LocalInstance()
	in.ID = "serve-under-test"
	in.Role = storage.RoleRegistry
	in.ReadOnly = readOnly
	if pid != 0 {
		in.PID = pid
	}
	release, err := f.reg.RegisterLease(f.ctx, in, time.Hour)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(release)
}

// exitedPID is the pid of a process that has exited and been reaped.
func exitedPID(t *testing.T) int {
	t.Helper()
	c := exec.Command(os.Args[0], "-test.run=^$")
	if err := c.Run(); err != nil {
		t.Fatal(err)
	}
	return c.Process.Pid
}

func TestCmdGC(t *testing.T) {
	tests := []struct {
		name       string
		setup      func(f *gcFixture)
		args       func(f *gcFixture) []string
		wantCode   int
		wantStray  bool // the stray blob is still there afterwards
		wantOut    []string
		wantErrOut []string
	}{
		{
			name:      "collects with no registry running",
			setup:     func(f *gcFixture) {},
			args:      func(f *gcFixture) []string { return []string{f.config} },
			wantCode:  0,
			wantStray: false,
			wantOut:   []string{"garbage collection complete", "blobs removed: 1"},
		},
		{
			name:       "refuses while a writable registry serves the storage",
			setup:      func(f *gcFixture) { f.lease(false, 0) },
			args:       func(f *gcFixture) []string { return []string{f.config} },
			wantCode:   1,
			wantStray:  true,
			wantErrOut: []string{"refusing to run", "serve-under-test", "REGISTRY_STORAGE_MAINTENANCE_READONLY_ENABLED=true", "--force overrides"},
		},
		{
			name:       "--force overrides",
			setup:      func(f *gcFixture) { f.lease(false, 0) },
			args:       func(f *gcFixture) []string { return []string{"--force", f.config} },
			wantCode:   0,
			wantStray:  false,
			wantErrOut: []string{"--force"},
		},
		{
			name:      "a read-only registry does not block",
			setup:     func(f *gcFixture) { f.lease(true, 0) },
			args:      func(f *gcFixture) []string { return []string{"--delete-untagged", f.config} },
			wantCode:  0,
			wantStray: false,
		},
		{
			name:       "a killed registry on this host does not block",
			setup:      func(f *gcFixture) { f.lease(false, exitedPID(f.t)) },
			args:       func(f *gcFixture) []string { return []string{"-m", f.config} },
			wantCode:   0,
			wantStray:  false,
			wantErrOut: []string{"removed the lease of instance serve-under-test"},
		},
		{
			name:      "dry run lists and removes nothing, flags after the file",
			setup:     func(f *gcFixture) {},
			args:      func(f *gcFixture) []string { return []string{f.config, "--dry-run"} },
			wantCode:  0,
			wantStray: true,
			wantOut:   []string{"blob sha256:", "layer link app -> sha256:", "dry run: nothing was removed", "blobs would be removed: 1"},
		},
		{
			name:      "quiet prints nothing",
			setup:     func(f *gcFixture) {},
			args:      func(f *gcFixture) []string { return []string{"--quiet", f.config} },
			wantCode:  0,
			wantStray: false,
		},
		{
			name:      "unknown flag",
			setup:     func(f *gcFixture) {},
			args:      func(f *gcFixture) []string { return []string{"--bogus", f.config} },
			wantCode:  2,
			wantStray: true,
		},
		{
			name:      "help",
			setup:     func(f *gcFixture) {},
			args:      func(f *gcFixture) []string { return []string{"--help"} },
			wantCode:  0,
			wantStray: true,
			wantOut:   []string{"Usage: registryd garbage-collect", "--delete-untagged, -m", "--dry-run, -d", "--force"},
		},
		{
			name:       "missing config file",
			setup:      func(f *gcFixture) {},
			args:       func(f *gcFixture) []string { return []string{filepath.Join(f.root, "nope.yml")} },
			wantCode:   1,
			wantStray:  true,
			wantErrOut: []string{"configuration error"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newGCFixture(t)
			tc.setup(f)
			var stdout, stderr bytes.Buffer
			code := cmdGC(context.Background(), tc.args(f), &stdout, &stderr)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.wantCode, stdout.String(), stderr.String())
			}
			if got := f.hasStray(); got != tc.wantStray {
				t.Fatalf("stray blob present: %v, want %v\nstdout:\n%s\nstderr:\n%s", got, tc.wantStray, stdout.String(), stderr.String())
			}
			flat := strings.Join(strings.Fields(stdout.String()), " ")
			for _, w := range tc.wantOut {
				if !strings.Contains(flat, w) {
					t.Errorf("stdout lacks %q:\n%s", w, stdout.String())
				}
			}
			for _, w := range tc.wantErrOut {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr.String())
				}
			}
			if tc.name == "quiet prints nothing" && stdout.Len()+stderr.Len() != 0 {
				t.Errorf("output:\n%s%s", stdout.String(), stderr.String())
			}
			// The image is whole whatever happened.
			repo, _ := f.reg.Repository("app")
			if _, err := repo.GetManifest(f.ctx, "v1"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// The collection's own lease is gone when it finishes, and never blocks
// another collection.
func TestCmdGCReleasesItsLease(t *testing.T) {
	f := newGCFixture(t)
	var stdout, stderr bytes.Buffer
	if code := cmdGC(context.Background(), []string{"-q", f.config}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	ins, err := f.reg.Instances(f.ctx)
	if err != nil || len(ins) != 0 {
		t.Fatalf("leases left: %v %v", ins, err)
	}
}
