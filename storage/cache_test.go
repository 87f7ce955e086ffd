package storage

import (
	"testing"

	"github.com/opencontainers/go-digest"
)

func TestContentCacheManifestInfo(t *testing.T) {
	c := newContentCache(1 << 10)
	a := []byte(`{"mediaType":"a"}`)
	da := digest.FromBytes(a)
	c.setManifestInfo(da, "ignored", "") // not cached: nothing recorded
	if _, _, ok := c.manifestInfo(da); ok {
		t.Fatal("info recorded for content not in the cache")
	}
	c.add(da, a)
	if _, _, ok := c.manifestInfo(da); ok {
		t.Fatal("info before it was set")
	}
	subj := digest.FromString("subject")
	c.setManifestInfo(da, "application/x-a", subj)
	if mt, s, ok := c.manifestInfo(da); !ok || mt != "application/x-a" || s != subj {
		t.Fatalf("manifestInfo = %q, %q, %v", mt, s, ok)
	}
	c.remove(da)
	if _, _, ok := c.manifestInfo(da); ok {
		t.Fatal("info survived removal")
	}
	var nilCache *contentCache
	nilCache.setManifestInfo(da, "x", "")
	if _, _, ok := nilCache.manifestInfo(da); ok {
		t.Fatal("nil cache has info")
	}
}
