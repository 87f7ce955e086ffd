package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/registryd/registryd/internal/minio"
)

// Faults under load: 16 pushers and 16 pullers against the real registryd
// while the test kills it (SIGKILL) and restarts it, and, on the
// filesystem, fills its disk (a tmpfs the test mounts), or, on S3, stops
// MinIO for 10 s and makes the network to it slow and then lossy (a proxy
// in between). Afterwards:
//   - every push that got 201 pulls back byte-identical, by tag and digest;
//   - no blob was ever served whose bytes do not match its digest;
//   - nothing a failed push left is half-visible: a blob or manifest that
//     answers is whole, and every tag listed resolves to a whole image;
//   - every failure a client saw was a 5xx or a broken connection while a
//     fault was on (or just after, while the registry recovered), never a
//     4xx or wrong bytes; a full disk was 503 UNAVAILABLE saying so;
//   - the server recovers without an operator: a push and pull after the
//     last fault succeed on the same process, and `registryd scrub` finds
//     the storage whole.
// The counts (pushes acknowledged, faults injected, bytes verified) are
// logged with -v.

const (
	faultPushers = 16
	faultPullers = 16
	faultRepos   = 8
)

// blobSpec is a blob whose bytes are made again from its seed.
type blobSpec struct {
	Digest string
	Seed   uint64
	Size   int
}

func makeBlob(seed uint64, size int) blobSpec {
	b := blobSpec{Seed: seed, Size: size}
	b.Digest = sha256Digest(b.bytes())
	return b
}

func (b blobSpec) bytes() []byte {
	out := make([]byte, b.Size)
	r := rand.New(rand.NewPCG(b.Seed, 0x9e3779b97f4a7c15))
	for i := 0; i < len(out); i += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && i+j < len(out); j++ {
			out[i+j] = byte(v >> (8 * j))
		}
	}
	return out
}

type pushedImage struct {
	repo, tag, digest string
	manifest          []byte
	blobs             []blobSpec // config first
}

// window is a time during which failures are a fault's doing.
type window struct {
	name     string
	from, to time.Time
}

// failure is a request that failed as a fault may make one fail.
type failure struct {
	op         string
	start, end time.Time
	what       string
}

type faultRun struct {
	t      *testing.T
	srv    *Server
	start  time.Time
	kind   string // "filesystem" or "s3"
	seed   atomic.Uint64
	shared []blobSpec // layers many images share

	mu           sync.Mutex
	windows      []window
	faults       []string
	acked        []*pushedImage
	unacked      []*pushedImage
	blobsTried   map[string]blobSpec
	failures     []failure
	wrong        []string
	pullOK       []time.Time // successful pulls, to show pulls go on during a full disk
	full503      []time.Time // 503 UNAVAILABLE saying the storage is full
	pushAttempts int

	pulls, loadBytes atomic.Int64
}

func newFaultRun(t *testing.T, srv *Server, kind string) *faultRun {
	f := &faultRun{t: t, srv: srv, kind: kind, blobsTried: map[string]blobSpec{}}
	f.seed.Store(uint64(time.Now().UnixNano()))
	for i := 0; i < 6; i++ {
		f.shared = append(f.shared, makeBlob(f.seed.Add(1), 20<<10+i*40<<10))
	}
	return f
}

func (f *faultRun) since(at time.Time) string {
	return at.Sub(f.start).Round(time.Millisecond).String()
}

// wrongAnswer records something a fault may never cause.
func (f *faultRun) wrongAnswer(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.wrong) < 50 {
		f.wrong = append(f.wrong, fmt.Sprintf("[%s] ", f.since(time.Now()))+fmt.Sprintf(format, args...))
	}
}

func (f *faultRun) fault(name string, from, to time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.windows = append(f.windows, window{fmt.Sprintf("#%d %s", len(f.windows)+1, name), from, to})
	f.faults = append(f.faults, name)
}

// faultAnswer is what one request got.
type faultAnswer struct {
	status     int
	header     http.Header
	body       []byte
	err        error
	start, end time.Time
}

func (a faultAnswer) code() string {
	var e struct {
		Errors []struct{ Code, Message string } `json:"errors"`
	}
	if json.Unmarshal(a.body, &e) != nil || len(e.Errors) == 0 {
		return ""
	}
	return e.Errors[0].Code + ": " + e.Errors[0].Message
}

