package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// The registry client built into registryd (`registryd repo ls`, `tag rm`,
// `du`, ...), run as a user runs it, against a live registryd and against
// the reference registry (Debian's docker-registry, which has no admin API
// and no delete by tag).

// cliResult is what one run of the client printed, and its exit status.
type cliResult struct {
	Stdout, Stderr string
	Code           int
}

func (r cliResult) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.Code, truncate(r.Stdout, 3000), truncate(r.Stderr, 3000))
}

// rd runs `registryd ARGS` as a client with env (a private HOME and docker
// config: clientEnv) and stdin not a terminal.
func rd(t testing.TB, env []string, args ...string) cliResult {
	t.Helper()
	return rdStdin(t, env, "", args...)
}

func rdStdin(t testing.TB, env []string, stdin string, args ...string) cliResult {
	t.Helper()
	if buildErr != nil {
		t.Fatalf("registryd does not build: %v", buildErr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, registrydBin, args...)
	cmd.Env = append(serverEnv(nil), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	r := cliResult{Stdout: o.String(), Stderr: e.String()}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		r.Code = exit.ExitCode()
	default:
		t.Fatalf("registryd %s: %v", strings.Join(args, " "), err)
	}
	// Without a terminal, nothing but text: no progress bar, no escapes.
	if strings.ContainsAny(r.Stderr+r.Stdout, "\r\x1b") {
		t.Errorf("registryd %s wrote control characters without a terminal:\n%q", strings.Join(args, " "), r.Stderr)
	}
	return r
}

// rdOK is rd failing the test unless the exit status is 0.
func rdOK(t testing.TB, env []string, args ...string) cliResult {
	t.Helper()
	r := rd(t, env, args...)
	if r.Code != 0 {
		t.Fatalf("registryd %s: %s", strings.Join(args, " "), r)
	}
	return r
}

// imageSize is the bytes an image takes in a registry: manifest, config
// and layer.
func imageSize(img testImage) int64 {
	n := int64(len(img.Manifest))
	for _, b := range img.Blobs {
		n += int64(len(b))
	}
	return n
}

// duRow is one line of `du --format json`.
type duRow struct {
	Repository string `json:"repository"`
	Tags       int    `json:"tags"`
	Logical    int64  `json:"logical"`
	Unique     int64  `json:"unique"`
	Exclusive  int64  `json:"exclusive"`
}

func parseDu(t testing.TB, out string) map[string]duRow {
	t.Helper()
	rows := map[string]duRow{}
	for _, l := range lines(out) {
		var r duRow
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("du --format json: line %q: %v", l, err)
		}
		rows[r.Repository] = r
	}
	return rows
}

// hasAdminAPI tells whether a server answers the registryd admin API.
func hasAdminAPI(t testing.TB, s *Server) bool {
	t.Helper()
	return doHTTP(t, http.MethodGet, s.URL("/v2/_registryd/v1"), nil, nil).Status == http.StatusOK
}

// cliRegistries are the two servers every CLI test runs against.
var cliRegistries = []struct {
	name  string
	start func(t *testing.T) *Server
}{
	{"registryd", func(t *testing.T) *Server { return startRegistryd(t) }},
	{"reference", func(t *testing.T) *Server { return startReference(t, t.TempDir()) }},
}

