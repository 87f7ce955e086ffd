package main

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/registryd/registryd/internal/localsrv"
)

// The onlinegc workload: registryd against itself, the collector on and
// off, on the filesystem (issue 14's targets):
//
//	sweeping  a store of 2×N images, N of them deleted (N = -onlinegc-sweep,
//	          2,000), written an hour in the past; registryd with the
//	          collector on, measured while it sweeps them (from the state's
//	          "sweeping" to its end), against the same store and as long with
//	          the collector off: manifest HEAD+GET p99 and requests/s (64
//	          clients), and over a second sweep small-image pushes/s (16
//	          pushers). Targets: p99 within 1.5×, pushes within 10%.
//	online    M images, half deleted (M = -onlinegc-images, 100,000): an
//	          online collection (the run that condemns plus the run that
//	          sweeps, from their reports; the delay between is not counted)
//	          against `garbage-collect` on the same store: time and peak RSS
//	          (the serving process's, baseline included). Targets: time
//	          within 2×, memory under 128 MiB.

const (
	onlineGCDelay    = 5 * time.Second
	onlineGCStateRel = "docker/registry/v2/_registryd/gc/state"
	onlineGCRunsRel  = "docker/registry/v2/_registryd/gc/runs"
)

// onlineGCConfig is a server config with the collector on or off:
// production's state bound (2s), a short interval and delay so that a
// sweep comes seconds after the start.
func onlineGCConfig(root, addr string, on bool) string {
	cfg := configYAML(filesystemStorage(root), addr, "")
	if on {
		cfg = strings.Replace(cfg, "  maintenance:\n", fmt.Sprintf(
			"  maintenance:\n    gc:\n      enabled: true\n      interval: 1s\n      delay: %s\n      statemaxage: 2s\n      clockskew: 1s\n",
			onlineGCDelay), 1)
	}
	return cfg
}

// startOnlineGC starts registryd over root with the collector on or off.
func startOnlineGC(t target, root, work, name string, on bool) (*server, error) {
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		addr, err := localsrv.FreeAddr()
		if err != nil {
			return nil, err
		}
		s := &server{t: t, Addr: addr, Root: root,
			Config: filepath.Join(work, name+".yml"), logPath: filepath.Join(work, name+".log")}
		if err := os.WriteFile(s.Config, []byte(onlineGCConfig(root, addr, on)), 0o644); err != nil {
			return nil, err
		}
		if lastErr = s.start(); lastErr == nil {
			return s, nil
		}
	}
	return nil, lastErr
}

// onlineGCFixture writes the GC fixture of n images afresh and makes it an
// hour old, as a store that has been serving would be: the collector only
// condemns what is older than its delay.
func onlineGCFixture(root string, n int) error {
	if err := os.RemoveAll(root); err != nil {
		return err
	}
	if _, _, err := gcFixture(root, n); err != nil {
		return err
	}
	old := time.Now().Add(-time.Hour)
	return filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Chtimes(p, old, old)
	})
}

// gcPhase is the collector's phase in root's state ("" without one).
func gcPhase(root string) string {
	b, err := os.ReadFile(filepath.Join(root, onlineGCStateRel))
	if err != nil {
		return ""
	}
	var st struct{ Phase string }
	_ = json.Unmarshal(b, &st)
	return st.Phase
}

// whileSweeping waits for the collector over root to start sweeping, then
// returns a "more" function that says yes while it sweeps (polled every
// 20 ms in the background, not by every request) and a stop function.
func whileSweeping(root string, timeout time.Duration) (more func() bool, stop func(), err error) {
	end := time.Now().Add(timeout)
	for gcPhase(root) != "sweeping" {
		if time.Now().After(end) {
			return nil, nil, fmt.Errorf("the collector did not start sweeping within %s", timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var on atomic.Bool
	on.Store(true)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
			}
			if gcPhase(root) != "sweeping" {
				on.Store(false)
				return
			}
		}
	}()
	return on.Load, func() { close(done) }, nil
}

