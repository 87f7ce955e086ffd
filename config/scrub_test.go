package config

import (
	"strings"
	"testing"
	"time"
)

func TestScrubConfig(t *testing.T) {
	base := "version: 0.1\nstorage:\n  inmemory:\n"
	c := mustParse(t, base)
	if c.Storage.Maintenance.Scrub != (Scrub{Interval: 168 * time.Hour, RateLimit: 16 << 20}) {
		t.Fatalf("defaults: %+v", c.Storage.Maintenance.Scrub)
	}
	c, err := Parse([]byte(base+"  maintenance:\n    scrub:\n      enabled: true\n      interval: 12h\n      ratelimit: 50MiB/s\n"),
		[]string{"REGISTRY_STORAGE_MAINTENANCE_SCRUB_REPAIR=true"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Storage.Maintenance.Scrub != (Scrub{Enabled: true, Interval: 12 * time.Hour, RateLimit: 50 << 20, Repair: true}) {
		t.Fatalf("set: %+v", c.Storage.Maintenance.Scrub)
	}
	for _, bad := range []struct{ yml, msg string }{
		{"      enabled: true\n      ratelimit: fast\n", "storage.maintenance.scrub.ratelimit: must be bytes per second"},
		{"      enabled: true\n      ratelimit: 0\n", "must be positive when the scrub is enabled"},
		{"      enabled: true\n      interval: 0s\n", "storage.maintenance.scrub.interval: must be positive"},
	} {
		_, err := Parse([]byte(base+"  maintenance:\n    scrub:\n"+bad.yml), nil)
		if err == nil || !strings.Contains(err.Error(), bad.msg) {
			t.Errorf("%q: %v, want %q", bad.yml, err, bad.msg)
		}
	}
}