func TestCLICommands(t *testing.T) {
	for _, reg := range cliRegistries {
		t.Run(reg.name, func(t *testing.T) {
			srv := reg.start(t)
			env := clientEnv(t)
			cr := craneIn(t, env)
			h := srv.Addr
			a := newTestImage(t, t.TempDir(), "v1", "cli-a")
			b := newTestImage(t, t.TempDir(), "v2", "cli-b")
			cr("push", a.Layout, h+"/e2e/app:v1")
			cr("tag", h+"/e2e/app:v1", "v1-alias")
			cr("push", b.Layout, h+"/e2e/app:v2")
			cr("push", a.Layout, h+"/e2e/other:1")
			admin := hasAdminAPI(t, srv)

			// repo ls: every repository, as a table, JSON or a template.
			if r := rdOK(t, env, "repo", "ls", h); !strings.HasPrefix(r.Stdout, "REPOSITORY") || !slices.Equal(firstColumn(r.Stdout), []string{"REPOSITORY", "e2e/app", "e2e/other"}) {
				t.Errorf("repo ls:\n%s", r)
			}
			if r := rdOK(t, env, "repo", "ls", "--format", "{{.Repository}}", "--prefix", "e2e/o", h); r.Stdout != "e2e/other\n" {
				t.Errorf("repo ls --prefix:\n%s", r)
			}
			r := rdOK(t, env, "repo", "ls", "--format", "json", h)
			var names []string
			for _, l := range lines(r.Stdout) {
				var row struct{ Repository string }
				must(t, json.Unmarshal([]byte(l), &row))
				names = append(names, row.Repository)
			}
			if !slices.Equal(names, []string{"e2e/app", "e2e/other"}) {
				t.Errorf("repo ls --format json:\n%s", r)
			}
			if admin {
				// With the admin API: tags, size and last push, the size as
				// the server counts it (each blob once; b is e2e/app's own).
				r = rdOK(t, env, "repo", "ls", h)
				if head := strings.Fields(lines(r.Stdout)[0]); !slices.Equal(head, []string{"REPOSITORY", "TAGS", "SIZE", "LAST", "PUSHED"}) {
					t.Errorf("repo ls headings:\n%s", r)
				}
				if row := strings.Fields(lines(r.Stdout)[1]); len(row) != 4 || row[1] != "3" || row[2] != humanSize(imageSize(a)+imageSize(b)) || !recent(t, row[3]) {
					t.Errorf("repo ls row of e2e/app:\n%s", r)
				}
				r = rdOK(t, env, "repo", "ls", "--format", "{{.Repository}} {{.Tags}} {{.Size.Unique}} {{.Size.Exclusive}}", h)
				if want := fmt.Sprintf("e2e/app 3 %d %d\ne2e/other 1 %d 0\n", imageSize(a)+imageSize(b), imageSize(b), imageSize(a)); r.Stdout != want {
					t.Errorf("repo ls --format: want\n%s\ngot %s", want, r)
				}
			}

			// tag ls
			r = rdOK(t, env, "tag", "ls", "--format", "{{.Name}} {{.Digest}}", h+"/e2e/app")
			if want := fmt.Sprintf("v1 %s\nv1-alias %s\nv2 %s\n", a.Digest, a.Digest, b.Digest); r.Stdout != want {
				t.Errorf("tag ls: want\n%s\ngot %s", want, r)
			}
			r = rdOK(t, env, "tag", "ls", h+"/e2e/app")
			if first := lines(r.Stdout)[0]; !strings.HasPrefix(first, "NAME") || !strings.Contains(first, "DIGEST") {
				t.Errorf("tag ls table:\n%s", r)
			}
			if admin {
				// Sizes, platforms and push times; newest push first.
				r = rdOK(t, env, "tag", "ls", "--format", "{{.Name}} {{.Size}} {{.Platform}} {{time .Pushed}}", h+"/e2e/app")
				for i, want := range []string{fmt.Sprintf("v1 %d linux/amd64", imageSize(a)), fmt.Sprintf("v1-alias %d linux/amd64", imageSize(a)), fmt.Sprintf("v2 %d linux/amd64", imageSize(b))} {
					if l := lines(r.Stdout); len(l) != 3 || !strings.HasPrefix(l[i], want+" ") || !recent(t, strings.Fields(l[i])[3]) {
						t.Errorf("tag ls with the admin API: want %q in line %d\n%s", want, i, r)
					}
				}
				if r := rdOK(t, env, "tag", "ls", "--sort", "pushed", "--format", "{{.Name}}", h+"/e2e/app"); r.Stdout != "v2\nv1-alias\nv1\n" {
					t.Errorf("tag ls --sort pushed:\n%s", r)
				}
			} else if r := rd(t, env, "tag", "ls", "--sort", "pushed", h+"/e2e/app"); r.Code != 1 || !strings.Contains(r.Stderr, "no push times") {
				t.Errorf("tag ls --sort pushed without push times:\n%s", r)
			}
			r = rdOK(t, env, "tag", "ls", "--sort", "created", "--format", "{{.Name}} {{time .Created}}", h+"/e2e/app")
			if !strings.Contains(r.Stdout, "v2 2024-01-01T00:00:00Z") {
				t.Errorf("tag ls --sort created:\n%s", r)
			}
			if r := rd(t, env, "tag", "ls", h+"/e2e/none"); r.Code != 3 {
				t.Errorf("tag ls of a missing repository: %s", r)
			}

			// digest: the one a delete needs; 3 when there is none.
			if r := rdOK(t, env, "digest", h+"/e2e/app:v2"); r.Stdout != b.Digest+"\n" {
				t.Errorf("digest:\n%s", r)
			}
			if r := rd(t, env, "digest", h+"/e2e/app:nope"); r.Code != 3 || !strings.Contains(r.Stderr, "not found") {
				t.Errorf("digest of a missing tag:\n%s", r)
			}
			if r := rd(t, env, "digest", "e2e/app:v2"); r.Code != 2 {
				t.Errorf("digest without a registry host:\n%s", r)
			}

			// image inspect
			r = rdOK(t, env, "image", "inspect", h+"/e2e/app:v1")
			for _, want := range []string{"Digest:      " + a.Digest, "Platform:    linux/amd64", "Created:     2024-01-01T00:00:00Z",
				"E2E_SEED=cli-a", "registryd e2e", "Referrers: none", fmt.Sprintf("(%d bytes)", imageSize(a))} {
				if !strings.Contains(r.Stdout, want) {
					t.Errorf("image inspect lacks %q:\n%s", want, r)
				}
			}
			if r := rdOK(t, env, "image", "inspect", "--raw", h+"/e2e/app:v1"); r.Stdout != string(a.Manifest) {
				t.Errorf("image inspect --raw:\n%s", r)
			}
			if r := rdOK(t, env, "image", "inspect", "--format", "{{.Size}} {{len .Layers}}", h+"/e2e/app:v1"); r.Stdout != fmt.Sprintf("%d 1\n", imageSize(a)) {
				t.Errorf("image inspect --format:\n%s", r)
			}

			// du: e2e/app shares a with e2e/other, so only b is its own.
			du := parseDu(t, rdOK(t, env, "du", "--format", "json", h).Stdout)
			want := duRow{Repository: "e2e/app", Tags: 3, Logical: imageSize(a) + imageSize(b), Unique: imageSize(a) + imageSize(b), Exclusive: imageSize(b)}
			if du["e2e/app"] != want || du["e2e/other"].Exclusive != 0 || du["e2e/other"].Unique != imageSize(a) {
				t.Errorf("du: %+v, want e2e/app %+v", du, want)
			}
			if r := rdOK(t, env, "du", h+"/e2e/other"); !strings.HasPrefix(r.Stdout, "REPOSITORY   TAGS   LOGICAL   UNIQUE   EXCLUSIVE\ne2e/other    1 ") {
				t.Errorf("du REPO:\n%s", r)
			}
			if got := parseDu(t, rdOK(t, env, "du", "--format", "json", h+"/e2e/app").Stdout); len(got) != 1 || got["e2e/app"] != want {
				t.Errorf("du --format json REPO: %+v, want %+v", got, want)
			}

			// manifest rm without --yes, and no terminal to ask on: refused,
			// with the tags that would have gone listed.
			r = rdStdin(t, env, "y\n", "manifest", "rm", h+"/e2e/app@"+a.Digest)
			if r.Code != 1 || !strings.Contains(r.Stdout, "tags that go with it: v1, v1-alias") || !strings.Contains(r.Stderr, "add --yes") {
				t.Errorf("manifest rm without --yes:\n%s", r)
			}
			// What the collection frees, where the server can say: nothing
			// for a (e2e/other has it too).
			if frees := strings.Contains(r.Stdout, "garbage collection then frees: 0B (0 bytes)"); frees != admin {
				t.Errorf("manifest rm's impact in bytes (admin API: %v):\n%s", admin, r)
			}
			if r := rd(t, env, "digest", h+"/e2e/app:v1"); r.Stdout != a.Digest+"\n" {
				t.Fatalf("manifest rm deleted without a confirmation:\n%s", r)
			}

			// tag rm: that tag only, by whichever method the registry allows.
			method := "(OCI delete by tag)"
			if reg.name == "reference" {
				method = "(placeholder manifest pushed to the tag, then deleted by digest)"
			}
			r = rdOK(t, env, "tag", "rm", "--yes", h+"/e2e/app:v1")
			if !strings.Contains(r.Stdout, "the manifest stays, still tagged: v1-alias") || !strings.Contains(r.Stdout, "removed tag "+h+"/e2e/app:v1 "+method) {
				t.Errorf("tag rm:\n%s", r)
			}
			if r := rdOK(t, env, "tag", "ls", "--format", "{{.Name}} {{.Digest}}", h+"/e2e/app"); r.Stdout != fmt.Sprintf("v1-alias %s\nv2 %s\n", a.Digest, b.Digest) {
				t.Errorf("after tag rm, the sibling must stay:\n%s", r)
			}
			checkManifest(t, srv, "e2e/app", "v1-alias", a.Digest, mtOCIManifest)

			// manifest rm --yes takes the manifest and its tag.
			r = rdOK(t, env, "manifest", "rm", "--yes", h+"/e2e/app@"+b.Digest)
			if !strings.Contains(r.Stdout, "tags that go with it: v2") || !strings.Contains(r.Stdout, "deleted manifest") {
				t.Errorf("manifest rm --yes:\n%s", r)
			}
			if frees := fmt.Sprintf("frees: %s (%d bytes)", humanSize(imageSize(b)), imageSize(b)); admin && !strings.Contains(r.Stdout, frees) {
				t.Errorf("manifest rm of e2e/app's own image: want %q\n%s", frees, r)
			}
			if r := rd(t, env, "digest", h+"/e2e/app:v2"); r.Code != 3 {
				t.Errorf("v2 after manifest rm:\n%s", r)
			}

			// repo rm: the dry run is the plan, the run carries it out.
			// Either way it lists the tags and manifests that go, and the
			// bytes: with the admin API what a collection then frees (none
			// here: e2e/other has a too), else what the manifests hold.
			dry := rdOK(t, env, "repo", "rm", "--dry-run", h+"/e2e/app")
			how := "method: V2 API, DELETE /v2/e2e/app/manifests/DIGEST for each"
			bytes := fmt.Sprintf("they hold %s (%d bytes)", humanSize(imageSize(a)), imageSize(a))
			if admin {
				how = "method: registryd admin API, one request: DELETE /v2/_registryd/v1/repositories/e2e/app"
				bytes = fmt.Sprintf("it holds %s (%d bytes); garbage collection then frees 0B (0 bytes) (the rest is shared with other repositories)", humanSize(imageSize(a)), imageSize(a))
			}
			for _, want := range []string{"delete repository " + h + "/e2e/app: 1 tag, 1 manifest\n", how, "\n  " + a.Digest + "  v1-alias\n", bytes, "dry run: nothing was changed\n"} {
				if !strings.Contains(dry.Stdout, want) {
					t.Errorf("repo rm --dry-run lacks %q:\n%s", want, dry)
				}
			}
			if r := rd(t, env, "repo", "rm", h+"/e2e/app"); r.Code != 1 || !strings.Contains(r.Stderr, "add --yes") {
				t.Errorf("repo rm without --yes and without a terminal:\n%s", r)
			}
			checkManifest(t, srv, "e2e/app", "v1-alias", a.Digest, mtOCIManifest)
			r = rdOK(t, env, "repo", "rm", "--yes", h+"/e2e/app")
			if !strings.HasPrefix(r.Stdout, dry.Stdout[:strings.Index(dry.Stdout, "dry run:")]) || !strings.Contains(r.Stdout, "deleted repository "+h+"/e2e/app: 1 tag, 1 manifest") {
				t.Errorf("repo rm: the plan of the dry run, then its deletion:\n%s", r)
			}
			if r := rd(t, env, "tag", "ls", "--format", "{{.Name}}", h+"/e2e/app"); strings.TrimSpace(r.Stdout) != "" {
				t.Errorf("tags left after repo rm:\n%s", r)
			}
			checkManifest(t, srv, "e2e/other", "1", a.Digest, mtOCIManifest)

			// gc goes through the admin API, which only registryd has, and
			// only with its online collector on (TestCLIGC): here it is off,
			// and the command says so and what to do instead.
			r = rd(t, env, "gc", "--dry-run", h)
			why := "no registryd admin API"
			if admin {
				why = "garbage collection is not available on this server"
			}
			if r.Code != 1 || r.Stdout != "" || !strings.Contains(r.Stderr, why) || !strings.Contains(r.Stderr, "registryd garbage-collect config.yml") {
				t.Errorf("gc where there is no collector to start:\n%s", r)
			}
		})
	}
}

