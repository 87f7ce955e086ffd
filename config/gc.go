package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// GC is storage.maintenance.gc: garbage collection inside serve while it
// serves (registryd's own; distribution ignores the section). Package gc
// explains the protocol these tune; docs/online-gc.md the operator's view.
type GC struct {
	Enabled        bool          // enabled: this instance runs the collector (default false)
	Interval       time.Duration // interval: between runs (default 1h)
	Delay          time.Duration // delay: grace period before anything unreferenced is deleted (default 1h)
	Window         string        // window: daily HH:MM-HH:MM (local time) outside which no run starts or sweeps ("": always)
	DeleteUntagged bool          // deleteuntagged: also collect manifests no tag reaches (default false)
	DryRun         bool          // dryrun: mark and report, delete nothing (default false)
	RateLimit      float64       // ratelimit: the collector's storage requests per second (0: unlimited)
	// StateMaxAge (statemaxage, default 2s) bounds how stale a registry's
	// copy of the collector state may be when a write relies on it; it
	// applies to every serving instance, collector or not, and the sweep
	// waits this long at each step.
	StateMaxAge time.Duration
	// ClockSkew (clockskew, default 5s) bounds how far the clocks inside
	// the store (its nodes, an NFS server and its clients) may disagree.
	ClockSkew time.Duration
}

func gcSchema() *key {
	return impl(section(map[string]*key{
		"enabled":        impl(boolean()),
		"interval":       impl(duration()),
		"delay":          impl(duration()),
		"window":         impl(str()),
		"deleteuntagged": impl(boolean()),
		"dryrun":         impl(boolean()),
		"ratelimit":      impl(float()),
		"statemaxage":    impl(duration()),
		"clockskew":      impl(duration()),
	}))
}

func defaultGC() GC {
	return GC{Interval: time.Hour, Delay: time.Hour, StateMaxAge: 2 * time.Second, ClockSkew: 5 * time.Second}
}

// fillGC reads storage.maintenance.gc and checks what the protocol needs:
// a delay of at least twice the state bound plus the clock skew bound
// (the proof of package gc depends on it), a well-formed window.
func (p *parser) fillGC(c *Config, boolean func(string, *bool), duration func(string, *time.Duration),
	str func(string, *string), bad func(string, string, ...any)) {
	const k = "storage.maintenance.gc."
	g := &c.Storage.Maintenance.GC
	boolean(k+"enabled", &g.Enabled)
	duration(k+"interval", &g.Interval)
	duration(k+"delay", &g.Delay)
	str(k+"window", &g.Window)
	boolean(k+"deleteuntagged", &g.DeleteUntagged)
	boolean(k+"dryrun", &g.DryRun)
	duration(k+"statemaxage", &g.StateMaxAge)
	duration(k+"clockskew", &g.ClockSkew)
	if n := p.vals[k+"ratelimit"]; n != nil {
		_ = n.Decode(&g.RateLimit) // checked by walk
		if g.RateLimit < 0 {
			bad(k+"ratelimit", "must not be negative (0 is no limit), got %s", n.Value)
		}
	}
	if g.StateMaxAge < 10*time.Millisecond {
		bad(k+"statemaxage", "must be at least 10ms, got %s", g.StateMaxAge)
	}
	if g.ClockSkew < 0 {
		bad(k+"clockskew", "must not be negative, got %s", g.ClockSkew)
	}
	if g.Interval <= 0 {
		bad(k+"interval", "must be positive, got %s", g.Interval)
	}
	if least := 2*g.StateMaxAge + g.ClockSkew; g.Delay < least {
		bad(k+"delay", "must be at least twice statemaxage plus clockskew (%s), got %s: a plan must outlive every registry's copy of the state", least, g.Delay)
	}
	if g.Window != "" {
		if err := checkWindow(g.Window); err != nil {
			bad(k+"window", "%v", err)
		}
	}
	if g.Enabled {
		if g.Interval < time.Minute {
			p.warnings = append(p.warnings, fmt.Sprintf("storage.maintenance.gc.interval is %s: under a minute, the collector works almost all the time (fine for tests)", g.Interval))
		}
		if g.Delay < time.Minute {
			p.warnings = append(p.warnings, fmt.Sprintf("storage.maintenance.gc.delay is %s: under a minute, a push slower than that may have to upload blobs again", g.Delay))
		}
	}
}

// checkWindow checks a daily window "HH:MM-HH:MM" (package gc parses it).
func checkWindow(s string) error {
	a, b, ok := strings.Cut(strings.TrimSpace(s), "-")
	if !ok {
		return fmt.Errorf("must be HH:MM-HH:MM, got %q", s)
	}
	for _, c := range []string{a, b} {
		h, m, ok := strings.Cut(strings.TrimSpace(c), ":")
		hh, err1 := strconv.Atoi(h)
		mm, err2 := strconv.Atoi(m)
		if !ok || len(m) != 2 || len(h) == 0 || len(h) > 2 || err1 != nil || err2 != nil || hh < 0 || hh > 23 || mm < 0 || mm > 59 {
			return fmt.Errorf("must be HH:MM-HH:MM (24-hour clock), got %q", s)
		}
	}
	return nil
}

func dumpGC(g GC) *yaml.Node {
	return pairs("enabled", g.Enabled, "interval", fmtDuration(g.Interval), "delay", fmtDuration(g.Delay),
		"window", g.Window, "deleteuntagged", g.DeleteUntagged, "dryrun", g.DryRun, "ratelimit", g.RateLimit,
		"statemaxage", fmtDuration(g.StateMaxAge), "clockskew", fmtDuration(g.ClockSkew))
}
