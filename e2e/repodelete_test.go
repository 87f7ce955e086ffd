package e2e

import (
	"fmt"
	"math/rand"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// httpImage is an image pushed over HTTP: its manifest and every blob.
type httpImage struct {
	repo, tag string
	digest    string
	manifest  []byte
	blobs     map[string][]byte
}

// pushImageHTTP pushes a config and the layers, then the manifest as tag.
func pushImageHTTP(t *testing.T, s *Server, repo, tag string, layers ...[]byte) httpImage {
	t.Helper()
	img := httpImage{repo: repo, tag: tag, blobs: map[string][]byte{}}
	cfg := []byte(fmt.Sprintf(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers"},"tag":%q}`, repo+":"+tag))
	cd := pushBlobHTTP(t, s, repo, cfg)
	img.blobs[cd] = cfg
	var ls []string
	for _, l := range layers {
		d := pushBlobHTTP(t, s, repo, l)
		img.blobs[d] = l
		ls = append(ls, fmt.Sprintf(`{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":%d}`, d, len(l)))
	}
	img.manifest = []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},"layers":[%s]}`,
		cd, len(cfg), strings.Join(ls, ",")))
	img.digest = sha256Digest(img.manifest)
	r := doHTTP(t, http.MethodPut, s.URL("/v2/"+repo+"/manifests/"+tag), http.Header{"Content-Type": {mtOCIManifest}}, img.manifest)
	if r.Status != http.StatusCreated {
		t.Fatalf("push %s:%s: %s", repo, tag, r)
	}
	return img
}

// pullsIdentical checks that the image pulls byte for byte.
func pullsIdentical(t *testing.T, s *Server, img httpImage) {
	t.Helper()
	checkManifest(t, s, img.repo, img.tag, img.digest, mtOCIManifest)
	for d, b := range img.blobs {
		checkBlob(t, s, img.repo, d, b)
	}
}

func catalogNames(t *testing.T, s *Server) []string {
	t.Helper()
	var c struct {
		Repositories []string `json:"repositories"`
	}
	getJSON(t, s, "/v2/_catalog", &c)
	return c.Repositories
}

// deleteRepo sends the admin API's DELETE and returns its status.
func deleteRepo(s *Server, name string) (int, error) {
	req, err := http.NewRequest(http.MethodDelete, s.URL("/v2/_registryd/v1/repositories/"+name), nil)
	if err != nil {
		return 0, err
	}
	resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// A repository delete killed (kill -9) at random points: after a restart
// the repository is gone from the catalog and tags/list, nothing of its
// own is left on disk, the name takes a fresh push that starts clean, and
// the repositories sharing its layers pull byte-identical, before and
// after a collection.
func TestRepositoryDeleteKill9(t *testing.T) {
	seed := time.Now().UnixNano()
	if s := os.Getenv("REGISTRYD_E2E_SEED"); s != "" {
		seed, _ = strconv.ParseInt(s, 10, 64)
	}
	t.Logf("seed %d (REGISTRYD_E2E_SEED to repeat)", seed)
	rng := rand.New(rand.NewSource(seed))
	root := t.TempDir()
	s := startRegistrydOn(t, root)

	shared := []byte(strings.Repeat("a layer every repository has\n", 2000))
	keepA := pushImageHTTP(t, s, "keep/a", "v1", shared, []byte("only in keep/a"))
	keepB := pushImageHTTP(t, s, "keep/b", "v1", shared, []byte("only in keep/b"))

	iterations := 5
	if testing.Short() {
		iterations = 2
	}
	for it := range iterations {
		// The victim: tags on shared and own layers, a second repository
		// nested below it that must survive.
		var victim []httpImage
		for i := range 20 {
			victim = append(victim, pushImageHTTP(t, s, "victim", fmt.Sprintf("t%d-%d", it, i), shared, []byte(fmt.Sprintf("victim layer %d %d", it, i))))
		}
		nested := pushImageHTTP(t, s, "victim/nested", fmt.Sprintf("n%d", it), shared)
		// Pulls noted, so that the flush may race the delete too.
		getManifest(t, s, "victim", victim[0].tag)

		done := make(chan int, 1)
		go func() {
			code, _ := deleteRepo(s, "victim")
			done <- code
		}()
		// The delete waits Rmax (2 s) twice; kill anywhere in it, or
		// before it starts, or not at all.
		wait := time.Duration(rng.Int63n(int64(5 * time.Second)))
		select {
		case code := <-done:
			t.Logf("iteration %d: the delete finished (%d) before the kill at %v", it, code, wait)
		case <-time.After(wait):
			t.Logf("iteration %d: kill -9 at %v", it, wait)
		}
		s.Kill()
		s.Restart()
		// The restart (its pid is gone) finishes an interrupted delete;
		// a delete now joins it, or deletes what was never touched.
		code, err := deleteRepo(s, "victim")
		if err != nil || (code != http.StatusAccepted && code != http.StatusNotFound) {
			t.Fatalf("iteration %d: delete after restart: %d %v", it, code, err)
		}
		if code2, _ := deleteRepo(s, "victim"); code2 != http.StatusNotFound {
			t.Fatalf("iteration %d: second delete: %d", it, code2)
		}

		if got := catalogNames(t, s); !slices.Equal(got, []string{"keep/a", "keep/b", "victim/nested"}) {
			t.Fatalf("iteration %d: catalog %v", it, got)
		}
		if r := doHTTP(t, http.MethodGet, s.URL("/v2/victim/tags/list"), nil, nil); r.Status != http.StatusNotFound || !strings.Contains(string(r.Body), "NAME_UNKNOWN") {
			t.Fatalf("iteration %d: tags/list: %s", it, r)
		}
		own, _ := os.ReadDir(filepath.Join(root, "docker/registry/v2/repositories/victim"))
		for _, e := range own {
			if strings.HasPrefix(e.Name(), "_") {
				t.Fatalf("iteration %d: %s left in the deleted repository", it, e.Name())
			}
		}
		if tombs, _ := os.ReadDir(filepath.Join(root, "docker/registry/v2/_registryd/tombstones")); len(tombs) != 0 {
			t.Fatalf("iteration %d: tombstones left: %v", it, tombs)
		}
		pullsIdentical(t, s, keepA)
		pullsIdentical(t, s, keepB)
		pullsIdentical(t, s, nested)
		// The old content is unknown to the name, though the blobs are
		// still stored (keep/a has the shared one).
		if r := getBlob(t, s, "victim", sha256Digest(shared)); r.Status != http.StatusNotFound {
			t.Fatalf("iteration %d: a layer link survived: %s", it, r)
		}
		if r := getManifest(t, s, "victim", victim[0].digest); r.Status != http.StatusNotFound {
			t.Fatalf("iteration %d: a revision survived: %s", it, r)
		}
	}

	// A fresh push to the name starts clean: one tag, no old pull time.
	fresh := pushImageHTTP(t, s, "victim", "fresh", shared)
	if tags := tagsOf(t, s, "victim"); !slices.Equal(tags, []string{"fresh"}) {
		t.Fatalf("tags after a fresh push %v", tags)
	}
	var tl struct {
		Tags []struct {
			Name       string `json:"name"`
			LastPulled string `json:"lastPulled"`
		} `json:"tags"`
	}
	getJSON(t, s, "/v2/_registryd/v1/repositories/victim/tags", &tl)
	if len(tl.Tags) != 1 || tl.Tags[0].LastPulled != "" {
		t.Fatalf("fresh repository's tags %+v", tl)
	}

	// A collection reclaims the deleted repositories' own layers; the
	// others pull byte-identical.
	s.Stop()
	out := runCmd(t, serverEnv(nil), 2*time.Minute, registrydBin, "garbage-collect", s.Config)
	t.Logf("garbage-collect:\n%s", out.Stdout)
	s.Restart()
	pullsIdentical(t, s, keepA)
	pullsIdentical(t, s, keepB)
	pullsIdentical(t, s, fresh)
	var stored int
	_ = filepath.WalkDir(filepath.Join(root, "docker/registry/v2/blobs"), func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Name() == "data" {
			stored++
		}
		return nil
	})
	// keep/a: config, 2 layers, manifest; keep/b: config, own layer,
	// manifest; fresh: config, manifest; the nested repositories: a config
	// and a manifest each.
	if want := 4 + 3 + 2 + 2*iterations; stored != want {
		t.Errorf("%d blobs stored after the collection, want %d", stored, want)
	}
}
