package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// zot's configuration: the root, the loopback address split as zot wants
// it, Docker manifests accepted, no garbage collection.
func TestZotConfig(t *testing.T) {
	b, err := zotConfig("/tmp/z", "127.0.0.1:5123")
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Storage struct {
			RootDirectory string
			GC            *bool
		}
		HTTP struct {
			Address, Port string
			Compat        []string
		}
	}
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	if c.Storage.RootDirectory != "/tmp/z" || c.Storage.GC == nil || *c.Storage.GC || c.HTTP.Address != "127.0.0.1" || c.HTTP.Port != "5123" || strings.Join(c.HTTP.Compat, ",") != "docker2s2" {
		t.Fatalf("config %s", b)
	}
	if _, err := zotConfig("/tmp/z", "no-port"); err == nil {
		t.Fatal("address without a port accepted")
	}
}

func TestParseExtra(t *testing.T) {
	ts, err := parseExtra("old=/x/registryd, new=bin/registryd,")
	if err != nil || len(ts) != 2 || ts[0].Name != "old" || ts[0].Bin != "/x/registryd" || ts[1].Kind != kindRegistryd {
		t.Fatalf("%+v %v", ts, err)
	}
	for _, bad := range []string{"old", "=x", "old="} {
		if _, err := parseExtra(bad); err == nil {
			t.Errorf("parseExtra(%q) accepted", bad)
		}
	}
}

// A row of words (what each server's figures buy) and A/B columns, which
// the ratio leaves out.
func TestFormatTableTextAndExtras(t *testing.T) {
	dur := &metric{Name: "durability", Text: map[string]string{"registryd": "fsync all", "ref": "none", "old": "fsync all"}}
	push := &metric{Name: "push", Unit: "MB/s", Higher: true, TargetRatio: 1.3}
	push.add("registryd", 300)
	push.add("ref", 200)
	push.add("old", 900) // an A/B build: not a reference
	got := formatTable([]*metric{dur, push}, "registryd", []string{"ref"}, []string{"old"})
	for _, w := range []string{"| durability ", " fsync all ", " none ", "| registryd | ref | old |", " 1.50× ", "≥ 1.30× pass"} {
		if !strings.Contains(strings.Join(strings.Fields(got), " "), strings.Join(strings.Fields(w), " ")) {
			t.Errorf("table lacks %q:\n%s", w, got)
		}
	}
	if kindZot.supports("gc") || kindZot.supports("catalog") || kindZot.supports("s3") || !kindZot.supports("small") || !kindRegistryd.supports("gc") {
		t.Error("workloads zot runs")
	}
}
