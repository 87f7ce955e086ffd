package e2e

import (
	"encoding/json"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// adminTag is what the admin API's tag list says of a tag.
type adminTag struct {
	Name       string   `json:"name"`
	Digest     string   `json:"digest"`
	Platforms  []string `json:"platforms"`
	Size       int64    `json:"size"`
	Pushed     string   `json:"pushed"`
	LastPulled string   `json:"lastPulled"`
}

func adminTags(t *testing.T, s *Server, repo string) map[string]adminTag {
	t.Helper()
	var tl struct {
		Tags []adminTag `json:"tags"`
	}
	getJSON(t, s, "/v2/_registryd/v1/repositories/"+repo+"/tags", &tl)
	out := map[string]adminTag{}
	for _, tg := range tl.Tags {
		out[tg.Name] = tg
	}
	return out
}

type adminSize struct {
	Logical   int64 `json:"logical"`
	Unique    int64 `json:"unique"`
	Exclusive int64 `json:"exclusive"`
}

// waitPulled waits until the admin API shows a pull time for repo:tag (the
// server flushes pulls every 200 ms here; the API shows those in memory
// too).
func waitPulled(t *testing.T, s *Server, repo, tag string) adminTag {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if tg := adminTags(t, s, repo)[tag]; tg.LastPulled != "" {
			return tg
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s:%s: no pull time", repo, tag)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The lifecycle with real clients: crane and docker push; the admin API
// shows push and pull times, platforms and sizes that know the layers
// shared between repositories; a repository delete, as crane and docker see
// it afterwards (catalog, tags, pulls of the deleted and of the repository
// sharing its layers); times that survive a restart and a copy of the data
// directory made without preserving file times.
func TestLifecycleWithClients(t *testing.T) {
	crane := tool(t, "crane")
	d := startDockerd(t)
	root := t.TempDir()
	env := []string{"REGISTRY_STORAGE_MAINTENANCE_PULLTIMES_INTERVAL=200ms"}
	s := startRegistrydOn(t, root, env...)
	cenv := clientEnv(t)
	crn := func(args ...string) string {
		t.Helper()
		return strings.TrimSpace(runCmd(t, cenv, clientTimeout, crane, append(args, "--insecure")...).Stdout)
	}

	img1 := newTestImage(t, t.TempDir(), "v1", "lifecycle one")
	img2 := newTestImage(t, t.TempDir(), "v2", "lifecycle two")
	crn("push", img1.Layout, s.Addr+"/team/app:v1")
	time.Sleep(10 * time.Millisecond)
	crn("push", img2.Layout, s.Addr+"/team/app:v2")
	// team/lib gets team/app:v1 by a cross-repository copy (mounted).
	crn("copy", s.Addr+"/team/app:v1", s.Addr+"/team/lib:v1")
	crn("push", img2.Layout, s.Addr+"/other:v1")

	// docker pushes a layer of its own to team/app and team/lib.
	rootfs := filepath.Join(t.TempDir(), "rootfs.tar")
	writeTar(t, rootfs, map[string]string{"hello.txt": "hello from the lifecycle test\n"})
	appRef, libRef := s.Addr+"/team/app:docker", s.Addr+"/team/lib:docker"
	d.run(t, "import", rootfs, appRef)
	d.run(t, "tag", appRef, libRef)
	d.run(t, "push", appRef)
	d.run(t, "push", libRef)
	libID := d.run(t, "image", "inspect", "--format", "{{.Id}}", libRef)

	// Push times, in push order; v1 was pulled by crane copy, v2 not
	// yet, then by crane pull.
	tags := adminTags(t, s, "team/app")
	if len(tags) != 3 || tags["v1"].Pushed == "" || tags["v1"].Pushed >= tags["v2"].Pushed || tags["v1"].LastPulled == "" ||
		tags["v2"].LastPulled != "" || tags["docker"].LastPulled != "" ||
		tags["v1"].Digest != img1.Digest || !slices.Equal(tags["v1"].Platforms, []string{"linux/amd64"}) || tags["v1"].Size <= 0 {
		t.Fatalf("team/app tags %+v", tags)
	}
	crn("pull", s.Addr+"/team/app:v2", filepath.Join(t.TempDir(), "pulled.tar"))
	pulled := waitPulled(t, s, "team/app", "v2")
	// Written by the flusher (200 ms here) before the stop below; the stop
	// writes what is left anyway.

	// Sizes: team/app shares img1 and docker's image with team/lib and
	// img2 with other: nothing is its own, so deleting it frees nothing.
	// The team/ namespace owns img1 and docker's image, not img2.
	var app struct {
		TagCount int       `json:"tagCount"`
		Size     adminSize `json:"size"`
	}
	getJSON(t, s, "/v2/_registryd/v1/repositories/team/app", &app)
	if app.TagCount != 3 || app.Size.Unique <= 0 || app.Size.Exclusive != 0 || app.Size.Logical < app.Size.Unique {
		t.Fatalf("team/app %+v", app)
	}
	var team, all struct {
		adminSize
		Repositories int `json:"repositories"`
	}
	getJSON(t, s, "/v2/_registryd/v1/usage?prefix=team/", &team)
	getJSON(t, s, "/v2/_registryd/v1/usage", &all)
	img2Bytes := int64(len(img2.Manifest))
	for _, b := range img2.Blobs {
		img2Bytes += int64(len(b))
	}
	if team.Repositories != 2 || all.Repositories != 3 || team.Unique != all.Unique || team.Exclusive != all.Unique-img2Bytes {
		t.Fatalf("usage team/ %+v, all %+v, img2 %d bytes", team, all, img2Bytes)
	}

	// Times survive a restart, and a copy of the data directory that
	// resets every file time (cp -r without -p).
	s.Stop()
	copyDir := filepath.Join(t.TempDir(), "copy")
	if out, err := exec.Command("cp", "-r", root, copyDir).CombinedOutput(); err != nil {
		t.Fatalf("cp -r: %v %s", err, out)
	}
	s.Restart()
	if got := adminTags(t, s, "team/app")["v2"]; !sameTimes(got, pulled) {
		t.Fatalf("after a restart %+v, before %+v", got, pulled)
	}
	c := startRegistrydOn(t, copyDir, env...)
	if got := adminTags(t, c, "team/app")["v2"]; !sameTimes(got, pulled) {
		t.Fatalf("on a copy %+v, before %+v", got, pulled)
	}
	c.Stop()

	// Delete team/app.
	r := doHTTP(t, http.MethodDelete, s.URL("/v2/_registryd/v1/repositories/team/app"), nil, nil)
	var del struct {
		Name      string `json:"name"`
		Tags      int    `json:"tags"`
		Manifests int    `json:"manifests"`
	}
	if r.Status != http.StatusAccepted || json.Unmarshal(r.Body, &del) != nil || del.Tags != 3 || del.Manifests != 3 {
		t.Fatalf("delete: %s", r)
	}
	// As the clients see it.
	if got := lines(crn("catalog", s.Addr)); !slices.Equal(got, []string{"other", "team/lib"}) {
		t.Fatalf("crane catalog %v", got)
	}
	res, err := tryCmd(cenv, clientTimeout, crane, "ls", "--insecure", s.Addr+"/team/app")
	if err == nil || !strings.Contains(res.Stderr, "NAME_UNKNOWN") {
		t.Fatalf("crane ls of the deleted repository: %v %s%s", err, res.Stdout, res.Stderr)
	}
	d.run(t, "rmi", appRef, libRef)
	res, err = tryCmd(d.env, time.Minute, d.cli, "pull", appRef)
	if err == nil || !(strings.Contains(res.Stderr, "not found") || strings.Contains(res.Stderr, "unknown")) {
		t.Fatalf("docker pull of the deleted repository: %v %s%s", err, res.Stdout, res.Stderr)
	}
	if got := lines(crn("ls", s.Addr+"/team/lib")); !slices.Equal(got, []string{"docker", "v1"}) {
		t.Fatalf("crane ls team/lib %v", got)
	}
	d.run(t, "pull", libRef)
	if got := d.run(t, "image", "inspect", "--format", "{{.Id}}", libRef); got != libID {
		t.Fatalf("team/lib pulled as %s, pushed %s", got, libID)
	}
	checkManifest(t, s, "team/lib", "v1", img1.Digest, mtOCIManifest)
	for dg, b := range img1.Blobs {
		checkBlob(t, s, "team/lib", dg, b)
	}
	if got := crn("digest", s.Addr+"/other:v1"); got != img2.Digest {
		t.Fatalf("other:v1 is %s, pushed %s", got, img2.Digest)
	}

	// Pushed again, the name starts clean.
	crn("push", img2.Layout, s.Addr+"/team/app:again")
	if got := lines(crn("ls", s.Addr+"/team/app")); !slices.Equal(got, []string{"again"}) {
		t.Fatalf("crane ls after a new push %v", got)
	}
	if tg := adminTags(t, s, "team/app")["again"]; tg.LastPulled != "" || tg.Pushed == "" {
		t.Fatalf("fresh tag %+v", tg)
	}
}

// On S3: push and pull times survive a restart; a repository delete
// leaves the catalog at once and other repositories whole.
func TestLifecycleS3(t *testing.T) {
	m := startMinio(t)
	bucket, storageYAML := m.bucket(t)
	env := []string{"REGISTRY_STORAGE_MAINTENANCE_PULLTIMES_INTERVAL=200ms"}
	s := startRegistrydStorage(t, storageYAML, env...)
	keep := pushImageHTTP(t, s, "keep", "v1", []byte("shared layer"), []byte("keep layer"))
	gone := pushImageHTTP(t, s, "gone", "v1", []byte("shared layer"), []byte("gone layer"))
	getManifest(t, s, "keep", "v1")
	pulled := waitPulled(t, s, "keep", "v1")
	if pulled.Pushed == "" {
		t.Fatalf("keep:v1 %+v", pulled)
	}
	// The records are objects below the repository's own directories
	// (the pull's once flushed).
	var records []string
	for deadline := time.Now().Add(10 * time.Second); ; {
		records = records[:0]
		for _, k := range m.keys(t, bucket, "registry/docker/registry/v2/repositories/keep/") {
			if strings.Contains(k, "/_registryd/") || strings.HasSuffix(k, "/_pushed") {
				records = append(records, k)
			}
		}
		if len(records) == 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(records) != 2 {
		t.Fatalf("records in the bucket %v", records)
	}
	s.Stop()
	s.Restart()
	if got := adminTags(t, s, "keep")["v1"]; !sameTimes(got, pulled) {
		t.Fatalf("after a restart %+v, before %+v", got, pulled)
	}
	if r := doHTTP(t, http.MethodDelete, s.URL("/v2/_registryd/v1/repositories/gone"), nil, nil); r.Status != http.StatusAccepted {
		t.Fatalf("delete: %s", r)
	}
	if got := catalogNames(t, s); !slices.Equal(got, []string{"keep"}) {
		t.Fatalf("catalog %v", got)
	}
	if ks := m.keys(t, bucket, "registry/docker/registry/v2/repositories/gone/"); len(ks) != 0 {
		t.Fatalf("left in the bucket: %v", ks)
	}
	if ks := m.keys(t, bucket, "registry/docker/registry/v2/_registryd/tombstones/"); len(ks) != 0 {
		t.Fatalf("tombstones left: %v", ks)
	}
	pullsIdentical(t, s, keep)
	_ = gone
}

// sameTimes compares what a copy or a restart must keep.
func sameTimes(a, b adminTag) bool {
	return a.Name == b.Name && a.Digest == b.Digest && a.Pushed == b.Pushed && a.LastPulled == b.LastPulled
}
