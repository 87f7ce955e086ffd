package storage

import (
	"container/list"
	"sync"

	"github.com/opencontainers/go-digest"
)

// contentCache is a byte-bounded LRU of immutable content by digest. It is
// only an accelerator: a miss reads the driver, and callers check the links
// that make content visible before using what it returns.
type contentCache struct {
	mu    sync.Mutex
	max   int64
	size  int64
	ll    *list.List
	items map[digest.Digest]*list.Element
}

type cacheEntry struct {
	d digest.Digest
	b []byte
	// What GetManifest reads from b, once it has parsed it (parsed set).
	parsed    bool
	mediaType string
	subject   digest.Digest
}

func newContentCache(maxBytes int64) *contentCache {
	if maxBytes < 0 {
		return nil
	}
	return &contentCache{max: maxBytes, ll: list.New(), items: make(map[digest.Digest]*list.Element)}
}

func (c *contentCache) get(d digest.Digest) ([]byte, bool) {
	if c == nil {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[d]; ok {
		c.ll.MoveToFront(e)
		return e.Value.(*cacheEntry).b, true
	}
	return nil, false
}

func (c *contentCache) add(d digest.Digest, b []byte) {
	if c == nil || int64(len(b)) > c.max/8 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.items[d]; ok {
		return
	}
	c.items[d] = c.ll.PushFront(&cacheEntry{d: d, b: b})
	c.size += int64(len(b))
	for c.size > c.max {
		e := c.ll.Back()
		ce := e.Value.(*cacheEntry)
		c.ll.Remove(e)
		delete(c.items, ce.d)
		c.size -= int64(len(ce.b))
	}
}

// manifestInfo returns the media type and subject recorded for cached
// content d by setManifestInfo.
func (c *contentCache) manifestInfo(d digest.Digest) (mediaType string, subject digest.Digest, ok bool) {
	if c == nil {
		return "", "", false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, found := c.items[d]; found {
		ce := e.Value.(*cacheEntry)
		return ce.mediaType, ce.subject, ce.parsed
	}
	return "", "", false
}

// setManifestInfo records what parsing cached content d gave, so that the
// next read of the same immutable bytes need not parse them again. It does
// nothing when d is not cached.
func (c *contentCache) setManifestInfo(d digest.Digest, mediaType string, subject digest.Digest) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, found := c.items[d]; found {
		ce := e.Value.(*cacheEntry)
		ce.parsed, ce.mediaType, ce.subject = true, mediaType, subject
	}
}

func (c *contentCache) remove(d digest.Digest) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[d]; ok {
		c.ll.Remove(e)
		delete(c.items, d)
		c.size -= int64(len(e.Value.(*cacheEntry).b))
	}
}