func (a faultAnswer) String() string {
	if a.err != nil {
		return a.err.Error()
	}
	return fmt.Sprintf("%d %s", a.status, clipBody(a.body))
}

func faultClient() *http.Client {
	return &http.Client{
		Timeout:   2 * time.Minute,
		Transport: &http.Transport{MaxIdleConnsPerHost: 4, ResponseHeaderTimeout: 90 * time.Second},
		// A redirect is never an faultAnswer the registry gives here.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func (f *faultRun) do(c *http.Client, method, target string, hdr http.Header, body []byte) faultAnswer {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	if !strings.HasPrefix(target, "http") {
		target = f.srv.URL(target)
	}
	a := faultAnswer{start: time.Now()}
	req, err := http.NewRequest(method, target, rd)
	if err != nil {
		f.t.Fatal(err)
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	resp, err := c.Do(req)
	if err == nil {
		a.status, a.header = resp.StatusCode, resp.Header
		a.body, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	a.err, a.end = err, time.Now()
	return a
}

// failed sorts out an faultAnswer that is not the one wanted: a broken
// connection or a 5xx is a failure to check against the fault windows,
// anything else is wrong. It returns true (the caller gives up on what it
// was doing) in both cases.
func (f *faultRun) failed(op string, a faultAnswer) {
	if a.err == nil && a.status < 500 {
		f.wrongAnswer("%s: %s", op, a)
		return
	}
	f.mu.Lock()
	f.failures = append(f.failures, failure{op: op, start: a.start, end: a.end, what: a.String()})
	if a.status == http.StatusServiceUnavailable && strings.Contains(a.code(), "UNAVAILABLE: the registry's storage is full") {
		f.full503 = append(f.full503, a.end)
	}
	f.mu.Unlock()
}

// newImage makes an image: a config and one to three layers, some shared
// with other images, rarely one of several MiB.
func (f *faultRun) newImage(repo, tag string) *pushedImage {
	r := rand.New(rand.NewPCG(f.seed.Add(1), 1))
	im := &pushedImage{repo: repo, tag: tag}
	cfg := []byte(fmt.Sprintf(`{"architecture":"amd64","os":"linux","config":{"Env":["TAG=%s"]},"n":%d}`, tag, r.Uint64()))
	cfgSpec := blobSpec{Digest: sha256Digest(cfg), Size: len(cfg), Seed: 0}
	im.blobs = append(im.blobs, cfgSpec)
	var layers []string
	for n := 1 + r.IntN(3); n > 0; n-- {
		var b blobSpec
		switch p := r.IntN(100); {
		case p < 30:
			b = f.shared[r.IntN(len(f.shared))]
		case p < 95:
			b = makeBlob(f.seed.Add(1), 1+r.IntN(256<<10))
		default:
			b = makeBlob(f.seed.Add(1), 5<<20+r.IntN(2<<20))
		}
		im.blobs = append(im.blobs, b)
		layers = append(layers, fmt.Sprintf(`{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":%d}`, b.Digest, b.Size))
	}
	im.manifest = []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":"%s","digest":"%s","size":%d},"layers":[%s]}`,
		mtOCIManifest, mtOCIConfig, cfgSpec.Digest, len(cfg), strings.Join(layers, ",")))
	im.digest = sha256Digest(im.manifest)
	configs.Store(cfgSpec.Digest, cfg)
	return im
}

// configs holds config blobs by digest: they are not made from a seed.
var configs sync.Map

func specBytes(b blobSpec) []byte {
	if v, ok := configs.Load(b.Digest); ok {
		return v.([]byte)
	}
	return b.bytes()
}