// recent tells whether an RFC 3339 time printed by the client is within
// the last ten minutes.
func recent(t testing.TB, s string) bool {
	t.Helper()
	when, err := time.Parse(time.RFC3339, s)
	return err == nil && time.Since(when) < 10*time.Minute && time.Since(when) > -time.Minute
}

// humanSize is the client's way of writing sizes (docker's: SI units, three
// significant digits).
func humanSize(n int64) string {
	f, units, i := float64(n), []string{"B", "kB", "MB", "GB"}, 0
	for f >= 1000 && i < len(units)-1 {
		f /= 1000
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%dB", n)
	}
	return fmt.Sprintf("%.3g%s", f, units[i])
}

// firstColumn is the first word of each line.
func firstColumn(s string) []string {
	var out []string
	for _, l := range lines(s) {
		out = append(out, strings.Fields(l)[0])
	}
	return out
}

// craneIn runs crane (--insecure) in env, failing the test on an error.
func craneIn(t *testing.T, env []string) func(args ...string) {
	crane := tool(t, "crane")
	return func(args ...string) {
		t.Helper()
		runCmd(t, env, clientTimeout, crane, append(args, "--insecure")...)
	}
}

// blobBytes sums the sizes of the blobs in a filesystem storage root.
func blobBytes(t testing.TB, root string) int64 {
	t.Helper()
	var n int64
	dir := filepath.Join(root, "docker", "registry", "v2", "blobs")
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && d.Name() == "data" {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			n += fi.Size()
		}
		return nil
	})
	must(t, err)
	return n
}

