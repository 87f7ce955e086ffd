package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/registryd/registryd/api/admin"
	v2 "github.com/registryd/registryd/api/v2"
	"github.com/registryd/registryd/client"
	"github.com/registryd/registryd/internal/httpmux"
	"github.com/registryd/registryd/internal/repoglob"
	"github.com/registryd/registryd/retention"
	"github.com/registryd/registryd/storage"
	"github.com/registryd/registryd/storage/driver/inmemory"
)

func TestHeader(t *testing.T) {
	for tmpl, want := range map[string]string{
		"{{.Repository}}\t{{size .Unique}}":    "REPOSITORY\tUNIQUE",
		"{{.LastPushed}}\t{{.Size.Exclusive}}": "LAST PUSHED\tEXCLUSIVE",
		"{{time .Pushed}} {{json .}}":          "PUSHED ",
		"{{.Name | upper}}\t{{.ArtifactType}}": "NAME\tARTIFACT TYPE",
		"{{.ID}}\t{{.URLs}}":                   "ID\tURLS",
		"x{{.Digest}}y":                        "xDIGESTy",
	} {
		tt, err := newTemplate(tmpl)
		if err != nil {
			t.Fatal(err)
		}
		if got := header(tt); got != want {
			t.Errorf("header(%q) = %q, want %q", tmpl, got, want)
		}
	}
}

func TestHumanSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0B", 999: "999B", 1000: "1kB", 1234: "1.23kB", 45_600_000: "45.6MB", 7_300_000_000: "7.3GB", -1: "-"} {
		if got := humanSize(n); got != want {
			t.Errorf("humanSize(%d) = %q, want %q", n, got, want)
		}
	}
}

type row struct {
	Name   string     `json:"name"`
	Size   int64      `json:"size"`
	Pushed *time.Time `json:"pushed,omitempty"`
}

func TestOutputFormats(t *testing.T) {
	when := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	rows := []row{{"a", 1234, &when}, {"bb", 5, nil}}
	def := "table {{.Name}}\t{{size .Size}}\t{{time .Pushed}}"
	cases := []struct {
		format string
		want   string
	}{
		{"", "NAME   SIZE     PUSHED\na      1.23kB   2026-01-02T03:04:05Z\nbb     5B       -\n"},
		{"table", "NAME   SIZE     PUSHED\na      1.23kB   2026-01-02T03:04:05Z\nbb     5B       -\n"},
		{"json", `{"name":"a","size":1234,"pushed":"2026-01-02T03:04:05Z"}` + "\n" + `{"name":"bb","size":5}` + "\n"},
		{"{{.Name}}={{.Size}}", "a=1234\nbb=5\n"},
		{`table {{.Name}}\t{{.Size}}`, "NAME   SIZE\na      1234\nbb     5\n"},
		{"{{json .Name}}", "\"a\"\n\"bb\"\n"},
	}
	for _, tc := range cases {
		o, err := formatFlag{tc.format}.parse()
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if err := o.list(&b, def, rows); err != nil {
			t.Fatal(err)
		}
		if b.String() != tc.want {
			t.Errorf("--format %q:\n%s\nwant:\n%s", tc.format, b.String(), tc.want)
		}
	}
	if _, err := (formatFlag{"{{.Name"}).parse(); err == nil {
		t.Error("a broken template is a usage error")
	} else if ue := (*usageError)(nil); !errors.As(err, &ue) {
		t.Errorf("not a usage error: %v", err)
	}
	o, _ := formatFlag{"{{.Nope}}"}.parse()
	if err := o.list(io.Discard, def, rows); err == nil {
		t.Error("a template naming a missing field fails")
	}
}