// pushBlob pushes b unless the repository has it, monolithically or in
// chunks; false when it failed (recorded).
func (f *faultRun) pushBlob(c *http.Client, repo string, b blobSpec, r *rand.Rand) bool {
	f.mu.Lock()
	f.blobsTried[repo+"@"+b.Digest] = b
	f.mu.Unlock()
	head := f.do(c, http.MethodHead, "/v2/"+repo+"/blobs/"+b.Digest, nil, nil)
	switch {
	case head.err == nil && head.status == http.StatusOK:
		if head.header.Get("Content-Length") != strconv.Itoa(b.Size) {
			f.wrongAnswer("HEAD blob %s: Content-Length %s, want %d", b.Digest, head.header.Get("Content-Length"), b.Size)
			return false
		}
		return true
	case head.err == nil && head.status == http.StatusNotFound:
	default:
		f.failed("HEAD blob", head)
		return false
	}
	data := specBytes(b)
	if r.IntN(2) == 0 {
		a := f.do(c, http.MethodPost, "/v2/"+repo+"/blobs/uploads/?digest="+b.Digest, http.Header{"Content-Type": {"application/octet-stream"}}, data)
		if a.err != nil || a.status != http.StatusCreated {
			f.failed("POST monolithic blob", a)
			return false
		}
		return true
	}
	a := f.do(c, http.MethodPost, "/v2/"+repo+"/blobs/uploads/", nil, nil)
	if a.err != nil || a.status != http.StatusAccepted {
		f.failed("POST upload", a)
		return false
	}
	loc := a.header.Get("Location")
	cut := len(data) / (1 + r.IntN(3))
	for off, end := 0, cut; off < len(data); off, end = end, len(data) {
		if off == end {
			continue
		}
		a = f.do(c, http.MethodPatch, loc, http.Header{"Content-Type": {"application/octet-stream"},
			"Content-Range": {fmt.Sprintf("%d-%d", off, end-1)}}, data[off:end])
		if a.err != nil || a.status != http.StatusAccepted {
			f.failed("PATCH chunk", a)
			return false
		}
		if got := a.header.Get("Range"); got != fmt.Sprintf("0-%d", end-1) {
			f.wrongAnswer("PATCH %d-%d: Range %q", off, end-1, got)
			return false
		}
		loc = a.header.Get("Location")
	}
	a = f.do(c, http.MethodPut, withQuery(loc, "digest="+b.Digest), nil, nil)
	if a.err != nil || a.status != http.StatusCreated {
		f.failed("PUT upload", a)
		return false
	}
	if a.header.Get("Docker-Content-Digest") != b.Digest {
		f.wrongAnswer("PUT upload: Docker-Content-Digest %q, want %s", a.header.Get("Docker-Content-Digest"), b.Digest)
		return false
	}
	return true
}

func (f *faultRun) pusher(ctx context.Context, id int) {
	c := faultClient()
	r := rand.New(rand.NewPCG(uint64(id), f.seed.Load()))
	repo := fmt.Sprintf("faults/repo%d", id%faultRepos)
	for n := 0; ctx.Err() == nil; n++ {
		im := f.newImage(repo, fmt.Sprintf("p%d-%d", id, n))
		f.mu.Lock()
		f.pushAttempts++
		f.mu.Unlock()
		ok := true
		for _, b := range im.blobs {
			if ok = f.pushBlob(c, repo, b, r); !ok {
				break
			}
		}
		if ok {
			a := f.do(c, http.MethodPut, "/v2/"+repo+"/manifests/"+im.tag, http.Header{"Content-Type": {mtOCIManifest}}, im.manifest)
			switch {
			case a.err != nil || a.status != http.StatusCreated:
				f.failed("PUT manifest", a)
				ok = false
			case a.header.Get("Docker-Content-Digest") != im.digest:
				f.wrongAnswer("PUT manifest %s: Docker-Content-Digest %q, want %s", im.tag, a.header.Get("Docker-Content-Digest"), im.digest)
				ok = false
			}
		}
		f.mu.Lock()
		if ok {
			f.acked = append(f.acked, im)
		} else {
			f.unacked = append(f.unacked, im)
		}
		f.mu.Unlock()
		if !ok {
			time.Sleep(time.Duration(50+r.IntN(200)) * time.Millisecond)
		}
	}
}

