package s3

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/registryd/registryd/storage/driver"
)

// A directory whose names trip S3's key order: "v1" as a directory comes
// after "v1-rc/" and "v1.0/" in S3, before them in List. Every page size
// from every starting name gives List's order; so does a random tree.
func TestListPageOrder(t *testing.T) {
	ctx := context.Background()
	d := newTestDriver(t, nil)
	names := map[string]bool{ // name -> a directory
		"v1": true, "v1-rc": true, "v1-rc-2": false, "v1.0": true, "v1.0.1": true, "v10": true,
		"v1-": true, "v": false, "a": false, "a-b": false, "a.b": true, "b": true, "b-": false,
		"x-y-z": true, "x-y": true, "x": true, "x.y": false,
	}
	put := func(name string, dir bool) {
		p := "/tags/" + name
		if dir {
			p += "/current/link"
		}
		mustPutS3(t, d, p, []byte(name))
	}
	for n, dir := range names {
		put(n, dir)
	}
	// (No object and directory of one name: MinIO lists the object and
	// hides what is below it.)
	// a segmented object: its chain's size
	appendPiece(t, d, "/tags/seg", randomBytes(MinChunkSize), 0)
	appendPiece(t, d, "/tags/seg", []byte("tail"), MinChunkSize)
	names["seg"] = false
	checkPages(t, d, "/tags", names)
	e, _, err := d.ListPage(ctx, "/tags", "s", 1)
	if err != nil || len(e) != 1 || e[0].Path != "/tags/seg" || e[0].Size != MinChunkSize+4 || e[0].Dir {
		t.Fatalf("segmented object: %+v %v", e, err)
	}

	// random trees over a tricky alphabet
	for round := range 3 {
		r := rand.New(rand.NewPCG(uint64(round), 7))
		dir := fmt.Sprintf("/rand%d", round)
		want := map[string]bool{}
		var wg sync.WaitGroup
		var mu sync.Mutex
		sem := make(chan struct{}, 16)
		for range 60 {
			var b strings.Builder
			b.WriteByte("abc"[r.IntN(3)])
			for k := r.IntN(4); k > 0; k-- {
				b.WriteByte("ab-.c"[r.IntN(5)])
			}
			name, isDir := b.String(), r.IntN(2) == 0
			if _, ok := want[name]; ok {
				continue // one kind per name (see above)
			}
			mu.Lock()
			want[name] = isDir
			mu.Unlock()
			wg.Go(func() {
				sem <- struct{}{}
				defer func() { <-sem }()
				p := dir + "/" + name
				if isDir {
					p += "/x"
				}
				mustPutS3(t, d, p, nil)
			})
		}
		wg.Wait()
		checkPages(t, d, dir, want)
	}
	// a directory that is not there: an empty page
	if e, more, err := d.ListPage(ctx, "/nothing", "", 10); err != nil || len(e) != 0 || more {
		t.Fatalf("missing directory: %v %v %v", e, more, err)
	}
}

func mustPutS3(t *testing.T, d *Driver, p string, b []byte) {
	t.Helper()
	if err := d.PutContent(context.Background(), p, b); err != nil {
		t.Fatal(err)
	}
}

