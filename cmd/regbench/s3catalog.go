package main

import (
	"context"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	miniogo "github.com/minio/minio-go/v7"
)

// The catalog rows of the s3 workload: the catalog fixture (catalogFixture,
// the same as on disk) uploaded once into a bucket that every server then
// lists (none of them changes what the references read; registryd adds its
// index under _registryd/, which it is made to build again on each of its
// turns), and optionally a bigger one for the page cost at scale.
type s3Catalog struct {
	s                 *s3Bench
	bucket, big       string // fixture buckets; big "" without -s3-repos-big
	repos, tags, bigN int
	cap               time.Duration // a walk taking longer is stopped, its server marked

	build, walk, first, mid, bigMid, tagWalk, tagOne *metric
}

// walkCap bounds one catalog or tags walk: a reference whose every page
// walks the whole bucket would take hours at 10,000 repositories.
const walkCap = 3 * time.Minute

func newS3Catalog(s *s3Bench, repos, tags, bigN int, work string) *s3Catalog {
	c := &s3Catalog{s: s, repos: repos, tags: tags, bigN: bigN, cap: walkCap}
	c.build = &metric{Name: fmt.Sprintf("catalog index build, %d repos (after a start without one)", repos), Unit: "s"}
	c.walk = &metric{Name: fmt.Sprintf("catalog walk n=100, %d repos", repos), Unit: "s", TargetRatio: 0.1}
	c.first = &metric{Name: "catalog first page n=100", Unit: "ms"}
	c.mid = &metric{Name: fmt.Sprintf("catalog page n=100 mid-walk, %d repos", repos), Unit: "ms"}
	c.tagWalk = &metric{Name: fmt.Sprintf("tags walk n=100, %d tags", tags), Unit: "s", TargetRatio: 0.1}
	c.tagOne = &metric{Name: "tags list whole, one call", Unit: "s"}
	fix := filepath.Join(work, "fixture-s3-catalog")
	t0 := time.Now()
	check(catalogFixture(fix, repos, tags))
	c.bucket = "regbench-catalog"
	check(s.mio.MakeBucket(c.bucket))
	n, err := s.mio.upload(c.bucket, "registry", fix)
	check(err)
	os.RemoveAll(fix)
	logf("s3 catalog fixture: %d repositories, %d tags, %d objects in %.0fs", repos, tags, n, time.Since(t0).Seconds())
	if bigN > 0 {
		c.bigMid = &metric{Name: fmt.Sprintf("catalog page n=100 mid-walk, %d repos", bigN), Unit: "ms"}
		fix := filepath.Join(work, "fixture-s3-catalog-big")
		t0 := time.Now()
		check(catalogFixture(fix, bigN, 0))
		c.big = "regbench-catalog-big"
		check(s.mio.MakeBucket(c.big))
		n, err := s.mio.upload(c.big, "registry", fix)
		check(err)
		os.RemoveAll(fix)
		logf("s3 catalog fixture: %d repositories, %d objects in %.0fs", bigN, n, time.Since(t0).Seconds())
	}
	return c
}

func (c *s3Catalog) metrics() []*metric {
	ms := []*metric{c.build, c.walk, c.first, c.mid}
	if c.bigMid != nil {
		ms = append(ms, c.bigMid)
	}
	return append(ms, c.tagWalk, c.tagOne)
}

// run lists the fixture through t.
func (c *s3Catalog) run(t target, rep int) {
	mine := t.Kind == kindRegistryd
	for _, bucket := range []string{c.bucket, c.big} {
		if bucket == "" {
			continue
		}
		if mine {
			// The index goes, so that the server builds it on this turn.
			check(c.s.mio.removePrefix(bucket, "registry/docker/registry/v2/_registryd/"))
		}
		p := s3Params{Endpoint: c.s.mio.Endpoint, Bucket: bucket, AccessKey: minioUser, SecretKey: minioPassword, RootDir: "/registry"}
		start := time.Now()
		srv, err := startServerWith(t, "", c.s.b.work, false, s3Storage(flavorOfTarget(t), p))
		if err != nil {
			c.s.fail(t, rep, nil, err)
			return
		}
		err = c.list(srv, t, bucket, start, mine, rep)
		srv.Stop()
		if err != nil {
			c.s.fail(t, rep, srv, err)
			return
		}
	}
}

