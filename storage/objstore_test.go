package storage

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/registryd/registryd/storage/driver"
	"github.com/registryd/registryd/storage/driver/inmemory"
)

// objStore is the in-memory driver dressed as an object store for the
// catalog index's tests: it lists trees and directories a page at a time
// and writes under conditions, with a version per PutContent, as S3 does
// with ETags. It counts its requests. Fast enough for random tests of
// thousands of steps; the same tests run on MinIO too.
type objStore struct {
	*inmemory.Driver
	mu       sync.Mutex // orders conditional writes with every PutContent
	versions map[string]string
	next     atomic.Int64
	// noConditions makes PutContentIf ignore its condition, as some
	// S3-compatible stores do.
	noConditions bool

	gets, puts, lists, trees, pages atomic.Int64
}

func newObjStore() *objStore {
	return &objStore{Driver: inmemory.New(), versions: map[string]string{}}
}

func (o *objStore) newVersion() string { return fmt.Sprintf("v%d", o.next.Add(1)) }

func (o *objStore) GetContent(ctx context.Context, p string) ([]byte, error) {
	o.gets.Add(1)
	return o.Driver.GetContent(ctx, p)
}

func (o *objStore) PutContent(ctx context.Context, p string, content []byte) error {
	o.puts.Add(1)
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.putLocked(ctx, p, content, nil)
}

// PutContentIf implements driver.ConditionalWriter (If-None-Match: * for
// ifVersion "", else If-Match).
func (o *objStore) PutContentIf(ctx context.Context, p string, content []byte, ifVersion string) (string, error) {
	o.puts.Add(1)
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.noConditions {
		fi, err := o.Driver.Stat(ctx, p)
		exists := err == nil && !fi.IsDir()
		switch {
		case ifVersion == "" && exists, ifVersion != "" && (!exists || o.versions[p] != ifVersion):
			return "", driver.ErrPreconditionFailed
		}
	}
	var v string
	err := o.putLocked(ctx, p, content, &v)
	return v, err
}

func (o *objStore) putLocked(ctx context.Context, p string, content []byte, version *string) error {
	if err := o.Driver.PutContent(ctx, p, content); err != nil {
		return err
	}
	v := o.newVersion()
	o.versions[p] = v
	if version != nil {
		*version = v
	}
	return nil
}

// GetContentVersion implements driver.ConditionalWriter.
func (o *objStore) GetContentVersion(ctx context.Context, p string) ([]byte, string, error) {
	o.gets.Add(1)
	o.mu.Lock()
	defer o.mu.Unlock()
	b, err := o.Driver.GetContent(ctx, p)
	if err != nil {
		return nil, "", err
	}
	return b, o.versions[p], nil
}

func (o *objStore) List(ctx context.Context, p string) ([]string, error) {
	o.lists.Add(1)
	return o.Driver.List(ctx, p)
}

// ListTree lists every file below p in path order (a walk: the emulation
// is not meant to be fast, only to answer as S3 does).
func (o *objStore) ListTree(ctx context.Context, p, after string, n int) ([]driver.Entry, bool, error) {
	o.trees.Add(1)
	var all []driver.Entry
	err := o.Driver.Walk(ctx, p, func(fi driver.FileInfo) error {
		if !fi.IsDir() && (after == "" || fi.Path() > after) {
			o.mu.Lock()
			v := o.versions[fi.Path()]
			o.mu.Unlock()
			all = append(all, driver.Entry{Path: fi.Path(), Size: fi.Size(), ModTime: fi.ModTime(), Version: v})
		}
		return nil
	})
	if errors.Is(err, driver.ErrPathNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	slices.SortFunc(all, func(a, b driver.Entry) int { return strings.Compare(a.Path, b.Path) })
	if len(all) > n {
		return all[:n], true, nil
	}
	return all, false, nil
}

func (o *objStore) ListPage(ctx context.Context, p, after string, n int) ([]driver.Entry, bool, error) {
	o.pages.Add(1)
	ps, err := o.Driver.List(ctx, p)
	if errors.Is(err, driver.ErrPathNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	var out []driver.Entry
	for _, c := range ps {
		name := c[strings.LastIndexByte(c, '/')+1:]
		if after != "" && name <= after {
			continue
		}
		if len(out) == n {
			return out, true, nil
		}
		fi, err := o.Driver.Stat(ctx, c)
		if err != nil {
			continue
		}
		out = append(out, driver.Entry{Path: c, Dir: fi.IsDir(), Size: fi.Size()})
	}
	return out, false, nil
}

func (o *objStore) Delete(ctx context.Context, p string) error {
	o.mu.Lock()
	for k := range o.versions {
		if k == p || strings.HasPrefix(k, p+"/") {
			delete(o.versions, k)
		}
	}
	o.mu.Unlock()
	return o.Driver.Delete(ctx, p)
}

// requests is the number of requests an object store would have served.
func (o *objStore) requests() int64 {
	return o.gets.Load() + o.puts.Load() + o.lists.Load() + o.trees.Load() + o.pages.Load()
}

var (
	_ driver.TreeLister        = (*objStore)(nil)
	_ driver.PageLister        = (*objStore)(nil)
	_ driver.ConditionalWriter = (*objStore)(nil)
)