func TestConfirm(t *testing.T) {
	cases := []struct {
		term   bool
		yes    bool
		input  string
		ok     bool
		prompt bool
	}{
		{false, true, "", true, false},
		{false, false, "y\n", false, false}, // no terminal: never read, never assumed
		{true, false, "y\n", true, true},
		{true, false, "YES\n", true, true},
		{true, false, "n\n", false, true},
		{true, false, "\n", false, true},
		{true, false, "", false, true},
	}
	for _, tc := range cases {
		var errb bytes.Buffer
		s := &Streams{In: strings.NewReader(tc.input), Out: io.Discard, Err: &errb, InTerminal: tc.term}
		err := s.confirm(context.Background(), "Delete it?", tc.yes)
		if (err == nil) != tc.ok {
			t.Errorf("%+v: %v", tc, err)
		}
		if err != nil && !errors.Is(err, errDeclined) {
			t.Errorf("%+v: %v is not errDeclined", tc, err)
		}
		if strings.Contains(errb.String(), "Delete it? [y/N]") != tc.prompt {
			t.Errorf("%+v: prompt %q", tc, errb.String())
		}
	}
}

// Ctrl-C (a cancelled context) ends a question that nobody answers.
func TestConfirmInterrupted(t *testing.T) {
	in, w := io.Pipe()
	defer w.Close()
	ctx, cancel := context.WithCancel(context.Background())
	s := &Streams{In: in, Out: io.Discard, Err: io.Discard, InTerminal: true}
	done := make(chan error)
	go func() { done <- s.confirm(ctx, "Delete it?", false) }()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("confirm after cancel: %v", err)
	}
}

func TestProgress(t *testing.T) {
	var quiet bytes.Buffer
	p := (&Streams{Err: &quiet}).progress("deleting", 3)
	p.add(1)
	p.set(3, 3)
	p.finish()
	if quiet.Len() != 0 {
		t.Errorf("progress drawn without a terminal: %q", quiet.String())
	}
	var tty bytes.Buffer
	p = (&Streams{Err: &tty, ErrTerminal: true, Width: 60}).progress("deleting", 4)
	p.set(2, 4)
	p.set(4, 4)
	p.finish()
	out := tty.String()
	if !strings.Contains(out, "\r\x1b[Kdeleting [") || !strings.Contains(out, "] 4/4") || !strings.HasSuffix(out, "\n") ||
		!strings.Contains(out, strings.Repeat("#", 40)) {
		t.Errorf("progress on a terminal: %q", out)
	}
}

// ---------------------------------------------------------------- commands

// run runs client command name with args; stdin is its input, term says
// whether stdin and stderr are terminals.
func run(t *testing.T, stdin string, term bool, name string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var c *Command
	for _, cmd := range Commands() {
		if cmd.Name == name {
			c = &cmd
		}
	}
	if c == nil {
		t.Fatalf("no command %q", name)
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	r := c.Flags(fs)
	var pos []string
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			return "", err.Error(), ExitUsage
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	var o, e bytes.Buffer
	s := &Streams{In: strings.NewReader(stdin), Out: &o, Err: &e, InTerminal: term, ErrTerminal: term}
	code = r(context.Background(), s, pos)
	return o.String(), e.String(), code
}

// registry is registryd's V2 handler on loopback, optionally with its
// admin API (api/admin, the server's own) over the same storage.
type registry struct {
	*httptest.Server
	host  string
	c     *client.Client
	gc    *testCollector
	reg   *storage.Registry
	admin bool
}

// testCollector stands in for the online collector behind the admin API
// (cmd/registryd wires the real one): it records each run's dryrun flag
// and reports a fixed run.
type testCollector struct {
	mu   sync.Mutex
	runs []bool
}

func (c *testCollector) Status(context.Context) (admin.Maintenance, error) {
	return admin.Maintenance{Enabled: true, Runs: []admin.Run{}}, nil
}

func (c *testCollector) Start(_ context.Context, dryRun bool) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.runs = append(c.runs, dryRun)
	return fmt.Sprintf("run-%d", len(c.runs)), nil
}

func (c *testCollector) Wait(_ context.Context, id string) (admin.Run, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return admin.Run{ID: id, Kind: "gc", DryRun: c.runs[len(c.runs)-1], Result: "ok", Marked: 4,
		Deleted: map[string]int{"blobs": 3}, BytesFreed: 1234}, nil
}

func (c *testCollector) dryRuns() []bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.runs)
}

func newRegistry(t *testing.T, withAdmin bool) *registry {
	t.Helper()
	return newRegistryGC(t, withAdmin, &testCollector{})
}