// onlineGCRun is what regbench reads of a collector's run report.
type onlineGCRun struct {
	Phases    map[string]string `json:"phases"`
	Started   time.Time         `json:"started"`
	Finished  time.Time         `json:"finished"`
	Result    string            `json:"result"`
	Plan      string            `json:"plan"`
	SweptPlan string            `json:"sweptPlan"`
	Deleted   struct {
		Blobs int `json:"blobs"`
	} `json:"deleted"`
}

// onlineGCRuns reads the run reports in root, oldest first.
func onlineGCRuns(root string) ([]onlineGCRun, error) {
	dir := filepath.Join(root, onlineGCRunsRel)
	es, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	var out []onlineGCRun
	for _, e := range es {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		var r onlineGCRun
		if json.Unmarshal(b, &r) == nil {
			out = append(out, r)
		}
	}
	return out, nil
}

// onlineGCMetrics are the workload's rows.
type onlineGCMetrics struct {
	rps, p50, p99, small *metric // sweeping vs off
	secs, rss, blobs     *metric // online vs offline
}

// Column names of the two tables.
const (
	colSweeping = "collector sweeping"
	colOff      = "collector off"
	colOnline   = "online collection"
	colOffline  = "garbage-collect"
)

func newOnlineGCMetrics(clients, smallClients, sweep, images int) *onlineGCMetrics {
	return &onlineGCMetrics{
		rps:   &metric{Name: fmt.Sprintf("manifest HEAD+GET, %d clients, while %d deleted images are swept", clients, sweep), Unit: "req/s", Higher: true},
		p50:   &metric{Name: "manifest p50", Unit: "ms"},
		p99:   &metric{Name: "manifest p99", Unit: "ms", TargetRatio: 1.5},
		small: &metric{Name: fmt.Sprintf("small images, %d pushers, while %d deleted images are swept", smallClients, sweep), Unit: "images/s", Higher: true, TargetRatio: 0.9},
		secs:  &metric{Name: fmt.Sprintf("collect %d images, half deleted", images), Unit: "s", TargetRatio: 2},
		rss:   &metric{Name: "peak RSS", Unit: "MiB", TargetAbs: 128},
		blobs: &metric{Name: "blobs reclaimed", Unit: "blobs", Higher: true},
	}
}

// runOnlineGCSweeping measures one repetition of the sweeping rows: each
// workload over a sweep, then as long with the collector off (which needs
// the sweep's length, so it comes second).
func runOnlineGCSweeping(b *bench, t target, m *onlineGCMetrics, rep, sweep, clients, smallClients int) {
	for _, kind := range []string{"manifest", "small"} {
		var window time.Duration
		for _, on := range []bool{true, false} {
			name := fmt.Sprintf("onlinegc-%s-%v-rep%d", kind, on, rep)
			root := filepath.Join(b.work, name)
			check(onlineGCFixture(root, 2*sweep))
			s, err := startOnlineGC(t, root, b.work, name, on)
			check(err)
			if kind == "manifest" {
				b.check(s, pushSmallImage(s.URL(""), "hot/app", "latest", 5, 0))
			}
			more, stop, col := deadline(window), func() {}, colOff
			if on {
				more, stop, err = whileSweeping(root, 5*time.Minute)
				b.check(s, err)
				col = colSweeping
			}
			start := time.Now()
			switch kind {
			case "manifest":
				rps, p50, p99, err := runManifestWhile(s, clients, more, "HEAD", "GET")
				b.check(s, err)
				m.rps.add(col, rps)
				m.p50.add(col, p50)
				m.p99.add(col, p99)
				logf("rep %d onlinegc %-18s manifest %.0f req/s, p50 %.2f ms, p99 %.2f ms over %.1fs", rep+1, col, rps, p50, p99, time.Since(start).Seconds())
			case "small":
				ips, _, err := runSmallWhile(s, smallClients, more, uint64(rep+1)<<40|1<<39)
				b.check(s, err)
				m.small.add(col, ips)
				logf("rep %d onlinegc %-18s small images %.0f/s over %.1fs", rep+1, col, ips, time.Since(start).Seconds())
			}
			stop()
			if on {
				window = time.Since(start)
			}
			b.stop(s)
		}
	}
}

