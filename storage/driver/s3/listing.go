package s3

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/minio/minio-go/v7"

	"github.com/registryd/registryd/storage/driver"
)

// listBatch is the most keys S3 returns per listing request.
const listBatch = 1000

// ListTree implements driver.TreeLister with ListObjectsV2 from the key
// after `after` (StartAfter), without a delimiter: a page costs one
// request per thousand entries, wherever it starts. Hidden keys (segments)
// are skipped; a segmented object is described by its chain.
func (d *Driver) ListTree(ctx context.Context, p, after string, n int) ([]driver.Entry, bool, error) {
	if err := checkPath(p); err != nil {
		return nil, false, err
	}
	if after != "" && !driver.ValidPath(after) {
		return nil, false, invalid(after)
	}
	if n <= 0 {
		return nil, false, nil
	}
	prefix := d.dirPrefix(p)
	start := ""
	if after != "" && after != "/" {
		if start = d.key(after); start < prefix {
			start = ""
		}
	}
	var out []driver.Entry
	var segmented []int // indexes in out of objects with hidden keys
	token := ""
	for {
		res, err := d.core.ListObjectsV2(d.bucket, prefix, start, token, "", min(listBatch, n+1-len(out)+8))
		if err != nil {
			return nil, false, wrap("list", p, err)
		}
		for _, oi := range res.Contents {
			rest := strings.TrimPrefix(oi.Key, prefix)
			if i := strings.Index(rest, hiddenSep); i >= 0 {
				// Hidden keys of an object sort right after its own key
				// ('!' is below every path character).
				if k := len(out) - 1; k >= 0 && out[k].Path == childPrefix(p)+rest[:i] &&
					(len(segmented) == 0 || segmented[len(segmented)-1] != k) {
					segmented = append(segmented, k)
				}
				continue
			}
			if rest == "" || strings.HasSuffix(rest, "/") || !driver.ValidPath("/"+rest) {
				continue // a directory marker, foreign junk
			}
			if len(out) == n {
				return d.describeSegmented(ctx, out, segmented, true)
			}
			out = append(out, driver.Entry{Path: childPrefix(p) + rest, Size: oi.Size, ModTime: oi.LastModified, Version: strings.Trim(oi.ETag, `"`)})
		}
		if !res.IsTruncated {
			return d.describeSegmented(ctx, out, segmented, false)
		}
		token = res.NextContinuationToken
	}
}

// describeSegmented replaces the size and time of the segmented objects
// es[i] for i in which (their base's, in a listing) with their chain's,
// and leaves them without a version (appends do not change the base's).
// Rare: only uploads are segmented. An object removed meanwhile leaves.
func (d *Driver) describeSegmented(ctx context.Context, es []driver.Entry, which []int, more bool) ([]driver.Entry, bool, error) {
	if len(which) == 0 {
		return es, more, nil
	}
	gone := map[int]bool{}
	for _, i := range which {
		fi, err := d.Stat(ctx, es[i].Path)
		switch {
		case errors.Is(err, driver.ErrPathNotFound):
			gone[i] = true
			continue
		case err != nil:
			return nil, false, err
		}
		es[i].Size, es[i].ModTime, es[i].Version = fi.Size(), fi.ModTime(), ""
	}
	if len(gone) == 0 {
		return es, more, nil
	}
	out := es[:0]
	for i, e := range es {
		if !gone[i] {
			out = append(out, e)
		}
	}
	return out, more, nil
}

// ListPage implements driver.PageLister with ListObjectsV2 and the "/"
// delimiter from the key after `after`: one request per page (of up to a
// thousand entries) wherever the page starts.
//
// S3 orders keys byte by byte, where a directory "v1" is the key prefix
// "v1/" and so comes after "v1-rc/" and "v1.0/" ('-' and '.' sort before
// '/'), while List orders names, "v1" first. So a name is held back until
// the listing has passed every key that could still come before it (see
// settled).
func (d *Driver) ListPage(ctx context.Context, p, after string, n int) ([]driver.Entry, bool, error) {
	if err := checkPath(p); err != nil {
		return nil, false, err
	}
	if n <= 0 {
		return nil, false, nil
	}
	prefix := d.dirPrefix(p)
	start := ""
	if after != "" {
		// Every child named after `after` has a key above prefix+after (a
		// longer name, or a greater byte at the first difference); some
		// named before it may too, and are dropped below.
		start = prefix + after
	}
	byName := map[string]*driver.Entry{}
	segs := map[string]bool{} // names with hidden keys (segmented objects)
	var pending []string      // names seen, not yet given out
	var out []driver.Entry
	token := ""
	for {
		res, err := d.core.ListObjectsV2(d.bucket, prefix, start, token, "/", min(listBatch, n+1-len(out)+8))
		if err != nil {
			return nil, false, wrap("list", p, err)
		}
		horizon := ""
		add := func(name string, dir bool, oi minio.ObjectInfo) {
			if name == "" || (after != "" && name <= after) {
				return
			}
			if e, ok := byName[name]; ok {
				e.Dir = e.Dir || dir
				return
			}
			e := &driver.Entry{Path: childPrefix(p) + name, Dir: dir}
			if !dir {
				e.Size, e.ModTime, e.Version = oi.Size, oi.LastModified, strings.Trim(oi.ETag, `"`)
			}
			byName[name] = e
			pending = append(pending, name)
		}
		for _, oi := range res.Contents {
			horizon = max(horizon, oi.Key)
			if rest := strings.TrimPrefix(oi.Key, prefix); !strings.Contains(rest, hiddenSep) {
				add(rest, false, oi)
			}
		}
		for _, cp := range res.CommonPrefixes {
			horizon = max(horizon, cp.Prefix)
			rest := strings.TrimSuffix(strings.TrimPrefix(cp.Prefix, prefix), "/")
			if i := strings.Index(rest, hiddenSep); i >= 0 {
				segs[rest[:i]] = true // the segments of an object
				continue
			}
			add(rest, true, minio.ObjectInfo{})
		}
		done := !res.IsTruncated
		slices.Sort(pending)
		k := 0
		for ; k < len(pending); k++ {
			name := pending[k]
			if !done && !settled(name, prefix, horizon) {
				break
			}
			e := byName[name]
			if !e.Dir && segs[name] {
				fi, err := d.Stat(ctx, e.Path)
				if err != nil && !errors.Is(err, driver.ErrPathNotFound) {
					return nil, false, err
				}
				if err == nil {
					e.Size, e.ModTime, e.Version = fi.Size(), fi.ModTime(), ""
				}
			}
			out = append(out, *e)
			delete(byName, name)
		}
		pending = pending[k:]
		if len(out) > n {
			return out[:n], true, nil
		}
		if done {
			return out, false, nil
		}
		token = res.NextContinuationToken
	}
}

// settled reports whether no key still to come in a listing that has
// reached horizon can change what is known of the child name: neither a
// directory of the same name ("name/") nor hidden keys of an object of
// that name ("name!seg/", between "name" and "name/"), nor a child named
// before it (the only such children are directories named by a prefix of
// name that ends just before a '-' or a '.', whose keys, "v1/" for
// "v1-rc", sort after name's).
func settled(name, prefix, horizon string) bool {
	if prefix+name+"/" > horizon {
		return false
	}
	for i := 1; i < len(name); i++ {
		if c := name[i]; (c == '-' || c == '.') && prefix+name[:i]+"/" > horizon {
			return false
		}
	}
	return true
}

var (
	_ driver.PageLister        = (*Driver)(nil)
	_ driver.TreeLister        = (*Driver)(nil)
	_ driver.ConditionalWriter = (*Driver)(nil)
)
