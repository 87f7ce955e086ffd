package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/registryd/registryd/config"
	"github.com/registryd/registryd/storage"
	"github.com/registryd/registryd/storage/driver/filesystem"
)

// The background scrub, through serve: it finds a blob damaged on disk,
// counts it in the metrics, and with repair quarantines it so that a pull
// gets 404 instead of the wrong bytes; the storage remembers the run, so
// a restarted registry does not start over.
func TestServeBackgroundScrub(t *testing.T) {
	root := t.TempDir()
	cfg := config.Default()
	cfg.Storage.Filesystem.RootDirectory = root
	cfg.HTTP.Addr = freeAddr(t)
	cfg.HTTP.Debug.Addr = freeAddr(t)
	cfg.HTTP.Debug.Prometheus.Enabled = true
	cfg.Storage.Maintenance.Scrub = config.Scrub{Enabled: true, Interval: time.Second, RateLimit: 64 << 20, Repair: true}
	base := startServe(t, cfg)

	blob := bytes.Repeat([]byte("scrubbed in the background "), 1000)
	d := digest.FromBytes(blob)
	resp, err := http.Post(base+"/v2/s/blobs/uploads/?digest="+d.String(), "application/octet-stream", bytes.NewReader(blob))
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("push: %v %v", err, resp.Status)
	}
	resp.Body.Close()
	bad := bytes.ToUpper(blob)
	if err := os.WriteFile(filepath.Join(root, "docker/registry/v2/blobs/sha256", d.Encoded()[:2], d.Encoded(), "data"), bad, 0o644); err != nil {
		t.Fatal(err)
	}
	metricsURL := "http://" + cfg.HTTP.Debug.Addr + "/metrics"
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, text, _ := get(t, metricsURL)
		if strings.Contains(text, `registryd_scrub_runs_total{result="damaged"}`) {
			want := []string{`registryd_scrub_damage_found_total{kind="blob"} 1`, "registryd_scrub_bytes_total"}
			// The gauge is the last run's: runs are a second apart, and a
			// clean one after the repair sets it back to 0.
			if !strings.Contains(text, `registryd_scrub_runs_total{result="clean"}`) {
				want = append(want, `registryd_scrub_last_damage{kind="blob"} 1`)
			}
			for _, want := range want {
				if !strings.Contains(text, want) {
					t.Errorf("metrics lack %s", want)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no damaged scrub run counted in 60s:\n%s", grepLines(text, "registryd_scrub"))
		}
		time.Sleep(200 * time.Millisecond)
	}
	if code, body, _ := get(t, base+"/v2/s/blobs/"+d.String()); code != 404 {
		t.Fatalf("a quarantined blob: GET %d (%d bytes), want 404", code, len(body))
	}
	// Two: the blob, quarantined, and the repository's link to it,
	// removed. The state is the last run's, and a run comes every second:
	// the damaged run's stays until the next one starts, and a later clean
	// run may have replaced it, so a repaired store's state must show a
	// finished run, with the damage only if it is the damaged run's.
	state, err := os.ReadFile(filepath.Join(root, "docker/registry/v2/_registryd/scrub/state"))
	if err != nil || !strings.Contains(string(state), `"finished"`) && !strings.Contains(string(state), `"started"`) {
		t.Fatalf("scrub state: %s %v", state, err)
	}
	if strings.Contains(string(state), `"damage"`) && !strings.Contains(string(state), `"damage":2`) {
		t.Fatalf("scrub state: %s, want 2 damaged items or none (a later run)", state)
	}
}

func grepLines(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return fmt.Sprint(strings.Join(out, "\n"))
}

// A run started by an instance that is gone is started again at once; one
// going on in a live instance, or finished, is not.
func TestScrubAbandoned(t *testing.T) {
	ctx := context.Background()
	d, err := filesystem.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	reg := storage.New(d, storage.Options{NoDirWatch: true})
	release, err := reg.RegisterInstance(ctx, "live-instance", false, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	started := time.Now().Add(-time.Minute)
	for _, c := range []struct {
		st   storage.ScrubState
		want bool
	}{
		{storage.ScrubState{Started: started, Instance: "gone-instance"}, true},
		{storage.ScrubState{Started: started, Instance: "live-instance"}, false},
		{storage.ScrubState{Started: started, Finished: started.Add(time.Second), Instance: "gone-instance"}, false},
	} {
		if got := abandoned(ctx, reg, c.st); got != c.want {
			t.Errorf("%+v: abandoned %v, want %v", c.st, got, c.want)
		}
	}
}
