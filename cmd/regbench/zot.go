package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
)

// kind says how a target is configured and what it can run.
type kind int

const (
	kindRegistryd    kind = iota // registryd, and A/B builds of it (-extra)
	kindDistribution             // docker-registry 2.8, distribution v3
	kindZot                      // zot (project-zot), optional (-zot)
)

// supports reports whether a target of kind k runs workload w. zot stores
// images as OCI layouts, not in distribution's layout that the catalog
// and gc fixtures are written in, has no offline garbage-collect command,
// and is not configured on S3 here (its S3 driver wants a cache database
// for deduplication): it runs push, small and manifest.
func (k kind) supports(w string) bool {
	if k != kindZot {
		return true
	}
	switch w {
	case "push", "small", "manifest":
		return true
	}
	return false
}

// durability is what each kind of server makes durable with the
// configuration regbench gives it (each one's default), for the table's
// durability row: what a figure of that column buys.
func (k kind) durability() string {
	switch k {
	case kindRegistryd:
		return "fsync: files, dirs"
	case kindZot:
		return "none (commit off)"
	}
	return "" // per version, see distributionDurability
}

// distributionDurability is the durability row's cell for distribution
// 2.8 and v3, from their filesystem drivers: 2.8 syncs a file when its
// writer closes or commits and writes small files in place; v3 writes
// them to a temporary file, syncs it, renames it and syncs that
// directory, but renames blobs into directories (new ones included) it
// never syncs.
func distributionDurability(name string) string {
	if strings.Contains(name, "2.8") {
		return "fsync: files"
	}
	return "fsync: files, link dirs"
}

// zotConfig is zot's configuration for a storage root and a loopback
// address: the JSON zot reads, with Docker manifests accepted
// (http.compat docker2s2, as clients push them), garbage collection off
// (the other servers collect only when asked), and errors only in the log.
// Deduplication and storage.commit are zot's defaults.
func zotConfig(root, addr string) ([]byte, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	cfg := map[string]any{
		"distSpecVersion": "1.1.1",
		"storage":         map[string]any{"rootDirectory": root, "gc": false},
		"http":            map[string]any{"address": host, "port": port, "compat": []string{"docker2s2"}},
		"log":             map[string]any{"level": "error"},
	}
	return json.MarshalIndent(cfg, "", "  ")
}

// writeServerConfig writes the configuration of a server of kind k over a
// storage driver section (registryd and distribution read YAML, zot JSON
// and only its filesystem root) and returns its path.
func writeServerConfig(t target, work, root, addr, debugAddr, driver string) (string, error) {
	if t.Kind == kindZot {
		if root == "" {
			return "", fmt.Errorf("%s: only filesystem storage is configured", t.Name)
		}
		b, err := zotConfig(root, addr)
		if err != nil {
			return "", err
		}
		p := filepath.Join(work, slug(t.Name)+".json")
		return p, os.WriteFile(p, b, 0o644)
	}
	p := filepath.Join(work, t.Name+".yml")
	return p, os.WriteFile(p, []byte(configYAML(driver, addr, debugAddr)), 0o644)
}

// parseExtra parses -extra: comma-separated NAME=PATH pairs, builds of
// registryd shown as columns of their own (A/B runs), outside the ratio.
func parseExtra(s string) ([]target, error) {
	var out []target
	for _, kv := range strings.Split(s, ",") {
		kv = strings.TrimSpace(kv)
		if kv == "" {
			continue
		}
		name, p, ok := strings.Cut(kv, "=")
		if !ok || name == "" || p == "" {
			return nil, fmt.Errorf("-extra: %q is not NAME=PATH", kv)
		}
		out = append(out, target{Name: name, Bin: abs(p), Kind: kindRegistryd})
	}
	return out, nil
}