// TestCLIDuMatchesGC: the exclusive bytes du reports for a repository are
// what deleting it and then collecting garbage frees on disk.
func TestCLIDuMatchesGC(t *testing.T) {
	for _, reg := range cliRegistries {
		t.Run(reg.name, func(t *testing.T) {
			srv := reg.start(t)
			env := clientEnv(t)
			cr := craneIn(t, env)
			h := srv.Addr
			shared := newTestImage(t, t.TempDir(), "v1", "du-shared")
			own := newTestImage(t, t.TempDir(), "v1", "du-own")
			other := newTestImage(t, t.TempDir(), "v1", "du-other")
			cr("push", shared.Layout, h+"/e2e/gone:shared")
			cr("push", own.Layout, h+"/e2e/gone:own")
			cr("tag", h+"/e2e/gone:own", "own-too")
			cr("push", shared.Layout, h+"/e2e/stays:shared")
			cr("push", other.Layout, h+"/e2e/stays:other")

			du := parseDu(t, rdOK(t, env, "du", "--format", "json", h+"/e2e/gone").Stdout)
			excl := du["e2e/gone"].Exclusive
			if excl != imageSize(own) {
				t.Errorf("du: exclusive %d, want %d (the image only e2e/gone has)", excl, imageSize(own))
			}
			rdOK(t, env, "repo", "rm", "--yes", h+"/e2e/gone")
			before := blobBytes(t, srv.RootDir)
			srv.Stop() // the reference exits by the signal: no clean status to check
			bin := registrydBin
			if reg.name == "reference" {
				bin = referenceBin
			}
			out := runCmd(t, serverEnv(nil), 5*time.Minute, bin, "garbage-collect", srv.Config)
			freed := before - blobBytes(t, srv.RootDir)
			if freed != excl {
				t.Errorf("garbage-collect freed %d bytes; du said %d would be\n%s%s", freed, excl, out.Stdout, out.Stderr)
			}
			srv.Restart()
			checkManifest(t, srv, "e2e/stays", "shared", shared.Digest, mtOCIManifest)
			checkManifest(t, srv, "e2e/stays", "other", other.Digest, mtOCIManifest)
		})
	}
}