// pullImage pulls im and checks every byte; ok is false when a request
// failed (recorded), bytes counts what was verified.
func (f *faultRun) pullImage(c *http.Client, im *pushedImage, byDigest, ranges bool, r *rand.Rand) (bytesOK int64, ok bool) {
	ref := im.tag
	if byDigest {
		ref = im.digest
	}
	a := f.do(c, http.MethodGet, "/v2/"+im.repo+"/manifests/"+ref, http.Header{"Accept": {mtOCIManifest}}, nil)
	if a.err != nil || a.status != http.StatusOK {
		f.failed("GET manifest", a)
		return 0, false
	}
	if !bytes.Equal(a.body, im.manifest) || a.header.Get("Docker-Content-Digest") != im.digest {
		f.wrongAnswer("GET manifest %s:%s: %d bytes, digest %q; want the %d bytes pushed, %s", im.repo, ref, len(a.body), a.header.Get("Docker-Content-Digest"), len(im.manifest), im.digest)
		return 0, false
	}
	bytesOK += int64(len(a.body))
	for _, b := range im.blobs {
		want := specBytes(b)
		hdr := http.Header{}
		lo, hi := 0, b.Size-1
		if ranges && b.Size > 1 && r.IntN(3) == 0 {
			lo = r.IntN(b.Size)
			hi = lo + r.IntN(b.Size-lo)
			hdr.Set("Range", fmt.Sprintf("bytes=%d-%d", lo, hi))
		}
		a := f.do(c, http.MethodGet, "/v2/"+im.repo+"/blobs/"+b.Digest, hdr, nil)
		if a.err != nil || a.status >= 500 {
			f.failed("GET blob", a)
			return bytesOK, false
		}
		wantStatus := http.StatusOK
		if hdr.Get("Range") != "" {
			wantStatus = http.StatusPartialContent
		}
		if a.status != wantStatus || !bytes.Equal(a.body, want[lo:hi+1]) {
			f.wrongAnswer("GET blob %s (%s) of %s:%s: %d, %d bytes that are not the %d pushed", b.Digest, hdr.Get("Range"), im.repo, im.tag, a.status, len(a.body), hi-lo+1)
			return bytesOK, false
		}
		bytesOK += int64(len(a.body))
	}
	return bytesOK, true
}

func (f *faultRun) puller(ctx context.Context, id int) {
	c := faultClient()
	r := rand.New(rand.NewPCG(uint64(1000+id), f.seed.Load()))
	for ctx.Err() == nil {
		f.mu.Lock()
		var im *pushedImage
		if len(f.acked) > 0 {
			im = f.acked[r.IntN(len(f.acked))]
		}
		f.mu.Unlock()
		if im == nil {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		n, ok := f.pullImage(c, im, r.IntN(2) == 0, true, r)
		f.loadBytes.Add(n)
		if ok {
			f.pulls.Add(1)
			f.mu.Lock()
			f.pullOK = append(f.pullOK, time.Now())
			f.mu.Unlock()
		} else {
			// As a client would, not at once.
			time.Sleep(time.Duration(50+r.IntN(200)) * time.Millisecond)
		}
	}
}

// killAndRestart is a crash of registryd: SIGKILL, then a restart on the
// same storage and address.
func (f *faultRun) killAndRestart() {
	from := time.Now()
	f.srv.Kill()
	time.Sleep(300 * time.Millisecond)
	f.srv.Restart()
	f.fault("SIGKILL+restart", from, time.Now().Add(2*time.Second))
}

// run drives the load for the duration of the schedule (fault functions at
// offsets from the start), then a quiet tail, then checks everything.
func (f *faultRun) run(schedule []scheduled, tail time.Duration) {
	t := f.t
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	f.start = time.Now()
	for i := 0; i < faultPushers; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); f.pusher(ctx, i) }()
	}
	for i := 0; i < faultPullers; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); f.puller(ctx, i) }()
	}
	for _, s := range schedule {
		if d := time.Until(f.start.Add(s.at)); d > 0 {
			time.Sleep(d)
		}
		t.Logf("[%s] fault: %s", f.since(time.Now()), s.name)
		s.do()
	}
	time.Sleep(tail)
	stop()
	wg.Wait()
	f.check()
}

type scheduled struct {
	at   time.Duration
	name string
	do   func()
}

