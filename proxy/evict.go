package proxy

import (
	"context"

	"github.com/opencontainers/go-digest"

	"github.com/registryd/registryd/storage"
)

// evictor keeps the cache within its size cap and age (evict.go grows it).
type evictor struct{ p *Proxy }

func newEvictor(p *Proxy) *evictor { return &evictor{p: p} }

func (e *evictor) start(ctx context.Context)                          {}
func (e *evictor) stop()                                              {}
func (e *evictor) touch(repo string, d digest.Digest)                 {}
func (e *evictor) added(repo string, m *storage.Manifest)             {}
func (e *evictor) blobAdded(repo string, d digest.Digest, size int64) {}
