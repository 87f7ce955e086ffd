package config

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestGC(t *testing.T) {
	c := mustParse(t, minimal+`  maintenance:
    gc:
      enabled: true
      interval: 30m
      delay: 2h
      window: "22:00-04:30"
      deleteuntagged: true
      dryrun: true
      ratelimit: 250.5
      statemaxage: 1s
      clockskew: 2s
`)
	want := GC{Enabled: true, Interval: 30 * time.Minute, Delay: 2 * time.Hour, Window: "22:00-04:30", DeleteUntagged: true,
		DryRun: true, RateLimit: 250.5, StateMaxAge: time.Second, ClockSkew: 2 * time.Second}
	if got := c.Storage.Maintenance.GC; !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if len(c.Warnings) != 0 {
		t.Errorf("warnings: %v", c.Warnings)
	}
	if d := mustParse(t, minimal).Storage.Maintenance.GC; !reflect.DeepEqual(d, GC{Interval: time.Hour, Delay: time.Hour, StateMaxAge: 2 * time.Second, ClockSkew: 5 * time.Second}) {
		t.Errorf("defaults: %+v", d)
	}
	// Every key from the environment, as a container sets them; seconds
	// are accepted, with a warning.
	c = mustParse(t, "storage: inmemory\n",
		"REGISTRY_STORAGE_MAINTENANCE_GC_ENABLED=true", "REGISTRY_STORAGE_MAINTENANCE_GC_INTERVAL=3s",
		"REGISTRY_STORAGE_MAINTENANCE_GC_DELAY=2s", "REGISTRY_STORAGE_MAINTENANCE_GC_STATEMAXAGE=200ms",
		"REGISTRY_STORAGE_MAINTENANCE_GC_CLOCKSKEW=500ms", "REGISTRY_STORAGE_MAINTENANCE_GC_DELETEUNTAGGED=true",
		"REGISTRY_STORAGE_MAINTENANCE_GC_RATELIMIT=100", "REGISTRY_STORAGE_MAINTENANCE_GC_WINDOW=01:00-05:00",
		"REGISTRY_STORAGE_MAINTENANCE_GC_DRYRUN=false")
	g := c.Storage.Maintenance.GC
	if !g.Enabled || g.Interval != 3*time.Second || g.Delay != 2*time.Second || g.StateMaxAge != 200*time.Millisecond ||
		g.ClockSkew != 500*time.Millisecond || !g.DeleteUntagged || g.RateLimit != 100 || g.Window != "01:00-05:00" {
		t.Errorf("from the environment: %+v", g)
	}
	if w := strings.Join(c.Warnings, "\n"); !strings.Contains(w, "gc.interval is 3s") || !strings.Contains(w, "gc.delay is 2s") {
		t.Errorf("warnings: %v", c.Warnings)
	}
}

func TestGCErrors(t *testing.T) {
	head := minimal + "  maintenance:\n    gc:\n" // the gc keys start at line 7
	for _, tc := range []struct {
		name, yml, key string
		want           string
	}{
		{"delay below the protocol's least", head + "      delay: 5s\n", "storage.maintenance.gc.delay", "at least twice statemaxage plus clockskew (9s)"},
		{"delay below with a short bound", head + "      delay: 1s\n      statemaxage: 500ms\n      clockskew: 100ms\n", "storage.maintenance.gc.delay", "(1.1s)"},
		{"zero interval", head + "      interval: 0s\n", "storage.maintenance.gc.interval", "must be positive"},
		{"window without end", head + "      window: \"22:00\"\n", "storage.maintenance.gc.window", "HH:MM-HH:MM"},
		{"window hour 24", head + "      window: 22:00-24:00\n", "storage.maintenance.gc.window", "24-hour clock"},
		{"negative rate", head + "      ratelimit: -1\n", "storage.maintenance.gc.ratelimit", "must not be negative"},
		{"tiny state bound", head + "      statemaxage: 1ms\n", "storage.maintenance.gc.statemaxage", "at least 10ms"},
		{"misspelt", head + "      deleteuntaged: true\n", "storage.maintenance.gc.deleteuntaged", `did you mean "storage.maintenance.gc.deleteuntagged"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yml), nil)
			var e *Error
			if !errors.As(err, &e) || e.Key != tc.key || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want key %s with %q", err, tc.key, tc.want)
			}
		})
	}
}