// newRegistryGC is newRegistry with gc as the collector behind the admin
// API (nil: none).
func newRegistryGC(t *testing.T, withAdmin bool, gc *testCollector) *registry {
	t.Helper()
	reg := storage.New(inmemory.New(), storage.Options{NoDirWatch: true})
	var h http.Handler = v2.NewHandler(reg, v2.Options{DeleteEnabled: true})
	r := &registry{admin: withAdmin, reg: reg, gc: gc}
	if withAdmin {
		opts := admin.Options{DeleteEnabled: true}
		if gc != nil {
			opts.GC = gc
		}
		svc := admin.NewService(reg, opts)
		mux := httpmux.New()
		mux.Handle("/", h)
		ah := admin.NewHandler(svc, admin.HandlerOptions{})
		mux.Handle(admin.Prefix, ah)
		mux.Handle(admin.Prefix+"/", ah)
		mux.Handle(admin.DiscoverPath, ah)
		h = mux
	}
	r.Server = httptest.NewServer(v2.Middleware(h, nil))
	t.Cleanup(r.Close)
	u, _ := url.Parse(r.URL)
	r.host = u.Host
	var err error
	if r.c, err = client.New(client.Options{}); err != nil {
		t.Fatal(err)
	}
	return r
}

func mustRepos(t *testing.T, r *registry) []string {
	repos, err := r.c.Repositories(context.Background(), r.host)
	if err != nil {
		t.Error(err)
	}
	return repos
}

// push pushes a one-layer image and tags it; it returns the digest.
func (r *registry) push(t *testing.T, repo, seed string, tags ...string) digest.Digest {
	t.Helper()
	return r.pushCreated(t, repo, seed, "2024-01-02T03:04:05Z", tags...)
}

// pushCreated is push with the image's creation time.
func (r *registry) pushCreated(t *testing.T, repo, seed, created string, tags ...string) digest.Digest {
	t.Helper()
	ctx := context.Background()
	ref := client.Reference{Host: r.host, Repository: repo}
	cfg := []byte(fmt.Sprintf(`{"architecture":"amd64","os":"linux","created":%q,"config":{"Env":["SEED=%s"]}}`, created, seed))
	layer := []byte("layer " + seed)
	cd, err := r.c.PutBlob(ctx, ref, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ld, err := r.c.PutBlob(ctx, ref, layer)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := json.Marshal(ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
		Config: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: cd, Size: int64(len(cfg))},
		Layers: []ocispec.Descriptor{{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: ld, Size: int64(len(layer))}}})
	var d digest.Digest
	for _, tag := range tags {
		if d, err = r.c.PutManifest(ctx, ref.WithTag(tag), ocispec.MediaTypeImageManifest, m); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond) // distinct push times
	}
	return d
}