// runOnlineGCCollect measures one repetition of the online rows: the
// offline collector and an online collection over the same store.
func runOnlineGCCollect(b *bench, t target, m *onlineGCMetrics, rep, images int) {
	want := images - images/2
	for k := 0; k < 2; k++ {
		online := (k+rep)%2 == 1
		name := fmt.Sprintf("onlinegc-collect-%v-rep%d", online, rep)
		root := filepath.Join(b.work, name)
		t0 := time.Now()
		check(onlineGCFixture(root, images))
		logf("onlinegc fixture: %d images in %.1fs", images, time.Since(t0).Seconds())
		n0, _, err := countBlobs(root)
		check(err)
		var secs, rss float64
		col := colOffline
		if !online {
			cfg := filepath.Join(b.work, name+".yml")
			check(writeConfig(cfg, root, "127.0.0.1:0", ""))
			secs, rss, err = runGC(t.Bin, cfg)
			check(err)
		} else {
			col = colOnline
			s, err := startOnlineGC(t, root, b.work, name, true)
			check(err)
			deadline := time.Now().Add(30 * time.Minute)
			var plan, sweep *onlineGCRun
			for sweep == nil {
				if time.Now().After(deadline) {
					b.check(s, fmt.Errorf("no sweep within 30 minutes"))
				}
				time.Sleep(200 * time.Millisecond)
				runs, err := onlineGCRuns(root)
				b.check(s, err)
				plan, sweep = nil, nil
				for i := range runs {
					r := &runs[i]
					if r.Result == "ok" && r.Plan != "" && r.SweptPlan == "" && plan == nil {
						plan = r
					}
					if r.Result == "ok" && r.SweptPlan != "" {
						sweep = r
					}
				}
			}
			if plan == nil {
				b.check(s, fmt.Errorf("a sweep without the run that condemned its plan"))
			}
			secs = plan.Finished.Sub(plan.Started).Seconds() + sweep.Finished.Sub(sweep.Started).Seconds()
			logf("rep %d onlinegc the run that condemned: %v; the run that swept: %v", rep+1, plan.Phases, sweep.Phases)
			rss = float64(s.HWM()) / (1 << 20)
			s.Stop()
		}
		n1, _, err := countBlobs(root)
		check(err)
		live, err := verifyLive(root)
		if err != nil {
			fatalf("onlinegc %s lost live data: %v", col, err)
		}
		if live != want {
			fatalf("onlinegc %s: %d live tags afterwards, want %d", col, live, want)
		}
		m.secs.add(col, secs)
		m.rss.add(col, rss)
		m.blobs.add(col, float64(n0-n1))
		logf("rep %d onlinegc %-18s %d images: %.2fs, peak RSS %.1f MiB, reclaimed %d blobs, %d live images intact",
			rep+1, col, images, secs, rss, n0-n1, live)
		os.RemoveAll(root)
	}
}

// formatOnlineGC prints the workload's two tables.
func formatOnlineGC(m *onlineGCMetrics) string {
	var b strings.Builder
	b.WriteString("\nonline garbage collection, registryd against itself on the filesystem; ratio = collector sweeping / off:\n\n")
	b.WriteString(formatTable([]*metric{m.rps, m.p50, m.p99, m.small}, colSweeping, []string{colOff}, nil))
	b.WriteString("\nonline collection against garbage-collect over the same store; ratio = online / offline:\n\n")
	b.WriteString(formatTable([]*metric{m.secs, m.rss, m.blobs}, colOnline, []string{colOffline}, nil))
	return b.String()
}
