package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/registryd/registryd/api/admin"
	"github.com/registryd/registryd/config"
	"github.com/registryd/registryd/errcode"
	"github.com/registryd/registryd/retention"
	"github.com/registryd/registryd/storage"
	"github.com/registryd/registryd/storage/driver/filesystem"
)

// retentionFixture is a filesystem store whose tags were pushed at chosen
// times, and a config with a retention policy.
type retentionFixture struct {
	*gcFixture
	clock time.Time
}

func newRetentionFixture(t *testing.T, retentionYAML string) *retentionFixture {
	t.Helper()
	g := newGCFixture(t) // app:v1, pushed now
	f := &retentionFixture{gcFixture: g}
	d, err := filesystem.New(g.root)
	if err != nil {
		t.Fatal(err)
	}
	g.reg = storage.New(d, storage.Options{Now: func() time.Time { return f.clock }})
	now := time.Now()
	for i, tag := range []string{"build-1", "build-2", "build-3"} {
		f.clock = now.Add(-time.Duration(30-10*i) * 24 * time.Hour) // 30, 20, 10 days ago
		f.push(tag, tag)
	}
	f.clock = now.Add(-time.Hour)
	f.push("build-4", "build-4")
	yml, err := os.ReadFile(g.config)
	if err != nil {
		t.Fatal(err)
	}
	yml = bytes.Replace(yml, []byte("  maintenance:\n"), []byte("  maintenance:\n"+retentionYAML), 1)
	if err := os.WriteFile(g.config, yml, 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *retentionFixture) push(tag, content string) {
	f.t.Helper()
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: f.blob("app", "config "+content), Layers: []ocispec.Descriptor{}}
	m.SchemaVersion = 2
	b, _ := json.Marshal(m)
	repo, _ := f.reg.Repository("app")
	if _, err := repo.PutManifest(f.ctx, tag, m.MediaType, b, nil); err != nil {
		f.t.Fatal(err)
	}
}

func (f *retentionFixture) tags() []string {
	f.t.Helper()
	repo, _ := f.reg.Repository("app")
	tags, _, err := repo.Tags(f.ctx, "", -1)
	if err != nil {
		f.t.Fatal(err)
	}
	return tags
}

const retentionPolicy = `    retention:
      maxshare: 0.6
      policies:
        - repositories: ["**"]
          keeptags:
            - patterns: ["^v"]
            - mostrecentlypushedcount: 1
            - pushedwithin: 360h
`