// allowed reports whether a failure happened while a fault was on, and
// names the shortest such fault (the most likely cause, for the counts).
func (f *faultRun) allowed(fl failure) (string, bool) {
	best, found := window{}, false
	for _, w := range f.windows {
		if fl.end.After(w.from.Add(-time.Second)) && fl.start.Before(w.to) {
			if !found || w.to.Sub(w.from) < best.to.Sub(best.from) {
				best, found = w, true
			}
		}
	}
	return best.name, found
}

func (f *faultRun) check() {
	t := f.t
	t.Helper()
	c := faultClient()
	// The server recovers without an operator: on the same process, a
	// new image goes in and comes back.
	probe := f.newImage("faults/after", "recovered")
	r := rand.New(rand.NewPCG(7, 7))
	for _, b := range probe.blobs {
		if !f.pushBlob(c, probe.repo, b, r) {
			t.Errorf("after the faults, a push failed: the registry did not recover")
		}
	}
	if a := f.do(c, http.MethodPut, "/v2/"+probe.repo+"/manifests/recovered", http.Header{"Content-Type": {mtOCIManifest}}, probe.manifest); a.status != http.StatusCreated {
		t.Errorf("after the faults, a manifest push: %s", a)
	}
	if _, ok := f.pullImage(c, probe, false, false, r); !ok {
		t.Errorf("after the faults, the new image does not pull back")
	}
	nFailures := len(f.failures)
	// What came before the recovery probe is judged by the windows.
	var unexplained []string
	byWindow := map[string]int{}
	for _, fl := range f.failures[:nFailures] {
		name, ok := f.allowed(fl)
		if !ok {
			unexplained = append(unexplained, fmt.Sprintf("%s at %s-%s: %s", fl.op, f.since(fl.start), f.since(fl.end), fl.what))
			continue
		}
		byWindow[name]++
	}

	// Every acknowledged push, byte for byte, by tag and by digest.
	var verified int64
	for i, im := range f.acked {
		n, ok := f.pullImage(c, im, i%2 == 1, false, r)
		verified += n
		if !ok {
			t.Errorf("acknowledged image %s:%s (%s) does not pull back whole", im.repo, im.tag, im.digest)
		}
	}
	// What failed pushes left: whole where it answers at all.
	half := 0
	for _, im := range f.unacked {
		a := f.do(c, http.MethodGet, "/v2/"+im.repo+"/manifests/"+im.tag, http.Header{"Accept": {mtOCIManifest}}, nil)
		switch {
		case a.err == nil && a.status == http.StatusNotFound:
		case a.err == nil && a.status == http.StatusOK:
			half++
			if n, ok := f.pullImage(c, im, false, false, r); !ok {
				t.Errorf("a push that failed left %s:%s visible but not whole", im.repo, im.tag)
			} else {
				verified += n
			}
		default:
			t.Errorf("after the faults, GET %s:%s of a failed push: %s", im.repo, im.tag, a)
		}
	}
	blobsVisible := 0
	for key, b := range f.blobsTried {
		repo, _, _ := strings.Cut(key, "@")
		a := f.do(c, http.MethodGet, "/v2/"+repo+"/blobs/"+b.Digest, nil, nil)
		switch {
		case a.err == nil && a.status == http.StatusNotFound:
		case a.err == nil && a.status == http.StatusOK:
			blobsVisible++
			if !bytes.Equal(a.body, specBytes(b)) {
				t.Errorf("blob %s in %s is visible with %d bytes that are not the ones pushed", b.Digest, repo, len(a.body))
			}
			verified += int64(len(a.body))
		default:
			t.Errorf("after the faults, GET blob %s in %s: %s", b.Digest, repo, a)
		}
	}
	// Every tag listed resolves to a whole image.
	tags := 0
	byTag := map[string]*pushedImage{}
	for _, im := range append(append([]*pushedImage{}, f.acked...), f.unacked...) {
		byTag[im.repo+":"+im.tag] = im
	}
	for i := 0; i < faultRepos; i++ {
		repo := fmt.Sprintf("faults/repo%d", i)
		var list struct{ Tags []string }
		a := f.do(c, http.MethodGet, "/v2/"+repo+"/tags/list", nil, nil)
		if a.status == http.StatusNotFound {
			continue
		}
		if a.status != http.StatusOK || json.Unmarshal(a.body, &list) != nil {
			t.Errorf("tags of %s: %s", repo, a)
			continue
		}
		for _, tag := range list.Tags {
			tags++
			im := byTag[repo+":"+tag]
			if im == nil {
				t.Errorf("%s lists tag %s, which nobody pushed", repo, tag)
				continue
			}
			if _, ok := f.pullImage(c, im, false, false, r); !ok {
				t.Errorf("%s lists tag %s, which does not pull whole", repo, tag)
			}
		}
	}
	// And the storage, checked from the inside.
	code, out := runScrub(t, f.srv.Config)
	if code != 0 {
		t.Errorf("registryd scrub after the faults: exit %d\n%s", code, out)
	}

	for _, w := range f.wrong {
		t.Errorf("wrong faultAnswer: %s", w)
	}
	for i, u := range unexplained {
		if i == 20 {
			t.Errorf("... and %d more", len(unexplained)-20)
			break
		}
		t.Errorf("failure outside every fault window: %s", u)
	}
	var windows []string
	for _, w := range f.windows {
		windows = append(windows, fmt.Sprintf("%s %s-%s: %d failures", w.name, f.since(w.from), f.since(w.to), byWindow[w.name]))
	}
	sort.Strings(windows)
	t.Logf("FAULTS UNDER LOAD (%s): pushes acknowledged %d of %d attempted; faults injected %d (%s); bytes verified %d (%d while pulling during the faults in %d pulls, %d after); %d failures seen by clients; %d wrong answers; %d failed pushes left whole images, %d blobs visible all whole, %d tags listed all whole; scrub exit %d",
		f.kind, len(f.acked), f.pushAttempts, len(f.faults), strings.Join(f.faults, ", "), f.loadBytes.Load()+verified, f.loadBytes.Load(), f.pulls.Load(), verified,
		nFailures, len(f.wrong), half, blobsVisible, tags, code)
	t.Logf("fault windows: %s", strings.Join(windows, "; "))
	if len(f.acked) == 0 {
		t.Errorf("no push was acknowledged: the load did not run")
	}
}

