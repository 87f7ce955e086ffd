package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/registryd/registryd/internal/localsrv"
)

// The pulltimes workload: registryd alone, with pull-time tracking on
// (flushed every second, sixty times the default, so that flushes happen
// during the run) and off, interleaved, each answering manifest GETs by
// tag from many clients. Pulls are only noted in memory on the request
// path (storage/times.go); this measures that they cost nothing visible.
const (
	pullTimesOn  = "pull times on (flush 1s)"
	pullTimesOff = "pull times off"
)

// startPullTimes starts registryd over a fresh root with pull-time
// tracking on or off.
func startPullTimes(b *bench, t target, rep int, on bool) (*server, error) {
	root := filepath.Join(b.work, fmt.Sprintf("pulltimes-%v-rep%d", on, rep))
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	pt := "    pulltimes:\n      enabled: false\n"
	if on {
		pt = "    pulltimes:\n      enabled: true\n      interval: 1s\n"
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		addr, err := localsrv.FreeAddr()
		if err != nil {
			return nil, err
		}
		name := fmt.Sprintf("pulltimes-%v", on)
		s := &server{t: t, Addr: addr, Root: root,
			Config:  filepath.Join(b.work, name+".yml"),
			logPath: filepath.Join(b.work, name+".log")}
		cfg := strings.Replace(configYAML(filesystemStorage(root), addr, ""), "  maintenance:\n", "  maintenance:\n"+pt, 1)
		if err := os.WriteFile(s.Config, []byte(cfg), 0o644); err != nil {
			return nil, err
		}
		if lastErr = s.start(); lastErr == nil {
			return s, nil
		}
	}
	return nil, lastErr
}

// runPullTimes runs one repetition of the workload, both variants, in an
// order that alternates with rep.
func runPullTimes(b *bench, t target, rep, clients int, d time.Duration, rps, p50, p99 *metric) {
	for k := range 2 {
		on := (k+rep)%2 == 0
		s, err := startPullTimes(b, t, rep, on)
		check(err)
		r, l50, l99, err := runManifestMethods(s, clients, d, "GET")
		b.check(s, err)
		name := pullTimesOff
		if on {
			name = pullTimesOn
		}
		rps.add(name, r)
		p50.add(name, l50)
		p99.add(name, l99)
		logf("rep %d %-26s manifest GET %.0f req/s, p50 %.2f ms, p99 %.2f ms", rep+1, name, r, l50, l99)
		b.stop(s)
	}
}