func TestRetentionCommand(t *testing.T) {
	f := newRetentionFixture(t, retentionPolicy)
	all := []string{"build-1", "build-2", "build-3", "build-4", "v1"}

	// Dry run: the table, nothing deleted.
	var out, errb bytes.Buffer
	if code := dispatch(context.Background(), []string{"retention", "--dry-run", f.config}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	table := out.String()
	for _, want := range []string{
		"REPOSITORY  TAG", "app         build-1", "would delete  nokeeprule    no keep rule of policy ** keeps it",
		"keep          pushedwithin", "keep          patterns", `matches "^v" (keeptags[0])`,
		"dry run: would delete 2 tags and 0 untagged manifests; 1 of 1 repositories have a policy.",
		"0 bytes freed once the garbage collector runs (a deleted tag's manifest keeps its layers until it is removed as untagged",
	} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	if got := f.tags(); !reflect.DeepEqual(got, all) {
		t.Fatalf("a dry run deleted: %v", got)
	}

	// JSON: the admin API's run report.
	out.Reset()
	if code := dispatch(context.Background(), []string{"retention", f.config, "-d", "--format", "json"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var run admin.Run
	if err := json.Unmarshal(out.Bytes(), &run); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if run.Kind != "retention" || !run.DryRun || run.Result != "ok" || run.Deleted["tags"] != 2 || len(run.Decisions) != 5 {
		t.Fatalf("%+v", run)
	}
	d := run.Decisions[0]
	if d.Repository != "app" || d.Tag != "build-1" || !d.Delete || d.Rule != "nokeeprule" || d.Policy != "**" || d.Pushed == nil || d.LastPulled != nil {
		t.Errorf("%+v", d)
	}

	// For real.
	out.Reset()
	if code := dispatch(context.Background(), []string{"retention", f.config}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "\ndeleted 2 tags") {
		t.Errorf("%s", out.String())
	}
	if got := f.tags(); !reflect.DeepEqual(got, []string{"build-3", "build-4", "v1"}) {
		t.Errorf("tags after: %v", got)
	}
}

func TestRetentionCommandRefusedAndErrors(t *testing.T) {
	f := newRetentionFixture(t, strings.Replace(retentionPolicy, "maxshare: 0.6", "maxshare: 0.3", 1))
	var out, errb bytes.Buffer
	if code := dispatch(context.Background(), []string{"retention", f.config}, &out, &errb); code != 3 {
		t.Fatalf("exit %d, want 3: %s", code, errb.String())
	}
	if !strings.Contains(errb.String(), "maxshare 0.3 refused 1 repositories (app)") || !strings.Contains(out.String(), "keep (refused)") {
		t.Errorf("stderr %s\nstdout %s", errb.String(), out.String())
	}
	if len(f.tags()) != 5 {
		t.Error("a refused repository lost tags")
	}
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"retention", "--format", "xml", f.config}, 2, "--format must be table or json"},
		{[]string{"retention", newGCFixture(t).config}, 0, "no policies"},
		{[]string{"retention", filepath.Join(t.TempDir(), "missing.yml")}, 1, "reading configuration file"},
	} {
		errb.Reset()
		if code := dispatch(context.Background(), tc.args, &out, &errb); code != tc.code || !strings.Contains(errb.String(), tc.msg) {
			t.Errorf("%v: exit %d, stderr %q; want %d, %q", tc.args, code, errb.String(), tc.code, tc.msg)
		}
	}
}

func TestRetentionMaintainer(t *testing.T) {
	f := newRetentionFixture(t, retentionPolicy)
	cfg, err := config.Load(f.config, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, log := newLogger(cfg, os.Stderr)
	svc, err := newRetention(ctx, cfg, f.reg, retention.NewMetrics(), log)
	if err != nil || svc == nil {
		t.Fatal(err)
	}
	var m admin.Maintainer = retentionMaintainer{svc}
	id, err := m.Start(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	run, err := m.Wait(ctx, id)
	if err != nil || run.ID != id || !run.DryRun || run.Deleted["tags"] != 2 || run.Finished == nil {
		t.Fatalf("%v %+v", err, run)
	}
	st, err := m.Status(ctx)
	if err != nil || !st.Enabled || st.Running || len(st.Runs) != 1 || st.Runs[0].ID != id || st.Next != nil {
		t.Fatalf("%v %+v", err, st)
	}
	if _, err := m.Wait(ctx, "nope"); !errcode.Is(err, errcode.NameUnknown) {
		t.Errorf("unknown run: %v", err)
	}

	// No policies: enabled false, runs refused with UNSUPPORTED.
	none := retentionMaintainer{}
	if st, err := none.Status(ctx); err != nil || st.Enabled || st.Runs == nil {
		t.Errorf("%v %+v", err, st)
	}
	if _, err := none.Start(ctx, true); !errcode.Is(err, errcode.Unsupported) {
		t.Errorf("%v", err)
	}

	// Read-only: dry runs only.
	cfg.Storage.Maintenance.ReadOnly.Enabled = true
	ro, _ := newRetention(ctx, cfg, f.reg, nil, log)
	if _, err := (retentionMaintainer{ro}).Start(ctx, false); !errcode.Is(err, errcode.Unsupported) || !strings.Contains(err.Error(), "read-only") {
		t.Errorf("%v", err)
	}
	// Busy maps to admin.ErrBusy.
	id1, err1 := m.Start(ctx, true)
	_, err2 := m.Start(ctx, true)
	if err1 != nil || (err2 != nil && !errors.Is(err2, admin.ErrBusy)) {
		t.Errorf("%v %v", err1, err2)
	}
	_, _ = m.Wait(ctx, id1)
}
