package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	miniogo "github.com/minio/minio-go/v7"

	"github.com/registryd/registryd/internal/localsrv"
)

// TestGCStress: online garbage collection under load, on both kinds of
// shared store. Three registryd serve one MinIO bucket and two one
// directory, every one with the collector on (interval 3s, delay 3s);
// sixteen clients push, re-tag, delete and pull through random instances
// of their store; the instance holding the collector lease is killed with
// SIGKILL in the middle of a sweep, and restarted. Then:
//   - every image whose push got 201 and that was not deleted pulls byte
//     for byte through every instance;
//   - the clients saw no error but the documented retryable ones (404
//     BLOB_UNKNOWN on a HEAD, 400 MANIFEST_BLOB_UNKNOWN on a manifest
//     PUT, 503 with Retry-After), apart from requests cut by the kill;
//   - within two intervals plus the delay (and the time runs take) the
//     garbage is gone: the store holds exactly the blobs live images use.
//
// REGISTRYD_E2E_GCSTRESS=<duration> changes the load's length (default 45s).
func TestGCStress(t *testing.T) {
	load := 45 * time.Second
	if v := os.Getenv("REGISTRYD_E2E_GCSTRESS"); v != "" {
		d, err := time.ParseDuration(v)
		must(t, err)
		load = d
	}
	const interval, delay = 3 * time.Second, 3 * time.Second
	gcEnv := []string{
		"REGISTRY_STORAGE_MAINTENANCE_GC_ENABLED=true",
		"REGISTRY_STORAGE_MAINTENANCE_GC_INTERVAL=" + interval.String(),
		"REGISTRY_STORAGE_MAINTENANCE_GC_DELAY=" + delay.String(),
		"REGISTRY_STORAGE_MAINTENANCE_GC_STATEMAXAGE=500ms",
		"REGISTRY_STORAGE_MAINTENANCE_GC_CLOCKSKEW=1s",
		"REGISTRY_LOG_LEVEL=info",
	}
	m := startMinio(t)
	bucket, storageYAML := m.bucket(t)
	var s3group, fsgroup []*Server
	var debug []string // each instance's debug listener, for its metrics
	withDebug := func() []string {
		addr, err := localsrv.FreeAddr()
		must(t, err)
		debug = append(debug, addr)
		return append(slices.Clone(gcEnv), "REGISTRY_HTTP_DEBUG_ADDR="+addr, "REGISTRY_HTTP_DEBUG_PROMETHEUS_ENABLED=true")
	}
	for range 3 {
		s3group = append(s3group, startRegistrydStorage(t, storageYAML, withDebug()...))
	}
	root := t.TempDir()
	for range 2 {
		fsgroup = append(fsgroup, startRegistrydOn(t, root, withDebug()...))
	}
	groups := []*stressGroup{
		{name: "s3", servers: s3group, state: func() ([]byte, error) { return m.object(bucket, "registry/docker/registry/v2/_registryd/gc/state") },
			lease: func() ([]byte, error) { return m.object(bucket, "registry/docker/registry/v2/_registryd/gc/lease") },
			blobs: func() ([]string, error) { return m.blobDigests(bucket, "registry/docker/registry/v2/blobs/") }},
		{name: "fs", servers: fsgroup, state: func() ([]byte, error) {
			return os.ReadFile(filepath.Join(root, "docker/registry/v2/_registryd/gc/state"))
		},
			lease: func() ([]byte, error) {
				return os.ReadFile(filepath.Join(root, "docker/registry/v2/_registryd/gc/lease"))
			},
			blobs: func() ([]string, error) { return dirBlobDigests(filepath.Join(root, "docker/registry/v2/blobs")) }},
	}

	ctx, stop := context.WithTimeout(context.Background(), load)
	defer stop()
	var wg sync.WaitGroup
	var clients []*stressClient
	for i := range 16 {
		g := groups[0]
		if i%8 >= 5 { // 10 clients on the bucket, 6 on the directory
			g = groups[1]
		}
		c := &stressClient{id: i, g: g, rnd: rand.New(rand.NewSource(int64(i) + 1)), images: map[string]*stressImage{}, revs: map[string]*stressImage{}}
		clients = append(clients, c)
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.run(ctx)
		}()
	}
	// The kill: the holder of the bucket's collector lease, mid-sweep.
	killed := make(chan string, 1)
	go func() { killed <- groups[0].killMidSweep(ctx, t) }()
	wg.Wait()
	k := <-killed
	if k == "" {
		t.Errorf("no sweep was seen on the bucket during %s of load: the kill did not happen", load)
	} else {
		t.Logf("killed %s mid-sweep", k)
	}
	for _, g := range groups {
		for _, s := range g.servers {
			if !s.running() {
				s.Restart()
			}
		}
	}

	// Client-visible errors.
	var pushes, deletes, pulls, retried, refused int
	for _, c := range clients {
		pushes += c.pushes
		deletes += c.deletes
		pulls += c.pulls
		retried += c.retried
		refused += c.refused
		for _, e := range c.errs {
			t.Errorf("client %d (%s): %s", c.id, c.g.name, e)
		}
	}
	t.Logf("%d pushes, %d deletes, %d pulls; %d retryable answers, %d pushes given up", pushes, deletes, pulls, retried, refused)
	// What the protocol did in the instances (the killed one's count
	// restarted with it).
	proto := map[string]float64{}
	for _, addr := range debug {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, line := range strings.Split(string(b), "\n") {
			for _, name := range []string{"pins", "refused", "waits", "failed"} {
				if v, ok := strings.CutPrefix(line, "registryd_gc_protocol_"+name+"_total "); ok {
					f, _ := strconv.ParseFloat(v, 64)
					proto[name] += f
				}
			}
			if v, ok := strings.CutPrefix(line, "registryd_gc_resurrected_total "); ok {
				f, _ := strconv.ParseFloat(v, 64)
				proto["resurrected"] += f
			}
		}
	}
	t.Logf("protocol: %v pins, %v answered unknown, %v waits, %v refused with 503; %v condemned items kept",
		proto["pins"], proto["refused"], proto["waits"], proto["failed"], proto["resurrected"])
	if proto["pins"] == 0 {
		t.Errorf("no writer pinned anything: the load did not reach the protocol")
	}
	if pushes == 0 || deletes == 0 {
		t.Fatalf("the load did nothing: %d pushes, %d deletes", pushes, deletes)
	}

	// Every live image, through every instance.
	for _, c := range clients {
		for _, s := range c.g.servers {
			for tag, im := range c.images {
				if err := pullImage(s, c.repo(), tag, im); err != nil {
					t.Errorf("client %d: %s:%s through %s: %v", c.id, c.repo(), tag, s.Addr, err)
				}
			}
			for d, im := range c.revs {
				if err := pullImage(s, c.repo(), d, im); err != nil {
					t.Errorf("client %d: %s@%s through %s: %v", c.id, c.repo(), d, s.Addr, err)
				}
			}
		}
	}

	// The garbage goes: two intervals plus the delay once the load stopped,
	// plus what runs take on a loaded machine.
	for _, g := range groups {
		want := map[string]bool{}
		for _, c := range clients {
			if c.g != g {
				continue
			}
			for _, im := range c.revs {
				want[im.digest] = true
				for d := range im.blobs {
					want[d] = true
				}
			}
		}
		start := time.Now()
		deadline := start.Add(2*interval + delay + 60*time.Second)
		for {
			have, err := g.blobs()
			must(t, err)
			var extra, missing []string
			for _, d := range have {
				if !want[d] {
					extra = append(extra, d)
				}
			}
			for d := range want {
				if !slices.Contains(have, d) {
					missing = append(missing, d)
				}
			}
			if len(missing) > 0 {
				t.Fatalf("%s: live blobs missing from the store: %v", g.name, missing)
			}
			if len(extra) == 0 {
				t.Logf("%s: garbage gone %s after the load stopped (two intervals plus the delay: %s); %d live blobs",
					g.name, time.Since(start).Round(100*time.Millisecond), 2*interval+delay, len(have))
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d garbage blobs left %s after the load stopped, e.g. %v", g.name, len(extra), time.Since(start).Round(time.Second), extra[:min(5, len(extra))])
			}
			time.Sleep(time.Second)
		}
	}
}

