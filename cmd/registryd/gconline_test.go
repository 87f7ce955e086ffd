package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/registryd/registryd/api/admin"
	"github.com/registryd/registryd/config"
	"github.com/registryd/registryd/gc"
	"github.com/registryd/registryd/storage"
	"github.com/registryd/registryd/storage/driver/filesystem"
)

// shortGC makes the fixture's config collect with second-scale timings.
func (f *gcFixture) shortGC() {
	f.t.Helper()
	b, err := os.ReadFile(f.config)
	if err != nil {
		f.t.Fatal(err)
	}
	yml := strings.Replace(string(b), "  maintenance:\n", "  maintenance:\n    gc:\n      interval: 2s\n      delay: 1s\n      statemaxage: 100ms\n      clockskew: 100ms\n", 1)
	if err := os.WriteFile(f.config, []byte(yml), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

// protoLease registers a lease as a serving registry of this version
// does: accepting writes, following the protocol.
func (f *gcFixture) protoLease() {
	f.t.Helper()
	in := storage.LocalInstance()
	in.ID = "serve-with-protocol"
	in.Role = storage.RoleRegistry
	in.GCProtocol = true
	release, err := f.reg.RegisterLease(f.ctx, in, time.Hour)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(release)
}

// TestCmdGCOnlineWhileServing: with a registry of this version serving
// writes, garbage-collect runs online collections instead of refusing:
// the first condemns the stray blob, one after the delay deletes it.
func TestCmdGCOnlineWhileServing(t *testing.T) {
	f := newGCFixture(t)
	f.shortGC()
	f.protoLease()
	time.Sleep(1300 * time.Millisecond) // the stray is older than the delay
	var stdout, stderr bytes.Buffer
	if code := cmdGC(context.Background(), []string{f.config}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
	out := strings.Join(strings.Fields(stdout.String()), " ")
	for _, want := range []string{"online garbage collection: ok", "condemned: 0 manifests, 1 layer links, 1 blobs"} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout.String())
		}
	}
	if !strings.Contains(stderr.String(), "running one online collection") {
		t.Errorf("stderr: %s", stderr.String())
	}
	if !f.hasStray() {
		t.Fatal("the first online run deleted the stray: nothing may go before its plan is due")
	}
	time.Sleep(1300 * time.Millisecond)
	stdout.Reset()
	if code := cmdGC(context.Background(), []string{"-q", f.config}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr.String())
	}
	if f.hasStray() {
		t.Fatal("the stray survived a run after its plan was due")
	}
	repo, _ := f.reg.Repository("app")
	if _, err := repo.GetManifest(f.ctx, "v1"); err != nil {
		t.Fatal(err)
	}
}