// TestFaultsFilesystem runs the load on a tmpfs the test mounts, kills
// the registry twice and fills the disk twice.
func TestFaultsFilesystem(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("!!! SKIPPING the filesystem fault test: it mounts a tmpfs to fill, which needs root")
	}
	dir := t.TempDir()
	// Room for what 16 pushers store in a minute on a quiet machine (the
	// disk must be full only when the test fills it).
	const size = 6 << 30
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+strconv.Itoa(size), "registryd-faults", dir).CombinedOutput(); err != nil {
		t.Skipf("!!! SKIPPING the filesystem fault test: cannot mount a tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", dir, err, out)
		}
	})
	root := filepath.Join(dir, "data")
	must(t, os.MkdirAll(root, 0o755))
	srv := startRegistrydOn(t, root)
	f := newFaultRun(t, srv, "filesystem")
	// fill makes the disk full: it shrinks the tmpfs to a little more than
	// it holds, and writes a file until there is no space left. empty
	// removes the file and gives the tmpfs its size back.
	ballast := filepath.Join(dir, "ballast")
	var fillFrom time.Time
	fill := func() {
		fillFrom = time.Now()
		var st syscall.Statfs_t
		must(t, syscall.Statfs(dir, &st))
		used := int64(st.Blocks-st.Bfree) * st.Bsize
		if out, err := exec.Command("mount", "-o", "remount,size="+strconv.FormatInt(used+16<<20, 10), dir).CombinedOutput(); err != nil {
			t.Fatalf("remount: %v %s", err, out)
		}
		fh, err := os.Create(ballast)
		must(t, err)
		buf := make([]byte, 1<<20)
		for {
			if _, err := fh.Write(buf); err != nil {
				break // ENOSPC: full
			}
		}
		fh.Close()
	}
	empty := func(name string) func() {
		return func() {
			must(t, os.Remove(ballast))
			// The kernel refuses the remount ("tmpfs: Too small a size for
			// current use") while its block count is momentarily past the
			// new size, as it was once right after a restart on a full
			// disk: a freed file's pages go back asynchronously. Retry.
			for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
				out, err := exec.Command("mount", "-o", "remount,size="+strconv.Itoa(size), dir).CombinedOutput()
				if err == nil {
					break
				}
				if time.Now().After(deadline) {
					var st syscall.Statfs_t
					syscall.Statfs(dir, &st)
					t.Fatalf("remount: %v %s (blocks %d, free %d, size %d)", err, out, st.Blocks, st.Bfree, st.Bsize)
				}
			}
			f.fault(name, fillFrom, time.Now().Add(2*time.Second))
			// Pulls go on while the disk is full.
			f.mu.Lock()
			pulls := 0
			for _, at := range f.pullOK {
				if at.After(fillFrom) {
					pulls++
				}
			}
			f.mu.Unlock()
			if pulls == 0 {
				t.Errorf("no pull succeeded while the disk was full")
			}
		}
	}
	f.run([]scheduled{
		{8 * time.Second, "SIGKILL and restart", f.killAndRestart},
		{16 * time.Second, "disk full", fill},
		{24 * time.Second, "disk space freed", empty("disk full")},
		{32 * time.Second, "SIGKILL and restart", f.killAndRestart},
		{38 * time.Second, "disk full", fill},
		{44 * time.Second, "SIGKILL while full, restart", f.killAndRestart},
		{48 * time.Second, "disk space freed", empty("disk full (with a crash)")},
	}, 8*time.Second)
	if len(f.full503) == 0 {
		t.Errorf("no push got 503 UNAVAILABLE saying the storage is full while it was")
	}
	t.Logf("503 UNAVAILABLE (storage full) answers: %d", len(f.full503))
}