type stressGroup struct {
	name    string
	servers []*Server
	state   func() ([]byte, error)
	lease   func() ([]byte, error)
	blobs   func() ([]string, error)

	mu   sync.Mutex
	down map[*Server]bool
}

// pick is a random instance of the group that is up.
func (g *stressGroup) pick(rnd *rand.Rand) *Server {
	g.mu.Lock()
	defer g.mu.Unlock()
	for {
		s := g.servers[rnd.Intn(len(g.servers))]
		if !g.down[s] {
			return s
		}
	}
}

func (g *stressGroup) isDown(s *Server) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.down[s]
}

// killMidSweep waits for the group's collector to be sweeping, kills the
// instance holding the lease with SIGKILL, and restarts it a few seconds
// later. It returns what it killed, "" if no sweep came.
func (g *stressGroup) killMidSweep(ctx context.Context, t *testing.T) string {
	for ctx.Err() == nil {
		time.Sleep(50 * time.Millisecond)
		b, err := g.state()
		if err != nil {
			continue
		}
		var st struct{ Phase, Pass string }
		if json.Unmarshal(b, &st) != nil || st.Phase != "sweeping" {
			continue
		}
		b, err = g.lease()
		if err != nil {
			continue
		}
		var l struct {
			PID      int  `json:"pid"`
			Released bool `json:"released"`
		}
		if json.Unmarshal(b, &l) != nil || l.Released {
			continue
		}
		for _, s := range g.servers {
			s.mu.Lock()
			pid := 0
			if s.cmd != nil && s.cmd.Process != nil {
				pid = s.cmd.Process.Pid
			}
			s.mu.Unlock()
			if pid != l.PID {
				continue
			}
			g.mu.Lock()
			if g.down == nil {
				g.down = map[*Server]bool{}
			}
			g.down[s] = true
			g.mu.Unlock()
			s.Kill()
			what := fmt.Sprintf("%s instance %s (pid %d) in the %s pass", g.name, s.Addr, pid, st.Pass)
			time.Sleep(5 * time.Second)
			s.Restart()
			g.mu.Lock()
			g.down[s] = false
			g.mu.Unlock()
			return what
		}
	}
	return ""
}