// TestCmdGCLease: while another collection holds the lease,
// garbage-collect waits for it, or refuses with --no-wait.
func TestCmdGCLease(t *testing.T) {
	f := newGCFixture(t)
	f.shortGC()
	d, err := filesystem.New(f.root)
	if err != nil {
		t.Fatal(err)
	}
	other := storage.New(d, storage.Options{GCStateMaxAge: -1})
	held, err := gc.AcquireLease(f.ctx, other, gc.LeaseOptions{Heartbeat: time.Second, Mode: "online"})
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := cmdGC(context.Background(), []string{"--no-wait", f.config}, &stdout, &stderr); code != 1 ||
		!strings.Contains(stderr.String(), "refusing to run (--no-wait)") || !strings.Contains(stderr.String(), "online collector") {
		t.Fatalf("--no-wait while held: exit %d\n%s", code, stderr.String())
	}
	if !f.hasStray() {
		t.Fatal("a refused collection deleted something")
	}
	stderr.Reset()
	done := make(chan int, 1)
	go func() { done <- cmdGC(context.Background(), []string{f.config}, &stdout, &stderr) }()
	time.Sleep(1500 * time.Millisecond)
	select {
	case code := <-done:
		t.Fatalf("ran while the lease was held: exit %d", code)
	default:
	}
	held.Release(f.ctx)
	select {
	case code := <-done:
		if code != 0 || !strings.Contains(stderr.String(), "waiting") {
			t.Fatalf("exit %d\n%s", code, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("garbage-collect still waiting after the lease was released")
	}
	if f.hasStray() {
		t.Fatal("the stray survived the collection")
	}
}

// TestGCMaintainer drives the collector through the admin API's
// interface: a run on demand, its report, busy while another instance
// holds the lease.
func TestGCMaintainer(t *testing.T) {
	f := newGCFixture(t)
	f.shortGC()
	cfg, err := config.Load(f.config, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Storage.Maintenance.GC.Enabled = true
	cfg.Storage.Maintenance.GC.Interval = time.Hour // on demand only, in this test
	d, err := filesystem.New(f.root)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	sched, _, _, err := newGCScheduler(ctx, cfg, d, "test-instance", nil, nil, discardLogger())
	if err != nil || sched == nil {
		t.Fatalf("scheduler: %v", err)
	}
	var m admin.Maintainer = gcMaintainer{sched}
	time.Sleep(1300 * time.Millisecond)
	id, err := m.Start(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	run, err := m.Wait(ctx, id)
	if err != nil || run.Kind != "gc" || run.Result != "ok" || run.Condemned["blobs"] != 1 || run.Plan == "" || run.PlanDue == nil {
		t.Fatalf("run %+v, %v", run, err)
	}
	st, err := m.Status(ctx)
	if err != nil || !st.Enabled || st.Running || len(st.Runs) != 1 || st.Runs[0].ID != id {
		t.Fatalf("status %+v, %v", st, err)
	}
	// Another instance's collector holds the lease: busy.
	other := storage.New(d, storage.Options{GCStateMaxAge: -1})
	held, err := gc.AcquireLease(ctx, other, gc.LeaseOptions{Heartbeat: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Start(ctx, true); !errors.Is(err, admin.ErrBusy) {
		t.Fatalf("start while held elsewhere: %v, want ErrBusy", err)
	}
	if st, _ := m.Status(ctx); !st.Running {
		t.Fatalf("status while held elsewhere: %+v", st)
	}
	held.Release(ctx)
	// A dry run reports the stray as what the due plan would delete.
	time.Sleep(1300 * time.Millisecond)
	id, err = m.Start(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	run, err = m.Wait(ctx, id)
	if err != nil || !run.DryRun || run.Deleted["blobs"] != 1 || !f.hasStray() {
		t.Fatalf("dry run %+v, %v (stray present: %v)", run, err, f.hasStray())
	}
	if _, err := (gcMaintainer{}).Start(ctx, false); err == nil || !strings.Contains(err.Error(), "not enabled") {
		t.Fatalf("without a collector: %v", err)
	}
}

func discardLogger() *logrus.Logger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

// TestServeOnlineGC: serve with the collector enabled runs it on its
// schedule, exposes its metrics and the protocol's, and advertises that it
// follows the protocol in its instance lease.
func TestServeOnlineGC(t *testing.T) {
	cfg := config.Default()
	cfg.Storage.Filesystem.RootDirectory = t.TempDir()
	cfg.HTTP.Addr = freeAddr(t)
	cfg.HTTP.Debug.Addr = freeAddr(t)
	cfg.HTTP.Debug.Prometheus.Enabled = true
	g := &cfg.Storage.Maintenance.GC
	g.Enabled, g.Interval, g.Delay, g.StateMaxAge, g.ClockSkew = true, time.Second, time.Second, 100*time.Millisecond, 100*time.Millisecond
	startServe(t, cfg)
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, body, _ := get(t, "http://"+cfg.HTTP.Debug.Addr+"/metrics")
		if strings.Contains(body, `registryd_gc_runs_total{result="ok"}`) {
			for _, want := range []string{"registryd_gc_phase_duration_seconds_bucket", "registryd_gc_lease_epoch",
				"registryd_gc_last_success_timestamp_seconds", "registryd_gc_store_consistent 1", "registryd_gc_protocol_pins_total"} {
				if !strings.Contains(body, want) {
					t.Errorf("metrics lack %s", want)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no successful run in 30s; metrics:\n%s", body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	d, err := filesystem.New(cfg.Storage.Filesystem.RootDirectory)
	if err != nil {
		t.Fatal(err)
	}
	ins, err := storage.New(d, storage.Options{}).Instances(context.Background())
	if err != nil || len(ins) != 1 || !ins[0].GCProtocol {
		t.Fatalf("instance leases %+v, %v", ins, err)
	}
}

// TestServeAdminGC: the admin API drives the collector of a serving
// registry: a run on demand (waited for), its report in the status, busy
// while another collector holds the lease.
func TestServeAdminGC(t *testing.T) {
	cfg := config.Default()
	cfg.Storage.Filesystem.RootDirectory = t.TempDir()
	cfg.HTTP.Addr = freeAddr(t)
	g := &cfg.Storage.Maintenance.GC
	g.Enabled, g.Interval, g.Delay, g.StateMaxAge, g.ClockSkew = true, time.Hour, time.Second, 100*time.Millisecond, 100*time.Millisecond
	base := startServe(t, cfg)
	var info admin.Info
	if code, body, _ := get(t, base+admin.Prefix); code != 200 || json.Unmarshal([]byte(body), &info) != nil || !info.Features.GC {
		t.Fatalf("info: %d %s", code, body)
	}
	resp, err := http.Post(base+admin.Prefix+"/gc?wait=true", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	var run admin.Run
	err = json.NewDecoder(resp.Body).Decode(&run)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || run.Kind != "gc" || run.Result != "ok" || run.Finished == nil {
		t.Fatalf("POST gc?wait=true: %d %+v %v", resp.StatusCode, run, err)
	}
	var st admin.Maintenance
	if code, body, _ := get(t, base+admin.Prefix+"/gc"); code != 200 || json.Unmarshal([]byte(body), &st) != nil ||
		!st.Enabled || len(st.Runs) != 1 || st.Runs[0].ID != run.ID {
		t.Fatalf("GET gc: %d %s", code, body)
	}
	// Another collector (another instance) holds the lease: busy.
	d, err := filesystem.New(cfg.Storage.Filesystem.RootDirectory)
	if err != nil {
		t.Fatal(err)
	}
	held, err := gc.AcquireLease(context.Background(), storage.New(d, storage.Options{GCStateMaxAge: -1}), gc.LeaseOptions{Heartbeat: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Release(context.Background())
	resp, err = http.Post(base+admin.Prefix+"/gc", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusConflict {
		t.Fatalf("POST gc while another instance collects: %d, want 409", resp.StatusCode)
	}
}

// TestServeAdminGCOff: without a collector the admin API says why and
// what turns it on, in GET (off) and POST (405 UNSUPPORTED); read-only
// mode is named as such.
func TestServeAdminGCOff(t *testing.T) {
	for _, tc := range []struct {
		name     string
		readOnly bool
		want     string
	}{
		{"disabled", false, "storage.maintenance.gc.enabled: true"},
		{"read-only", true, "read-only"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.Storage.Filesystem.RootDirectory = t.TempDir()
			cfg.HTTP.Addr = freeAddr(t)
			cfg.Storage.Maintenance.GC.Enabled = tc.readOnly // read-only wins over enabled
			cfg.Storage.Maintenance.ReadOnly.Enabled = tc.readOnly
			base := startServe(t, cfg)
			var info admin.Info
			if code, body, _ := get(t, base+admin.Prefix); code != 200 || json.Unmarshal([]byte(body), &info) != nil || info.Features.GC {
				t.Fatalf("info: %d %s", code, body)
			}
			var st admin.Maintenance
			if code, body, _ := get(t, base+admin.Prefix+"/gc"); code != 200 || json.Unmarshal([]byte(body), &st) != nil ||
				st.Enabled || len(st.Runs) != 0 || !strings.Contains(st.Off, tc.want) {
				t.Fatalf("GET gc: %d %s, want off naming %q", code, body, tc.want)
			}
			resp, err := http.Post(base+admin.Prefix+"/gc?wait=true", "", nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusMethodNotAllowed || !strings.Contains(string(body), "UNSUPPORTED") || !strings.Contains(string(body), tc.want) {
				t.Fatalf("POST gc: %d %s, want 405 UNSUPPORTED naming %q", resp.StatusCode, body, tc.want)
			}
		})
	}
}

// TestServeRetentionKicksGC: a retention run of a serving registry that
// deleted tags starts a collection at once (not at the collector's next
// turn, an hour away here), which the admin API lists with its trigger;
// a dry run of retention starts none.
func TestServeRetentionKicksGC(t *testing.T) {
	f := newRetentionFixture(t, retentionPolicy)
	cfg, err := config.Load(f.config, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.HTTP.Addr = freeAddr(t)
	g := &cfg.Storage.Maintenance.GC
	g.Enabled, g.Interval, g.Delay, g.StateMaxAge, g.ClockSkew = true, time.Hour, time.Second, 100*time.Millisecond, 100*time.Millisecond
	base := startServe(t, cfg)
	gcRuns := func() []admin.Run {
		t.Helper()
		var st admin.Maintenance
		if code, body, _ := get(t, base+admin.Prefix+"/gc"); code != 200 || json.Unmarshal([]byte(body), &st) != nil {
			t.Fatalf("GET gc: %d %s", code, body)
		}
		return st.Runs
	}
	retain := func(dry bool) admin.Run {
		t.Helper()
		u := base + admin.Prefix + "/retention?wait=true"
		if dry {
			u += "&dryrun=true"
		}
		resp, err := http.Post(u, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var run admin.Run
		if err := json.NewDecoder(resp.Body).Decode(&run); err != nil || resp.StatusCode != 200 || run.Result != "ok" {
			t.Fatalf("POST retention (dry %v): %d %+v %v", dry, resp.StatusCode, run, err)
		}
		return run
	}
	if run := retain(true); !run.DryRun || run.Deleted["tags"] != 2 {
		t.Fatalf("dry retention run: %+v", run)
	}
	if run := retain(false); run.DryRun || run.Deleted["tags"] != 2 {
		t.Fatalf("retention run: %+v", run)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		runs := gcRuns()
		if len(runs) > 0 && runs[0].Result != "running" {
			if len(runs) != 1 || runs[0].Trigger != gc.TriggerRetention || runs[0].Result != "ok" {
				t.Fatalf("collections after retention: %+v, want one, triggered by retention", runs)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no collection finished within 60s of the retention run: %+v", runs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestServeSizesFollowDeleteUntagged: storage.maintenance.gc.deleteuntagged
// decides what the admin API's sizes count as alive, as the collector
// with that setting collects: an untagged image counts without it, and
// not with it.
func TestServeSizesFollowDeleteUntagged(t *testing.T) {
	unique := map[bool]int64{}
	for _, untagged := range []bool{false, true} {
		cfg := adminConfig(t)
		cfg.Storage.Maintenance.GC.DeleteUntagged = untagged
		c := &adminClient{t: t, base: startServe(t, cfg)}
		c.image("app", "v1", "amd64", "tagged layer")
		c.image("app", "", "arm64", "an untagged image's own layer, much longer than the tagged one")
		var repo admin.Repository
		c.json(admin.Prefix+"/repositories/app", 200, &repo)
		if repo.Size == nil || repo.Manifests != 2 {
			t.Fatalf("deleteuntagged %v: %+v", untagged, repo)
		}
		unique[untagged] = repo.Size.Unique
	}
	if unique[true] >= unique[false] {
		t.Fatalf("unique bytes with deleteuntagged %d, without %d: the untagged image should count only without it", unique[true], unique[false])
	}
}