// checkPages pages through dir with every page size and from every name
// and from between names, against List and the expected names.
func checkPages(t *testing.T, d *Driver, dir string, names map[string]bool) {
	t.Helper()
	ctx := context.Background()
	var want []string
	for n := range names {
		want = append(want, n)
	}
	sort.Strings(want)
	list, err := d.List(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, p := range list {
		listed = append(listed, strings.TrimPrefix(p, dir+"/"))
	}
	if !slices.Equal(listed, want) {
		t.Fatalf("List(%s) = %v, want %v", dir, listed, want)
	}
	for _, size := range []int{1, 2, 3, 5, len(want) + 1} {
		var got []string
		after := ""
		for pages := 0; ; pages++ {
			es, more, err := d.ListPage(ctx, dir, after, size)
			if err != nil {
				t.Fatal(err)
			}
			if len(es) > size || (more && len(es) < size) {
				t.Fatalf("page of %d after %q: %d entries, more %v", size, after, len(es), more)
			}
			for _, e := range es {
				name := strings.TrimPrefix(e.Path, dir+"/")
				if e.Dir != names[name] {
					t.Fatalf("%s: Dir %v, want %v", name, e.Dir, names[name])
				}
				got = append(got, name)
			}
			if !more {
				break
			}
			after = strings.TrimPrefix(es[len(es)-1].Path, dir+"/")
		}
		if !slices.Equal(got, want) {
			t.Fatalf("pages of %d: %v, want %v", size, got, want)
		}
	}
	// from any starting point, including names that are not there
	starts := append([]string{"", "0", "zzz"}, want...)
	for _, w := range want {
		starts = append(starts, w+"-", w+".", w+"0", w[:len(w)-1])
	}
	for _, after := range starts {
		es, _, err := d.ListPage(ctx, dir, after, 3)
		if err != nil {
			t.Fatal(err)
		}
		var exp []string
		for _, w := range want {
			if after == "" || w > after {
				exp = append(exp, w)
			}
		}
		exp = exp[:min(3, len(exp))]
		var got []string
		for _, e := range es {
			got = append(got, strings.TrimPrefix(e.Path, dir+"/"))
		}
		if !slices.Equal(got, exp) {
			t.Fatalf("page after %q: %v, want %v", after, got, exp)
		}
	}
}

// ListTree lists every object of a tree in byte order of their paths,
// from anywhere, a page at a time, with sizes and versions.
func TestListTree(t *testing.T) {
	ctx := context.Background()
	d := newTestDriver(t, nil)
	var want []string
	for i := range 40 {
		p := fmt.Sprintf("/idx/%c/%c%d", "ab-"[i%3], "xy"[i%2], i)
		if i%7 == 0 {
			p = fmt.Sprintf("/idx/%c%d", "ab"[i%2], i)
		}
		mustPutS3(t, d, p, []byte(p))
		want = append(want, p)
	}
	mustPutS3(t, d, "/other/x", nil)
	appendPiece(t, d, "/idx/seg", randomBytes(MinChunkSize), 0)
	appendPiece(t, d, "/idx/seg", []byte("tail"), MinChunkSize)
	want = append(want, "/idx/seg")
	sort.Strings(want)
	for _, size := range []int{1, 4, 100} {
		var got []string
		after := ""
		for {
			es, more, err := d.ListTree(ctx, "/idx", after, size)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range es {
				got = append(got, e.Path)
				if e.Dir {
					t.Fatalf("%s listed as a directory", e.Path)
				}
				if e.Path == "/idx/seg" {
					if e.Size != MinChunkSize+4 || e.Version != "" {
						t.Fatalf("segmented: %+v", e)
					}
				} else if e.Size != int64(len(e.Path)) || e.Version == "" {
					t.Fatalf("%+v", e)
				}
			}
			if !more {
				break
			}
			after = es[len(es)-1].Path
		}
		if !slices.Equal(got, want) {
			t.Fatalf("pages of %d:\n%v\nwant\n%v", size, got, want)
		}
	}
	// starting between paths
	es, _, err := d.ListTree(ctx, "/idx", "/idx/a/x", 2)
	if err != nil || len(es) != 2 || es[0].Path <= "/idx/a/x" {
		t.Fatalf("after /idx/a/x: %v %v", es, err)
	}
	es, more, err := d.ListTree(ctx, "/missing", "", 5)
	if err != nil || len(es) != 0 || more {
		t.Fatalf("missing tree: %v %v %v", es, more, err)
	}
}

// The index of repository names (storage/catalogindex.go) compares the
// versions a listing shows with those conditional writes return and
// conditional reads give: they are one and the same (the ETag).
func TestListingVersionIsConditionalVersion(t *testing.T) {
	ctx := context.Background()
	d := newTestDriver(t, nil)
	v1, err := d.PutContentIf(ctx, "/v/a", []byte("one"), "")
	if err != nil || v1 == "" {
		t.Fatalf("create: %q %v", v1, err)
	}
	listed := func() string {
		t.Helper()
		es, _, err := d.ListTree(ctx, "/v", "", 10)
		if err != nil || len(es) != 1 {
			t.Fatalf("list: %v %v", es, err)
		}
		return es[0].Version
	}
	if got := listed(); got != v1 {
		t.Fatalf("listing shows version %q, the write returned %q", got, v1)
	}
	if b, v, err := d.GetContentVersion(ctx, "/v/a"); err != nil || v != v1 || string(b) != "one" {
		t.Fatalf("GetContentVersion: %q %q %v, want %q", b, v, err, v1)
	}
	v2, err := d.PutContentIf(ctx, "/v/a", []byte("two"), v1)
	if err != nil || v2 == v1 {
		t.Fatalf("replace: %q %v", v2, err)
	}
	if got := listed(); got != v2 {
		t.Fatalf("listing shows version %q after the replace, want %q", got, v2)
	}
	if _, err := d.PutContentIf(ctx, "/v/a", []byte("three"), v1); !errors.Is(err, driver.ErrPreconditionFailed) {
		t.Fatalf("write under the old version: %v", err)
	}
	if got := mustGetS3(t, d, "/v/a"); got != "two" {
		t.Fatalf("content %q after a refused write", got)
	}
}

func mustGetS3(t *testing.T, d *Driver, p string) string {
	t.Helper()
	b, err := d.GetContent(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