type stressImage struct {
	digest   string
	manifest []byte
	blobs    map[string][]byte
}

type stressClient struct {
	id      int
	g       *stressGroup
	rnd     *rand.Rand
	images  map[string]*stressImage // tag -> image, as the client last pushed it
	revs    map[string]*stressImage // every manifest pushed and not deleted, tagged or not: all live (deleteuntagged is off)
	deleted []*stressImage          // what it deleted, to push again some day
	seq     int

	pushes, deletes, pulls, retried, refused int
	errs                                     []string
}

func (c *stressClient) repo() string { return fmt.Sprintf("stress/c%02d", c.id) }

// errRetry is a documented, retryable answer.
var errRetry = errors.New("retryable")

// errKilled is a request cut by the kill of its instance.
var errKilled = errors.New("instance killed")

func (c *stressClient) run(ctx context.Context) {
	for ctx.Err() == nil {
		var err error
		switch x := c.rnd.Intn(20); {
		case x < 6 || len(c.images) == 0:
			err = c.push()
		case x < 9:
			// An image deleted earlier, pushed again: its blobs are
			// condemned, or being swept, or gone (the races of the
			// protocol).
			err = c.repush()
		case x < 11:
			err = c.retag()
		case x < 15:
			err = c.delete()
		default:
			err = c.pull()
		}
		if err != nil && !errors.Is(err, errKilled) {
			c.errs = append(c.errs, err.Error())
			if len(c.errs) > 20 {
				return
			}
		}
	}
}