// TestCLIBadInput: usage errors exit 2 and say what was expected; nothing
// is sent to a registry.
func TestCLIBadInput(t *testing.T) {
	env := clientEnv(t)
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"tag", "rm", "localhost:5000/a"}, "expected HOST[:PORT]/REPO:TAG"},
		{[]string{"tag", "rm", "localhost:5000/a@sha256:" + strings.Repeat("0", 64)}, "expected HOST[:PORT]/REPO:TAG"},
		{[]string{"manifest", "rm", "localhost:5000/a:v1"}, "registryd tag rm"},
		{[]string{"repo", "rm", "localhost:5000"}, "expected HOST[:PORT]/REPO"},
		{[]string{"repo", "ls"}, "missing registry"},
		{[]string{"tag", "ls", "--sort", "size", "localhost:5000/a"}, "--sort"},
		{[]string{"digest", "localhost:5000/A"}, "invalid repository name"},
		{[]string{"du", "--format", "{{.X", "localhost:5000"}, "--format"},
		{[]string{"repo", "ls", "--bogus", "localhost:5000"}, "flag provided but not defined"},
	} {
		r := rd(t, env, tc.args...)
		if r.Code != 2 || !strings.Contains(r.Stderr, tc.msg) || r.Stdout != "" {
			t.Errorf("registryd %s: want exit 2 with %q\n%s", strings.Join(tc.args, " "), tc.msg, r)
		}
	}
	// A registry that is not there is an error (1), not a usage error.
	if r := rd(t, env, "repo", "ls", "127.0.0.1:1"); r.Code != 1 {
		t.Errorf("repo ls of a closed port:\n%s", r)
	}
	// Plain HTTP to a host that is not loopback needs --insecure.
	if r := rd(t, env, "repo", "ls", "registry.invalid:5000"); r.Code != 1 {
		t.Errorf("repo ls of an unknown host:\n%s", r)
	}
}

