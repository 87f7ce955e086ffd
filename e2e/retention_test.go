package e2e

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/registryd/registryd/internal/localsrv"
)

// retentionEnv configures retention through REGISTRY_* variables, as a
// container would: one policy keeps e2e/ret/app's v* and stable tags and
// its 3 tags pushed last; another keeps every tag of e2e/ret/untagged but
// removes its untagged manifests; a third keeps e2e/ret/pulled's tag
// pulled last. e2e/other matches no policy.
func retentionEnv(interval string) []string {
	return []string{
		"REGISTRY_STORAGE_MAINTENANCE_RETENTION_INTERVAL=" + interval,
		"REGISTRY_STORAGE_MAINTENANCE_RETENTION_DELAY=1s",
		"REGISTRY_STORAGE_MAINTENANCE_RETENTION_MAXSHARE=0.7",
		`REGISTRY_STORAGE_MAINTENANCE_RETENTION_POLICIES=[` +
			`{repositories: ["e2e/ret/app"], keeptags: [{patterns: ["^v", "^stable$"]}, {mostrecentlypushedcount: 3}]},` +
			`{repositories: ["e2e/ret/untagged"], deleteuntagged: true, keeptags: [{patterns: ["."]}]},` +
			`{repositories: ["e2e/ret/pulled"], keeptags: [{mostrecentlypulledcount: 1}]}]`,
	}
}