// do sends one request to s; a transport error on an instance being
// killed is errKilled.
func (c *stressClient) do(s *Server, method, path string, header http.Header, body []byte) (*http.Response, []byte, error) {
	req, err := http.NewRequest(method, s.URL(path), bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		if c.g.isDown(s) || !s.running() {
			return nil, nil, errKilled
		}
		return nil, nil, fmt.Errorf("%s %s on %s: %v", method, path, s.Addr, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil && (c.g.isDown(s) || !s.running()) {
		return nil, nil, errKilled
	}
	if resp.StatusCode >= 500 && resp.StatusCode != http.StatusServiceUnavailable && (c.g.isDown(s) || !s.running()) {
		return nil, nil, errKilled
	}
	return resp, b, err
}

func errCode(b []byte) string {
	var body struct{ Errors []struct{ Code string } }
	if json.Unmarshal(b, &body) == nil && len(body.Errors) > 0 {
		return body.Errors[0].Code
	}
	return ""
}

// check sorts an answer: want is success; the documented retryable
// answers are errRetry (after Retry-After for a 503); anything else is a
// client-visible error.
func (c *stressClient) check(s *Server, what string, resp *http.Response, b []byte, want int) error {
	switch code := errCode(b); {
	case resp.StatusCode == want:
		return nil
	case resp.StatusCode == http.StatusServiceUnavailable && code == "UNAVAILABLE":
		c.retried++
		secs, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
		time.Sleep(time.Duration(max(secs, 1)) * time.Second / 4) // a quarter: the test's clock is short
		return errRetry
	case resp.StatusCode == http.StatusBadRequest && code == "MANIFEST_BLOB_UNKNOWN":
		c.retried++
		return errRetry
	default:
		return fmt.Errorf("%s on %s: %d %s", what, s.Addr, resp.StatusCode, truncate(string(b), 300))
	}
}

// blobPool is shared by all clients of a group: layers common to many
// images, so that deletes leave shared content condemned and pushes rely
// on it again.
func blobPool(i int) []byte { return []byte(fmt.Sprintf("shared layer %d\n", i%12)) }

func (c *stressClient) push() error {
	c.seq++
	cfg := []byte(fmt.Sprintf(`{"architecture":"amd64","os":"linux","client":%d,"seq":%d}`, c.id, c.seq))
	blobs := map[string][]byte{sha256Digest(cfg): cfg}
	layers := []descriptor{}
	for j := 0; j < 1+c.rnd.Intn(2); j++ {
		var l []byte
		if c.rnd.Intn(3) > 0 {
			l = blobPool(c.rnd.Intn(12))
		} else {
			l = []byte(fmt.Sprintf("own layer of client %d push %d part %d\n", c.id, c.seq, j))
		}
		d := sha256Digest(l)
		if _, ok := blobs[d]; ok {
			continue
		}
		blobs[d] = l
		layers = append(layers, descriptor{MediaType: mtOCILayerGzip, Digest: d, Size: int64(len(l))})
	}
	man, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": mtOCIManifest,
		"config": descriptor{MediaType: mtOCIConfig, Digest: sha256Digest(cfg), Size: int64(len(cfg))}, "layers": layers})
	return c.pushImage(&stressImage{digest: sha256Digest(man), manifest: man, blobs: blobs}, fmt.Sprintf("t%d", c.rnd.Intn(6)))
}

func (c *stressClient) repush() error {
	if len(c.deleted) == 0 {
		return c.push()
	}
	i := c.rnd.Intn(len(c.deleted))
	im := c.deleted[i]
	c.deleted = append(c.deleted[:i], c.deleted[i+1:]...)
	return c.pushImage(im, fmt.Sprintf("t%d", c.rnd.Intn(6)))
}