func (c *s3Catalog) list(srv *server, t target, bucket string, start time.Time, mine bool, rep int) error {
	n := c.repos
	if bucket == c.big {
		n = c.bigN
	}
	if mine {
		// registryd builds its index in the background from its start;
		// the walks are timed once it is there (until then the layout
		// answers, at the references' pace).
		deadline := start.Add(30 * time.Minute)
		for !c.s.mio.exists(bucket, "registry/docker/registry/v2/_registryd/catalog/built") {
			if time.Now().After(deadline) {
				return fmt.Errorf("no catalog index after 30 minutes")
			}
			time.Sleep(20 * time.Millisecond)
		}
		if bucket == c.bucket {
			c.build.add(t.Name, time.Since(start).Seconds())
		}
	}
	mid := fmt.Sprintf("/v2/_catalog?n=100&last=%s", catalogRepo(n/2))
	if bucket == c.big {
		ms, err := pageCost(srv, mid, c.cap)
		if err != nil {
			return err
		}
		c.bigMid.add(t.Name, ms)
		logf("rep %d %-20s catalog page mid-walk at %d repos %.1f ms", rep+1, t.Name, n, ms)
		return nil
	}
	items, pages, el, err := walkCapped(srv, "/v2/_catalog?n=100", "repositories", c.cap)
	switch {
	case err == errCapped:
		c.walk.unlike(t.Name, fmt.Sprintf("stopped after %s (%d of %d repositories)", c.cap, items, n+1))
	case err != nil:
		return err
	default:
		c.walk.add(t.Name, el.Seconds())
		if items != n+1 {
			return fmt.Errorf("catalog walk returned %d repositories, want %d", items, n+1)
		}
		if pages == 1 && items > 100 {
			c.walk.unlike(t.Name, "answers the walk in one page, ignoring n")
		}
	}
	_, _, first, err := walk1(srv, "/v2/_catalog?n=100", "repositories")
	if err != nil {
		return err
	}
	c.first.add(t.Name, first.Seconds()*1000)
	ms, err := pageCost(srv, mid, c.cap)
	if err != nil {
		return err
	}
	c.mid.add(t.Name, ms)
	titems, tpages, tel, err := walkCapped(srv, "/v2/tags/many/tags/list?n=100", "tags", c.cap)
	switch {
	case err == errCapped:
		c.tagWalk.unlike(t.Name, fmt.Sprintf("stopped after %s", c.cap))
	case err != nil:
		return err
	default:
		c.tagWalk.add(t.Name, tel.Seconds())
		if titems != c.tags {
			return fmt.Errorf("tags walk returned %d tags, want %d", titems, c.tags)
		}
		if tpages == 1 && titems > 100 {
			c.tagWalk.unlike(t.Name, "answers the walk in one page, ignoring n")
		}
	}
	_, _, tel1, err := walk1(srv, "/v2/tags/many/tags/list", "tags")
	if err != nil {
		return err
	}
	c.tagOne.add(t.Name, tel1.Seconds())
	logf("rep %d %-20s s3 catalog walk %.2fs (%d pages), first page %.1f ms, mid page %.1f ms; tags walk %.2fs, whole %.3fs",
		rep+1, t.Name, el.Seconds(), pages, first.Seconds()*1000, ms, tel.Seconds(), tel1.Seconds())
	return nil
}

var errCapped = fmt.Errorf("walk stopped at its time limit")

// walkCapped is walk, stopped (errCapped) once it has taken longer than
// limit.
func walkCapped(s *server, path, field string, limit time.Duration) (items, pages int, el time.Duration, err error) {
	next := s.URL(path)
	start := time.Now()
	for next != "" {
		if time.Since(start) > limit {
			return items, pages, time.Since(start), errCapped
		}
		req, _ := http.NewRequest("GET", next, nil)
		resp, err := do(req, http.StatusOK)
		if err != nil {
			return items, pages, 0, err
		}
		n, err := readList(resp, field)
		if err != nil {
			return items, pages, 0, err
		}
		items += n
		pages++
		next = nextLink(s.URL(""), resp.Header.Get("Link"))
	}
	return items, pages, time.Since(start), nil
}

// pageCost is the median time of five GETs of one page, in ms.
func pageCost(s *server, path string, limit time.Duration) (float64, error) {
	var ts []float64
	for range 5 {
		_, _, el, err := walk1(s, path, "repositories")
		if err != nil {
			return 0, err
		}
		ts = append(ts, el.Seconds()*1000)
		if el > limit {
			break
		}
	}
	sort.Float64s(ts)
	return ts[len(ts)/2], nil
}

// upload puts every file below dir into bucket under prefix, 32 at a
// time, and returns how many.
func (m *minioServer) upload(bucket, prefix, dir string) (int, error) {
	var files []string
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		return 0, err
	}
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for _, f := range files {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			b, err := os.ReadFile(f)
			if err == nil {
				rel, _ := filepath.Rel(dir, f)
				key := prefix + "/" + filepath.ToSlash(rel)
				_, err = m.Client.PutObject(context.Background(), bucket, key, strings.NewReader(string(b)), int64(len(b)), miniogo.PutObjectOptions{})
			}
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return len(files), firstErr
}

// removePrefix removes every object below prefix.
func (m *minioServer) removePrefix(bucket, prefix string) error {
	ctx := context.Background()
	objs := m.Client.ListObjects(ctx, bucket, miniogo.ListObjectsOptions{Prefix: prefix, Recursive: true})
	for e := range m.Client.RemoveObjects(ctx, bucket, objs, miniogo.RemoveObjectsOptions{}) {
		if e.Err != nil {
			return e.Err
		}
	}
	return nil
}

func (m *minioServer) exists(bucket, key string) bool {
	_, err := m.Client.StatObject(context.Background(), bucket, key, miniogo.StatObjectOptions{})
	return err == nil
}