func TestCommandsV2(t *testing.T) {
	r := newRegistry(t, false)
	d1 := r.push(t, "team/app", "one", "v1", "v1-alias")
	d2 := r.push(t, "team/app", "two", "v2")
	r.push(t, "other", "x", "1")
	h := r.host

	out, _, code := run(t, "", false, "repo ls", h)
	if code != 0 || out != "REPOSITORY\nother\nteam/app\n" {
		t.Errorf("repo ls: %d %q", code, out)
	}
	out, _, _ = run(t, "", false, "repo ls", "--prefix", "team/", "--format", "{{.Repository}}", h)
	if out != "team/app\n" {
		t.Errorf("repo ls --prefix: %q", out)
	}
	out, _, code = run(t, "", false, "tag ls", "--format", "{{.Name}} {{.Digest}}", h+"/team/app")
	if code != 0 || out != fmt.Sprintf("v1 %s\nv1-alias %s\nv2 %s\n", d1, d1, d2) {
		t.Errorf("tag ls: %d %q", code, out)
	}
	_, errOut, code := run(t, "", false, "tag ls", "--sort", "pushed", h+"/team/app")
	if code != 1 || !strings.Contains(errOut, "no push times") {
		t.Errorf("tag ls --sort pushed without push times: %d %q", code, errOut)
	}
	out, _, code = run(t, "", false, "digest", h+"/team/app:v2")
	if code != 0 || out != string(d2)+"\n" {
		t.Errorf("digest: %d %q", code, out)
	}
	_, errOut, code = run(t, "", false, "digest", h+"/team/app:nope")
	if code != ExitNotFound || !strings.Contains(errOut, "not found") {
		t.Errorf("digest of a missing tag: %d %q", code, errOut)
	}
	_, errOut, code = run(t, "", false, "digest", "team/app:v1")
	if code != ExitUsage || !strings.Contains(errOut, "not a registry host") {
		t.Errorf("digest without a host: %d %q", code, errOut)
	}
	out, _, code = run(t, "", false, "image inspect", h+"/team/app:v1")
	for _, want := range []string{"Digest:      " + string(d1), "Platform:    linux/amd64", "Created:     2024-01-02T03:04:05Z", "SEED=one", "(config)", "Referrers: none"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("image inspect lacks %q:\n%s", want, out)
		}
	}
	out, _, _ = run(t, "", false, "image inspect", "--format", "{{.Config.OS}}/{{len .Layers}}", h+"/team/app:v1")
	if out != "linux/1\n" {
		t.Errorf("image inspect --format: %q", out)
	}

	// manifest rm: refuses without --yes when stdin is not a terminal, and
	// lists the tags that would go.
	out, errOut, code = run(t, "y\n", false, "manifest rm", h+"/team/app@"+string(d1))
	if code != 1 || !strings.Contains(out, "tags that go with it: v1, v1-alias") || !strings.Contains(errOut, "--yes") {
		t.Errorf("manifest rm without --yes: %d\n%s\n%s", code, out, errOut)
	}
	if got, _, _ := run(t, "", false, "digest", h+"/team/app:v1"); got != string(d1)+"\n" {
		t.Fatal("manifest rm deleted without confirmation")
	}
	_, errOut, code = run(t, "", false, "manifest rm", h+"/team/app:v1")
	if code != ExitUsage || !strings.Contains(errOut, "tag rm") {
		t.Errorf("manifest rm with a tag: %d %q", code, errOut)
	}

	// tag rm leaves the sibling.
	out, _, code = run(t, "", false, "tag rm", "--yes", h+"/team/app:v1")
	if code != 0 || !strings.Contains(out, "still tagged: v1-alias") || !strings.Contains(out, "removed tag "+h+"/team/app:v1 (OCI delete by tag)") {
		t.Errorf("tag rm: %d %q", code, out)
	}
	out, _, _ = run(t, "", false, "tag ls", "--format", "{{.Name}}", h+"/team/app")
	if out != "v1-alias\nv2\n" {
		t.Errorf("after tag rm: %q", out)
	}

	// du: team/app's exclusive bytes are its two images.
	out, _, code = run(t, "", false, "du", "--format", "json", h)
	var rows []client.RepoUsage
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var u client.RepoUsage
		if err := json.Unmarshal([]byte(l), &u); err != nil {
			t.Fatalf("du --format json: %q", out)
		}
		rows = append(rows, u)
	}
	if code != 0 || len(rows) != 2 || rows[1].Repository != "team/app" || rows[1].Exclusive <= 0 || rows[1].Unique != rows[1].Exclusive || rows[0].Exclusive != rows[0].Unique {
		t.Errorf("du: %+v", rows)
	}

	// repo rm through V2: the dry run lists, the real run deletes that.
	dry, _, code := run(t, "", false, "repo rm", "--dry-run", h+"/team/app")
	held := r.imageBytes(t, "team/app", d1) + r.imageBytes(t, "team/app", d2)
	if code != 0 || !strings.Contains(dry, "2 tags, 2 manifests") || !strings.Contains(dry, string(d1)+"  v1-alias") ||
		!strings.Contains(dry, fmt.Sprintf("they hold %s (%d bytes)", humanSize(held), held)) || !strings.Contains(dry, "dry run") {
		t.Errorf("repo rm --dry-run: %d %q", code, dry)
	}
	out, _, code = run(t, "team/app\n", true, "repo rm", h+"/team/app")
	if code != 0 || !strings.Contains(out, "deleted repository") {
		t.Errorf("repo rm: %d %q", code, out)
	}
	if tags, _ := r.c.Tags(context.Background(), client.Reference{Host: h, Repository: "team/app"}); len(tags) != 0 {
		t.Errorf("tags left: %v", tags)
	}
	_, errOut, code = run(t, "", false, "gc", h)
	if code != 1 || !strings.Contains(errOut, "no registryd admin API") {
		t.Errorf("gc without the admin API: %d %q", code, errOut)
	}
}