// TestRetention pushes with crane, applies retention from the configuration
// (a dry run of `registryd retention`, then the server's own schedule) and
// checks what crane sees afterwards: the catalog, the tags, the sibling tag
// of a deleted tag, the manifest a tag left.
func TestRetention(t *testing.T) {
	crane := tool(t, "crane")
	env := clientEnv(t)
	cr := func(args ...string) string {
		t.Helper()
		return strings.TrimSpace(runCmd(t, env, clientTimeout, crane, append(args, "--insecure")...).Stdout)
	}
	root := t.TempDir()
	// Pulls are written every 200ms: the offline run below sees them.
	srv := startRegistrydOn(t, root, "REGISTRY_STORAGE_MAINTENANCE_PULLTIMES_INTERVAL=200ms")
	app := srv.Addr + "/e2e/ret/app"
	digests := map[string]string{}
	push := func(repo, tag, seed string) string {
		img := newTestImage(t, t.TempDir(), tag, seed)
		cr("push", img.Layout, repo+":"+tag)
		// Push times are recorded to the nanosecond; a little apart, the
		// order of pushes is the order of the times on any clock.
		time.Sleep(20 * time.Millisecond)
		return img.Digest
	}
	for _, tag := range []string{"v1.0", "latest", "build-1", "build-2", "build-3", "build-4", "build-5"} {
		digests[tag] = push(app, tag, "ret-"+tag)
	}
	cr("tag", app+":build-1", "stable") // a sibling of build-1, pushed last
	other := push(srv.Addr+"/e2e/other", "old", "ret-other")
	untagged := srv.Addr + "/e2e/ret/untagged"
	first := push(untagged, "dev", "ret-dev-1")
	second := push(untagged, "dev", "ret-dev-2") // first is untagged now
	pulled := srv.Addr + "/e2e/ret/pulled"
	for _, tag := range []string{"p1", "p2", "p3"} {
		push(pulled, tag, "ret-"+tag)
	}
	cr("manifest", pulled+":p1") // a pull: p1 is the tag pulled last (the others never were)
	allApp := []string{"build-1", "build-2", "build-3", "build-4", "build-5", "latest", "stable", "v1.0"}
	appTags := func() []string {
		got := lines(cr("ls", app))
		slices.Sort(got)
		return got
	}
	if got := appTags(); !slices.Equal(got, allApp) {
		t.Fatalf("crane ls before: %v", got)
	}

	// Offline, dry run: the report, nothing deleted.
	time.Sleep(1100 * time.Millisecond) // first is older than delay now, p1's pull is written
	dry := runCmd(t, append(serverEnv(nil), retentionEnv("0s")...), time.Minute, registrydBin, "retention", "--dry-run", srv.Config)
	for _, want := range []string{"build-1", "would delete", "nokeeprule", "deleteuntagged", "dry run: would delete 5 tags and 1 untagged manifests; 3 of 4 repositories have a policy."} {
		if !strings.Contains(dry.Stdout, want) {
			t.Errorf("registryd retention --dry-run lacks %q:\n%s", want, dry.Stdout)
		}
	}
	if got := appTags(); !slices.Equal(got, allApp) {
		t.Fatalf("the dry run deleted tags: %v", got)
	}

	// The server, its schedule from the configuration. Stopping writes the
	// pulls it held in memory.
	srv.Stop()
	debug, err := localsrv.FreeAddr()
	must(t, err)
	srv = startRegistrydOn(t, root, append(retentionEnv("1s"),
		"REGISTRY_HTTP_DEBUG_ADDR="+debug, "REGISTRY_HTTP_DEBUG_PROMETHEUS_ENABLED=true")...)
	app = srv.Addr + "/e2e/ret/app"
	want := []string{"build-4", "build-5", "latest", "stable", "v1.0"}
	deadline := time.Now().Add(60 * time.Second)
	for got := appTags(); !slices.Equal(got, want); got = appTags() {
		if time.Now().After(deadline) {
			t.Fatalf("crane ls after retention: %v, expected %v", got, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// build-2 and build-3 went; build-1 went, its sibling stable stays and
	// pulls the same manifest.
	if got := cr("digest", app+":stable"); got != digests["build-1"] {
		t.Errorf("stable is %s, expected build-1's %s", got, digests["build-1"])
	}
	checkManifest(t, srv, "e2e/ret/app", "stable", digests["build-1"], mtOCIManifest)
	checkManifestGone(t, srv, "e2e/ret/app", "build-2")
	// A deleted tag's manifest stays, by digest, until deleteuntagged or GC.
	checkManifest(t, srv, "e2e/ret/app", digests["build-2"], digests["build-2"], mtOCIManifest)
	// The untagged manifest went, the tagged one stays.
	untagged = srv.Addr + "/e2e/ret/untagged"
	deadline = time.Now().Add(30 * time.Second)
	for getManifest(t, srv, "e2e/ret/untagged", first).Status != http.StatusNotFound {
		if time.Now().After(deadline) {
			t.Fatalf("the untagged manifest %s is still there", first)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got := cr("digest", untagged+":dev"); got != second {
		t.Errorf("dev is %s, expected %s", got, second)
	}
	// By pull time: the tag pulled goes on, those never pulled went.
	deadline = time.Now().Add(30 * time.Second)
	for got := tagsOf(t, srv, "e2e/ret/pulled"); !slices.Equal(got, []string{"p1"}); got = tagsOf(t, srv, "e2e/ret/pulled") {
		if time.Now().After(deadline) {
			t.Fatalf("e2e/ret/pulled tags: %v, expected [p1]", got)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// A repository matching no policy is untouched; the catalog lists all.
	if got := cr("digest", srv.Addr+"/e2e/other:old"); got != other {
		t.Errorf("e2e/other:old is %s, expected %s", got, other)
	}
	catalog := lines(cr("catalog", srv.Addr))
	for _, repo := range []string{"e2e/other", "e2e/ret/app", "e2e/ret/pulled", "e2e/ret/untagged"} {
		if !slices.Contains(catalog, repo) {
			t.Errorf("crane catalog %v lacks %s", catalog, repo)
		}
	}
	// The metric says what was deleted, by policy.
	metrics := httpGetBody(t, "http://"+debug+"/metrics")
	for _, want := range []string{
		`registryd_retention_deleted_tags_total{policy="e2e/ret/app"} 3`,
		`registryd_retention_deleted_manifests_total{policy="e2e/ret/untagged"} 1`,
		`registryd_retention_runs_total{dry_run="false",result="ok"}`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	// The next runs find nothing more to delete.
	time.Sleep(2500 * time.Millisecond)
	if got := appTags(); !slices.Equal(got, want) {
		t.Errorf("later runs changed the tags: %v", got)
	}
}

// TestRetentionDocker pushes with the docker CLI and checks, after the
// server applied its policy, what docker pull sees.
func TestRetentionDocker(t *testing.T) {
	d := startDockerd(t)
	root := t.TempDir()
	srv := startRegistrydOn(t, root)
	repo := srv.Addr + "/e2e/ret/app"
	for i := 1; i <= 4; i++ {
		rootfs := fmt.Sprintf("%s/rootfs-%d.tar", t.TempDir(), i)
		writeTar(t, rootfs, map[string]string{"hello.txt": fmt.Sprintf("build %d\n", i)})
		ref := fmt.Sprintf("%s:build-%d", repo, i)
		d.run(t, "import", rootfs, ref)
		d.run(t, "push", ref)
		time.Sleep(20 * time.Millisecond)
	}
	d.run(t, "tag", repo+":build-4", repo+":v1.0")
	d.run(t, "push", repo+":v1.0")
	// Nothing left locally: what docker gets next comes from the registry.
	for _, tag := range []string{"build-1", "build-2", "build-3", "build-4", "v1.0"} {
		d.run(t, "rmi", repo+":"+tag)
	}
	srv.Stop()
	srv = startRegistrydOn(t, root, retentionEnv("1s")...)
	repo = srv.Addr + "/e2e/ret/app"
	// v1.0 by its pattern; the 3 pushed last are v1.0, build-4 and build-3.
	want := []string{"build-3", "build-4", "v1.0"}
	deadline := time.Now().Add(60 * time.Second)
	for got := tagsOf(t, srv, "e2e/ret/app"); !slices.Equal(got, want); got = tagsOf(t, srv, "e2e/ret/app") {
		if time.Now().After(deadline) {
			t.Fatalf("tags after retention: %v, expected %v", got, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, gone := range []string{"build-1", "build-2"} {
		r, err := tryCmd(d.env, time.Minute, d.cli, "pull", repo+":"+gone)
		if err == nil || !strings.Contains(r.Stdout+r.Stderr+err.Error(), "manifest unknown") {
			t.Errorf("docker pull of the deleted %s: %v\n%s%s", gone, err, r.Stdout, r.Stderr)
		}
	}
	d.run(t, "pull", repo+":build-4")
	d.run(t, "pull", repo+":v1.0")
}

func httpGetBody(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	must(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	must(t, err)
	return string(b)
}