// pushImage pushes im under tag as a client does: blobs (HEAD first),
// then the manifest; a documented refusal makes it start again.
func (c *stressClient) pushImage(im *stressImage, tag string) error {
	blobs, man := im.blobs, im.manifest
	for attempt := 0; attempt < 8; attempt++ {
		// Blobs through one instance, the manifest maybe through another,
		// as a load balancer would spread them.
		s := c.g.pick(c.rnd)
		if err := c.pushBlobs(s, blobs); err != nil {
			if errors.Is(err, errRetry) {
				continue
			}
			return err
		}
		err := c.putManifest(tag, man)
		if errors.Is(err, errRetry) {
			continue
		}
		if err != nil {
			return err
		}
		c.pushes++
		c.images[tag] = im
		c.revs[im.digest] = im
		return nil
	}
	// Given up: as far as the client knows, nothing changed (a PUT the
	// kill cut was retried to an answer).
	c.refused++
	return nil
}

// putManifest PUTs a manifest; a request the kill of its instance cut is
// sent again to another one, so that the client always knows what it did.
func (c *stressClient) putManifest(ref string, man []byte) error {
	for {
		s := c.g.pick(c.rnd)
		resp, b, err := c.do(s, http.MethodPut, "/v2/"+c.repo()+"/manifests/"+ref, http.Header{"Content-Type": {mtOCIManifest}}, man)
		if errors.Is(err, errKilled) {
			continue
		}
		if err != nil {
			return err
		}
		return c.check(s, "PUT manifest", resp, b, http.StatusCreated)
	}
}

// pushBlobs is a client's blob phase: HEAD, then a mount from another
// client's repository (now and then), then a monolithic upload.
func (c *stressClient) pushBlobs(s *Server, blobs map[string][]byte) error {
	for d, b := range blobs {
		resp, body, err := c.do(s, http.MethodHead, "/v2/"+c.repo()+"/blobs/"+d, nil, nil)
		if err != nil {
			return err
		}
		if resp.StatusCode == http.StatusOK {
			continue
		}
		if resp.StatusCode != http.StatusNotFound {
			return c.check(s, "HEAD blob", resp, body, http.StatusOK)
		}
		path, send := "/v2/"+c.repo()+"/blobs/uploads/?digest="+url.QueryEscape(d), b
		if c.rnd.Intn(3) == 0 {
			path = fmt.Sprintf("/v2/%s/blobs/uploads/?mount=%s&from=stress/c%02d", c.repo(), url.QueryEscape(d), c.rnd.Intn(16))
			send = nil
		}
		resp, body, err = c.do(s, http.MethodPost, path, nil, send)
		if err != nil {
			return err
		}
		if resp.StatusCode == http.StatusAccepted {
			// Not mounted: an upload session; finish it in one PUT.
			loc, err := url.Parse(resp.Header.Get("Location"))
			if err != nil {
				return err
			}
			q := loc.Query()
			q.Set("digest", d)
			loc.RawQuery = q.Encode()
			resp, body, err = c.do(s, http.MethodPut, loc.RequestURI(), http.Header{"Content-Type": {"application/octet-stream"}}, b)
			if err != nil {
				return err
			}
		}
		if err := c.check(s, "upload", resp, body, http.StatusCreated); err != nil {
			return err
		}
	}
	return nil
}

func (c *stressClient) someTag() string {
	tags := make([]string, 0, len(c.images))
	for t := range c.images {
		tags = append(tags, t)
	}
	slices.Sort(tags)
	return tags[c.rnd.Intn(len(tags))]
}

// retag puts one of the client's images under another tag too.
func (c *stressClient) retag() error {
	if len(c.images) == 0 {
		return nil
	}
	im := c.images[c.someTag()]
	tag := fmt.Sprintf("t%d", c.rnd.Intn(6))
	for attempt := 0; attempt < 8; attempt++ {
		err := c.putManifest(tag, im.manifest)
		if errors.Is(err, errRetry) {
			continue
		}
		if err != nil {
			return err
		}
		c.images[tag] = im
		return nil
	}
	c.refused++
	return nil
}