// TestFaultsS3 runs the load on MinIO behind a proxy, kills the registry,
// stops MinIO for 10 s, and makes the network to it slow, then lossy.
func TestFaultsS3(t *testing.T) {
	m := startMinio(t)
	bucket, err := m.NewBucket("faults")
	must(t, err)
	proxy := startFaultProxy(t, m.Addr)
	storageYAML := fmt.Sprintf(`  s3:
    bucket: %s
    regionendpoint: http://%s
    forcepathstyle: true
    accesskey: %s
    secretkey: %s
    rootdirectory: /registry
    chunksize: 5242880
`, bucket, proxy.addr(), e2eMinioUser, e2eMinioPassword)
	srv := startRegistrydStorage(t, storageYAML)
	f := newFaultRun(t, srv, "s3")
	minioBin := minio.Find(toolsBin)
	var current *minio.Server = m.Server
	var stoppedAt time.Time
	stopMinio := func() {
		stoppedAt = time.Now()
		current.Stop()
	}
	startMinioAgain := func() {
		s, err := minio.Start(minio.Options{Bin: minioBin, Dir: m.Dir, User: e2eMinioUser, Password: e2eMinioPassword, Env: serverEnv(nil)})
		must(t, err)
		t.Cleanup(s.Stop)
		current = s
		proxy.setTarget(s.Addr)
		// Requests in flight retry for up to ~5 s, then pooled
		// connections to the dead server fail once more.
		f.fault("MinIO stopped", stoppedAt, time.Now().Add(15*time.Second))
	}
	var slowFrom, dropFrom time.Time
	f.run([]scheduled{
		{8 * time.Second, "SIGKILL and restart", f.killAndRestart},
		{16 * time.Second, "MinIO stopped", stopMinio},
		{26 * time.Second, "MinIO started", startMinioAgain},
		{36 * time.Second, "network to MinIO slow", func() { slowFrom = time.Now(); proxy.setMode(proxyDelay) }},
		{44 * time.Second, "network to MinIO lossy", func() {
			proxy.setMode(proxyDrop)
			dropFrom = time.Now()
			f.fault("network slow", slowFrom, dropFrom.Add(10*time.Second))
		}},
		{50 * time.Second, "SIGKILL and restart while lossy", f.killAndRestart},
		{54 * time.Second, "network to MinIO well", func() {
			proxy.setMode(proxyPass)
			f.fault("network lossy", dropFrom, time.Now().Add(15*time.Second))
		}},
	}, 16*time.Second)
	srv.Stop() // before the MinIO started last, which cleanups stop first
	t.Logf("proxy: %d connections refused, %d cut while carrying bytes", proxy.refused.Load(), proxy.cut.Load())
}