// storeSnapshot lists the files of a storage root's repositories and blobs
// with their sizes: what a dry run must leave as it was. (A registryd also
// keeps pull times elsewhere in the root; reading is allowed to note them.)
func storeSnapshot(t testing.TB, root string) map[string]int64 {
	t.Helper()
	files := map[string]int64{}
	for _, sub := range []string{"repositories", "blobs"} {
		dir := filepath.Join(root, "docker", "registry", "v2", sub)
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() {
				fi, err := d.Info()
				if err != nil {
					return err
				}
				files[strings.TrimPrefix(p, root)] = fi.Size()
			}
			return nil
		})
		must(t, err)
	}
	return files
}

// TestCLIPrune: prune --dry-run changes nothing, and the real run deletes
// exactly the tags the dry run listed, tag by tag (siblings and other
// repositories stay), on registryd and on the reference.
func TestCLIPrune(t *testing.T) {
	for _, reg := range cliRegistries {
		t.Run(reg.name, func(t *testing.T) {
			srv := reg.start(t)
			env := clientEnv(t)
			cr := craneIn(t, env)
			h := srv.Addr
			// A CI pipeline: each build is pushed as build-N and then as
			// latest; build-1 was also released as v1.0. Pushed in the
			// order they were built, so push times (registryd records one
			// at every push of a tag, a re-tag included) and creation times
			// (the reference's ages) rank the tags alike: the two pushed
			// last are latest and build-4, one image.
			for i := 1; i <= 4; i++ {
				img := newTestImageCreated(t, t.TempDir(), "v1", fmt.Sprintf("prune-%d", i), fmt.Sprintf("2025-0%d-01T00:00:00Z", i))
				build := fmt.Sprintf("%s/ci/app:build-%d", h, i)
				cr("push", img.Layout, build)
				cr("tag", build, "latest")
				if i == 1 {
					cr("tag", build, "v1.0")
				}
				time.Sleep(1100 * time.Millisecond) // distinct push times, even to the second
			}
			old := newTestImageCreated(t, t.TempDir(), "v1", "prune-old", "2025-01-01T00:00:00Z")
			cr("push", old.Layout, h+"/ci/other:old")
			cr("push", old.Layout, h+"/keep/me:old")

			before := storeSnapshot(t, srv.RootDir)
			r := rdOK(t, env, "prune", "--dry-run", "--format", "json", "--keep-last", "2", "--keep", "^v", h+"/ci/*")
			var plan struct {
				DryRun    bool
				Decisions []struct {
					Repository, Tag, Rule string
					Delete                bool
				}
			}
			must(t, json.Unmarshal([]byte(r.Stdout), &plan))
			var listed []string
			for _, d := range plan.Decisions {
				if d.Delete {
					listed = append(listed, d.Repository+":"+d.Tag)
				}
			}
			if want := []string{"ci/app:build-1", "ci/app:build-2", "ci/app:build-3"}; !plan.DryRun || !slices.Equal(listed, want) {
				t.Fatalf("the dry run lists %v, want %v\n%s", listed, want, r)
			}
			// Each kept tag by the rule that should keep it.
			kept := map[string]string{}
			for _, d := range plan.Decisions {
				if !d.Delete {
					kept[d.Repository+":"+d.Tag] = d.Rule
				}
			}
			if want := map[string]string{"ci/app:latest": "latest", "ci/app:build-4": "mostrecentlypushedcount", "ci/app:v1.0": "patterns",
				"ci/other:old": "mostrecentlypushedcount"}; !maps.Equal(kept, want) {
				t.Errorf("the dry run keeps %v, want %v\n%s", kept, want, r)
			}
			text := rdOK(t, env, "prune", "--dry-run", "--keep-last", "2", "--keep", "^v", h+"/ci/*")
			for _, want := range []string{"REPOSITORY  TAG", "would delete  nokeeprule", "dry run: would delete 3 tags"} {
				if !strings.Contains(text.Stdout, want) {
					t.Errorf("prune --dry-run lacks %q:\n%s", want, text)
				}
			}
			after := storeSnapshot(t, srv.RootDir)
			if !maps.Equal(before, after) {
				t.Fatalf("the dry run changed the storage:\nbefore %v\nafter  %v", before, after)
			}

			// The real run: the same plan, then those deletions, by tag.
			r = rdOK(t, env, "prune", "--yes", "--keep-last", "2", "--keep", "^v", h+"/ci/*")
			var deleted []string
			for _, l := range lines(r.Stdout) {
				if rest, ok := strings.CutPrefix(l, "deleted tag "+h+"/"); ok {
					deleted = append(deleted, strings.Fields(rest)[0])
				}
			}
			if !slices.Equal(deleted, listed) {
				t.Errorf("the real run deleted %v; the dry run listed %v\n%s", deleted, listed, r)
			}
			if r := rdOK(t, env, "tag", "ls", "--format", "{{.Name}}", h+"/ci/app"); r.Stdout != "build-4\nlatest\nv1.0\n" {
				t.Errorf("ci/app after prune:\n%s", r)
			}
			for _, ref := range []string{"/ci/other:old", "/keep/me:old"} {
				if r := rd(t, env, "digest", h+ref); r.Stdout != old.Digest+"\n" {
					t.Errorf("%s after prune:\n%s", ref, r)
				}
			}

			// --older-than: ages are push times where the registry records
			// them, creation times elsewhere.
			r = rdOK(t, env, "prune", "--yes", "--older-than", "30d", h+"/ci/other")
			if strings.Contains(r.Stdout, "ages: the images' creation time") {
				if !strings.Contains(r.Stdout, "deleted tag "+h+"/ci/other:old") {
					t.Errorf("an image built in January 2025 is older than 30 days:\n%s", r)
				}
			} else if strings.Contains(r.Stdout, "deleted tag") {
				t.Errorf("a tag pushed a minute ago is not older than 30 days:\n%s", r)
			}
		})
	}
}