// delete deletes one of the client's images by digest, with every tag on it.
func (c *stressClient) delete() error {
	if len(c.images) == 0 {
		return nil
	}
	// A tagged image, or an untagged revision left by a tag moved on.
	var im *stressImage
	if c.rnd.Intn(3) == 0 {
		ds := make([]string, 0, len(c.revs))
		for d := range c.revs {
			ds = append(ds, d)
		}
		slices.Sort(ds)
		im = c.revs[ds[c.rnd.Intn(len(ds))]]
	} else {
		im = c.images[c.someTag()]
	}
	retried := false
	for {
		s := c.g.pick(c.rnd)
		resp, b, err := c.do(s, http.MethodDelete, "/v2/"+c.repo()+"/manifests/"+im.digest, nil, nil)
		if errors.Is(err, errKilled) {
			retried = true
			continue
		}
		if err != nil {
			return err
		}
		if retried && resp.StatusCode == http.StatusNotFound {
			break // the cut request had deleted it
		}
		if err := c.check(s, "DELETE manifest", resp, b, http.StatusAccepted); err != nil {
			return err
		}
		break
	}
	c.deletes++
	delete(c.revs, im.digest)
	c.deleted = append(c.deleted, im)
	for t, x := range c.images {
		if x.digest == im.digest {
			delete(c.images, t)
		}
	}
	return nil
}

// pull pulls one of the client's images through a random instance.
func (c *stressClient) pull() error {
	if len(c.images) == 0 {
		return nil
	}
	tag := c.someTag()
	s := c.g.pick(c.rnd)
	err := pullImage(s, c.repo(), tag, c.images[tag])
	if err != nil && (c.g.isDown(s) || !s.running()) {
		return errKilled
	}
	c.pulls++
	return err
}

// pullImage pulls repo:tag through s and compares every byte with im.
func pullImage(s *Server, repo, tag string, im *stressImage) error {
	get := func(path string, accept []string) (*http.Response, []byte, error) {
		req, _ := http.NewRequest(http.MethodGet, s.URL(path), nil)
		req.Header["Accept"] = accept
		resp, err := httpClient.Do(req)
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp, b, err
	}
	resp, b, err := get("/v2/"+repo+"/manifests/"+tag, manifestAccept)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || !bytes.Equal(b, im.manifest) || resp.Header.Get("Docker-Content-Digest") != im.digest {
		return fmt.Errorf("manifest: %d %s", resp.StatusCode, truncate(string(b), 200))
	}
	for d, want := range im.blobs {
		resp, b, err := get("/v2/"+repo+"/blobs/"+d, nil)
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK || !bytes.Equal(b, want) {
			return fmt.Errorf("blob %s: %d %s", d, resp.StatusCode, truncate(string(b), 200))
		}
	}
	return nil
}

// object reads one key of bucket.
func (m *minioE2E) object(bucket, key string) ([]byte, error) {
	o, err := m.Client.GetObject(context.Background(), bucket, key, miniogo.GetObjectOptions{})
	if err != nil {
		return nil, err
	}
	defer o.Close()
	return io.ReadAll(o)
}

// blobDigests lists the digests of the blobs under prefix (…/blobs/).
func (m *minioE2E) blobDigests(bucket, prefix string) ([]string, error) {
	var out []string
	for oi := range m.Client.ListObjects(context.Background(), bucket, miniogo.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if oi.Err != nil {
			return nil, oi.Err
		}
		// sha256/xx/<hex>/data
		parts := strings.Split(strings.TrimPrefix(oi.Key, prefix), "/")
		if len(parts) == 4 && parts[3] == "data" {
			out = append(out, parts[0]+":"+parts[2])
		}
	}
	return out, nil
}

// dirBlobDigests lists the digests of the blobs under a filesystem
// store's blobs directory.
func dirBlobDigests(root string) ([]string, error) {
	var out []string
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		if fi.IsDir() || fi.Name() != "data" {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		parts := strings.Split(filepath.ToSlash(rel), "/")
		if len(parts) == 4 {
			out = append(out, parts[0]+":"+parts[2])
		}
		return nil
	})
	return out, err
}
