package proxy

import (
	"context"
	"sync"
)

// flight runs one call per key at a time; callers that come while it runs
// wait for its result instead of starting their own (singleflight). The
// call runs on its own context, not a caller's: a caller that gives up
// stops waiting, and the call goes on for the others.
type flight[T any] struct {
	mu    sync.Mutex
	calls map[string]*call[T]
}

type call[T any] struct {
	done    chan struct{}
	val     T
	err     error
	waiters int // callers beyond the first
}

// do returns fn's result for key, running fn unless a call for key is
// under way. shared reports whether this caller joined a call another
// started.
func (g *flight[T]) do(ctx context.Context, key string, fn func() (T, error)) (v T, shared bool, err error) {
	g.mu.Lock()
	if g.calls == nil {
		g.calls = make(map[string]*call[T])
	}
	c, ok := g.calls[key]
	if ok {
		c.waiters++
	} else {
		c = &call[T]{done: make(chan struct{})}
		g.calls[key] = c
		go func() {
			c.val, c.err = fn()
			g.mu.Lock()
			delete(g.calls, key)
			g.mu.Unlock()
			close(c.done)
		}()
	}
	g.mu.Unlock()
	select {
	case <-c.done:
		return c.val, ok, c.err
	case <-ctx.Done():
		var zero T
		return zero, ok, ctx.Err()
	}
}