func TestRepoRmNeedsTheName(t *testing.T) {
	r := newRegistry(t, false)
	r.push(t, "keep", "k", "v1")
	out, errOut, code := run(t, "kep\n", true, "repo rm", r.host+"/keep")
	if code != 1 || !strings.Contains(errOut, "Type the repository's name (keep)") || strings.Contains(out, "deleted") {
		t.Errorf("repo rm with a wrong name: %d %q %q", code, out, errOut)
	}
	if tags, _ := r.c.Tags(context.Background(), client.Reference{Host: r.host, Repository: "keep"}); len(tags) != 1 {
		t.Error("deleted after a wrong confirmation")
	}
}

// imageBytes is an image's manifest, config and layers.
func (r *registry) imageBytes(t *testing.T, repo string, d digest.Digest) int64 {
	t.Helper()
	m, err := r.c.Manifest(context.Background(), client.Reference{Host: r.host, Repository: repo, Digest: d})
	if err != nil {
		t.Fatal(err)
	}
	n := m.Descriptor.Size + m.Config.Size
	for _, l := range m.Layers {
		n += l.Size
	}
	return n
}

// The commands against registryd's own admin API: sizes, times, impact and
// repository delete come from it, and agree with what the client computes
// from the manifests.
func TestCommandsAdmin(t *testing.T) {
	r := newRegistry(t, true)
	one := r.push(t, "team/app", "one", "old")
	two := r.push(t, "team/app", "two", "new", "new-alias")
	r.push(t, "other", "one", "1") // shares every blob of "one"
	h := r.host
	sizeOne, sizeTwo := r.imageBytes(t, "team/app", one), r.imageBytes(t, "team/app", two)

	// repo ls: tags, size and last push, under readable headings.
	out, _, code := run(t, "", false, "repo ls", h)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 3 || strings.Join(strings.Fields(lines[0]), " ") != "REPOSITORY TAGS SIZE LAST PUSHED" {
		t.Fatalf("repo ls: %d\n%s", code, out)
	}
	if f := strings.Fields(lines[2]); f[0] != "team/app" || f[1] != "3" || f[2] != humanSize(sizeOne+sizeTwo) || !strings.HasPrefix(f[3], time.Now().UTC().Format("2006-01-02T")) {
		t.Errorf("repo ls row: %q", lines[2])
	}
	out, _, code = run(t, "", false, "repo ls", "--format", "{{.Repository}} {{.Tags}} {{.TagCount}} {{.Size.Unique}} {{.Size.Exclusive}}", h)
	if want := fmt.Sprintf("other 1 1 %d 0\nteam/app 3 3 %d %d\n", sizeOne, sizeOne+sizeTwo, sizeTwo); code != 0 || out != want {
		t.Errorf("repo ls --format: %d %q, want %q", code, out, want)
	}

	// tag ls: sizes and push times; --sort pushed is newest first.
	out, _, code = run(t, "", false, "tag ls", "--format", "{{.Name}} {{.Size}} {{.Platform}}", h+"/team/app")
	if want := fmt.Sprintf("new %d linux/amd64\nnew-alias %d linux/amd64\nold %d linux/amd64\n", sizeTwo, sizeTwo, sizeOne); code != 0 || out != want {
		t.Errorf("tag ls: %d %q, want %q", code, out, want)
	}
	out, _, code = run(t, "", false, "tag ls", "--sort", "pushed", "--format", "{{.Name}}", h+"/team/app")
	if code != 0 || out != "new-alias\nnew\nold\n" {
		t.Errorf("tag ls --sort pushed: %d %q", code, out)
	}
	out, _, _ = run(t, "", false, "tag ls", h+"/team/app")
	if head := strings.Fields(strings.SplitN(out, "\n", 2)[0]); !slices.Equal(head, []string{"NAME", "DIGEST", "PLATFORM", "SIZE", "PUSHED"}) {
		t.Errorf("tag ls table: %q", out)
	}

	// du: the server's figures, and the same as the client computes from
	// the manifests (the V2 fallback) on the same registry.
	out, _, code = run(t, "", false, "du", "--format", "json", h)
	var rows []client.RepoUsage
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var u client.RepoUsage
		if err := json.Unmarshal([]byte(l), &u); err != nil {
			t.Fatalf("du --format json: %q", out)
		}
		rows = append(rows, u)
	}
	computed, err := r.c.ComputeUsage(context.Background(), h, []string{"other", "team/app"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []client.RepoUsage{
		{Repository: "other", Tags: 1, Logical: sizeOne, Unique: sizeOne, Exclusive: 0},
		{Repository: "team/app", Tags: 3, Logical: sizeOne + sizeTwo, Unique: sizeOne + sizeTwo, Exclusive: sizeTwo},
	}
	if code != 0 || !slices.Equal(rows, want) || !slices.Equal(computed, want) {
		t.Errorf("du: %d\nadmin API %+v\ncomputed  %+v\nwant      %+v", code, rows, computed, want)
	}
	out, _, code = run(t, "", false, "du", h+"/team/app")
	if code != 0 || !strings.HasPrefix(out, "REPOSITORY   TAGS   LOGICAL") || !strings.Contains(out, "team/app     3") {
		t.Errorf("du REPO: %d %q", code, out)
	}
	_, _, code = run(t, "", false, "du", h+"/nope")
	if code != ExitNotFound {
		t.Errorf("du of a missing repository: %d", code)
	}

	// manifest rm: the tags that go and the bytes a collection frees.
	out, _, code = run(t, "", false, "manifest rm", "--dry-run", h+"/team/app@"+string(two))
	if code != 0 || !strings.Contains(out, "tags that go with it: new, new-alias") || !strings.Contains(out, fmt.Sprintf("frees: %s (%d bytes)", humanSize(sizeTwo), sizeTwo)) {
		t.Errorf("manifest rm --dry-run: %d\n%s", code, out)
	}
	out, _, _ = run(t, "", false, "manifest rm", "--dry-run", h+"/team/app@"+string(one))
	if !strings.Contains(out, "frees: 0B (0 bytes)") {
		t.Errorf("manifest rm of a shared image: %s", out)
	}

	out, _, code = run(t, "", false, "gc", "--dry-run", h)
	if code != 0 || !strings.Contains(out, "dry run") || !strings.Contains(out, "would free: 1.23kB (1234 bytes)") || !slices.Equal(r.gc.dryRuns(), []bool{true}) {
		t.Errorf("gc --dry-run: %d %q %v", code, out, r.gc.dryRuns())
	}

	// repo rm: the dry run shows what the run deletes, tags and bytes.
	dry, _, code := run(t, "", false, "repo rm", "--dry-run", h+"/team/app")
	for _, want := range []string{
		"delete repository " + h + "/team/app: 3 tags, 2 manifests\n",
		"method: registryd admin API, one request: DELETE /v2/_registryd/v1/repositories/team/app\n",
		"  " + string(one) + "  old\n",
		"  " + string(two) + "  new, new-alias\n",
		fmt.Sprintf("it holds %s (%d bytes); garbage collection then frees %s (%d bytes) (the rest is shared with other repositories)\n",
			humanSize(sizeOne+sizeTwo), sizeOne+sizeTwo, humanSize(sizeTwo), sizeTwo),
		"dry run: nothing was changed\n",
	} {
		if code != 0 || !strings.Contains(dry, want) {
			t.Errorf("repo rm --dry-run lacks %q:\n%s", want, dry)
		}
	}
	out, _, code = run(t, "", false, "repo rm", "--yes", h+"/team/app")
	if code != 0 || !strings.HasSuffix(out, "deleted repository "+h+"/team/app: 3 tags, 2 manifests\n") {
		t.Errorf("repo rm: %d %q", code, out)
	}
	if _, _, code := run(t, "", false, "tag ls", h+"/team/app"); code != ExitNotFound {
		t.Errorf("tag ls after repo rm: %d", code)
	}
}

// gc against a registryd whose admin API has no collector says so, and
// what to do instead, without starting anything.
func TestGCNotAvailable(t *testing.T) {
	r := newRegistryGC(t, true, nil)
	out, errOut, code := run(t, "", false, "gc", "--dry-run", r.host)
	if code != ExitError || out != "" || !strings.Contains(errOut, "garbage collection is not available on this server") ||
		!strings.Contains(errOut, "storage.maintenance.gc.enabled: true") || !strings.Contains(errOut, "registryd garbage-collect config.yml") {
		t.Errorf("gc without a collector: %d %q %q", code, out, errOut)
	}
}

// Every command's help has examples and says what it is for.
func TestHelpHasExamples(t *testing.T) {
	for _, c := range Commands() {
		if !strings.Contains(c.About, "\nExamples:\n  registryd "+c.Name) || c.Summary == "" {
			t.Errorf("%s: help without examples of itself:\n%s", c.Name, c.About)
		}
	}
}

func TestParseAge(t *testing.T) {
	for in, want := range map[string]time.Duration{"30d": 30 * 24 * time.Hour, "2w": 14 * 24 * time.Hour, "1.5d": 36 * time.Hour, "12h": 12 * time.Hour, "90m": 90 * time.Minute} {
		if got, err := parseAge(in); err != nil || got != want {
			t.Errorf("parseAge(%q) = %v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "d", "-1d", "30x", "1e9d"} {
		if _, err := parseAge(bad); err == nil {
			t.Errorf("parseAge(%q) succeeded", bad)
		}
	}
}

// prune against a registry without push times: ages from the images'
// creation time; 1970 is unknown and kept; the dry run's list is what the
// real run deletes.
func TestPruneV2(t *testing.T) {
	r := newRegistry(t, false)
	h := r.host
	r.pushCreated(t, "ci/app", "b1", "2025-01-01T00:00:00Z", "build-1", "v1.0")
	r.pushCreated(t, "ci/app", "b2", "2025-02-01T00:00:00Z", "build-2")
	r.pushCreated(t, "ci/app", "b3", "2025-03-01T00:00:00Z", "build-3")
	r.pushCreated(t, "ci/app", "b4", "2025-04-01T00:00:00Z", "build-4", "latest")
	r.pushCreated(t, "ci/app", "repro", "1970-01-01T00:00:00Z", "repro")
	r.pushCreated(t, "ci/other", "o1", "2025-01-01T00:00:00Z", "old")
	r.pushCreated(t, "keep/me", "k1", "2025-01-01T00:00:00Z", "old")

	dry, _, code := run(t, "", false, "prune", "--dry-run", "--format", "json", "--keep-last", "2", "--keep", "^v", h+"/ci/*")
	var plan admin.Run
	if err := json.Unmarshal([]byte(dry), &plan); code != 0 || err != nil {
		t.Fatalf("prune --dry-run --format json: %d %v\n%s", code, err, dry)
	}
	var listed []string
	for _, d := range plan.Decisions {
		if d.Delete {
			listed = append(listed, d.Repository+":"+d.Tag)
		}
	}
	// The two pushed (here: built) last are latest and build-4, one image:
	// counts rank every tag, as the server's policies do.
	if want := []string{"ci/app:build-1", "ci/app:build-2", "ci/app:build-3"}; !slices.Equal(listed, want) || !plan.DryRun {
		t.Fatalf("the dry run lists %v, want %v:\n%s", listed, want, dry)
	}
	text, _, _ := run(t, "", false, "prune", "--dry-run", "--keep-last", "2", "--keep", "^v", h+"/ci/*")
	for _, want := range []string{"ages: the images' creation time", "would delete  nokeeprule", "keep          latest", "keep          patterns", "age unknown", "dry run: would delete 3 tags"} {
		if !strings.Contains(text, want) {
			t.Errorf("prune --dry-run lacks %q:\n%s", want, text)
		}
	}
	tagsOf := func(repo string) []string {
		tags, _ := r.c.Tags(context.Background(), client.Reference{Host: h, Repository: repo})
		return tags
	}
	if got := tagsOf("ci/app"); len(got) != 7 {
		t.Fatalf("the dry run changed the tags: %v", got)
	}
	// Without a terminal and without --yes: refused.
	if _, errOut, code := run(t, "", false, "prune", "--keep-last", "2", h+"/ci/*"); code != 1 || !strings.Contains(errOut, "--yes") {
		t.Errorf("prune without --yes: %d %s", code, errOut)
	}
	out, _, code := run(t, "", false, "prune", "--yes", "--format", "json", "--keep-last", "2", "--keep", "^v", h+"/ci/*")
	var done admin.Run
	if err := json.Unmarshal([]byte(out), &done); code != 0 || err != nil || done.DryRun || done.Deleted["tags"] != 3 {
		t.Fatalf("prune --yes: %d %v\n%s", code, err, out)
	}
	if got := tagsOf("ci/app"); !slices.Equal(got, []string{"build-4", "latest", "repro", "v1.0"}) {
		t.Errorf("after prune: %v", got)
	}
	if got := tagsOf("keep/me"); len(got) != 1 {
		t.Errorf("a repository outside the glob lost tags: %v", got)
	}
	// --older-than: 1970 is kept, the others are older than 30 days.
	out, _, code = run(t, "", false, "prune", "--yes", "--older-than", "30d", h+"/ci/other")
	if code != 0 || !strings.Contains(out, "deleted tag "+h+"/ci/other:old (OCI delete by tag)") {
		t.Errorf("prune --older-than: %d\n%s", code, out)
	}
	for _, bad := range [][]string{{"--keep", "^v", h + "/ci/*"}, {"--keep-last", "1", h}, {"--keep-last", "1", h + "/[x"}, {"--keep-last", "1", "--keep", "(", h + "/ci/*"}, {"--older-than", "soon", h + "/ci/*"}} {
		if _, errOut, code := run(t, "", false, "prune", bad...); code != ExitUsage {
			t.Errorf("prune %v: %d %s", bad, code, errOut)
		}
	}
	if _, _, code := run(t, "", false, "prune", "--keep-last", "1", h+"/nothing/*"); code != ExitNotFound {
		t.Errorf("prune of a glob that matches nothing: %d", code)
	}
}

// prune with push times from the admin API, and a tag pushed again
// between the plan and the delete is kept.
func TestPruneAdminMoved(t *testing.T) {
	r := newRegistry(t, true)
	h := r.host
	for i := 1; i <= 4; i++ {
		r.push(t, "ci/app", fmt.Sprint(i), fmt.Sprintf("build-%d", i))
	}
	out, _, code := run(t, "", false, "prune", "--dry-run", "--format", "{{.Tag}} {{.Delete}} {{.Rule}}", "--keep-last", "2", h+"/ci/app")
	if code != 0 || out != "build-1 true nokeeprule\nbuild-2 true nokeeprule\nbuild-3 false mostrecentlypushedcount\nbuild-4 false mostrecentlypushedcount\n" {
		t.Fatalf("prune --dry-run with push times: %d\n%s", code, out)
	}
	// Move build-1 while the question waits: answer arrives after a push.
	ctx := context.Background()
	pr := &pruner{cl: r.c, s: &Streams{Out: io.Discard, Err: io.Discard}, host: h}
	var err error
	if pr.engine, err = retention.Compile(retention.Settings{Delay: time.Hour, MaxDeletionsPerRun: 100, MaxShare: 1,
		Policies: []retention.Policy{{Repositories: []string{"ci/app"}, KeepTags: []retention.KeepRule{{MostRecentlyPushedCount: 2}}}}}); err != nil {
		t.Fatal(err)
	}
	pat, _ := repoglob.Compile("ci/app")
	rep, err := pr.plan(ctx, pat)
	if err != nil || rep.DeletedTags != 2 {
		t.Fatalf("plan: %+v %v", rep, err)
	}
	r.push(t, "ci/app", "new", "build-1")
	if err := pr.apply(ctx, &rep, false); err != nil {
		t.Fatal(err)
	}
	tags, _ := r.c.Tags(ctx, client.Reference{Host: h, Repository: "ci/app"})
	if !slices.Equal(tags, []string{"build-1", "build-3", "build-4"}) || rep.DeletedTags != 1 {
		t.Errorf("after a move: tags %v, deleted %d", tags, rep.DeletedTags)
	}
	for _, d := range rep.Decisions {
		if d.Tag == "build-1" && (d.Delete || d.Rule != retention.RuleMoved) {
			t.Errorf("build-1: %+v", d)
		}
	}
}
