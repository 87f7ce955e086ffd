package main

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/registryd/registryd/errcode"
	"github.com/registryd/registryd/internal/httprec"
	"github.com/registryd/registryd/storage"
	"github.com/registryd/registryd/storage/driver"
)

// leaseRetry is how often a registry that could not write its lease at
// startup tries again.
const leaseRetry = 2 * time.Second

// writeGate refuses writes while the registry has no lease in the
// storage: garbage collection (here or on another host) relies on the
// leases to know that a registry accepting writes is serving, so none may
// be accepted before its lease is there.
type writeGate struct{ closed atomic.Bool }

func (g *writeGate) handler(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if g.closed.Load() {
			switch r.Method {
			case http.MethodGet, http.MethodHead, http.MethodOptions:
			default:
				e := errcode.Newf(errcode.Unavailable,
					"the registry could not register with its storage yet (it is full or cannot be reached): writes are refused until it can, pulls are served").
					WithRetryAfter(5 * time.Second)
				for _, rec := range httprec.Find(w) {
					rec.Err = e
				}
				errcode.ServeJSON(w, e)
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

// registerInstance writes the registry's lease, as RegisterInstance does.
// When the storage cannot take it for a condition that passes (full,
// throttled, unreachable: driver.FaultOf), the registry still starts, so
// that a crash while the disk was full or the object store away needs no
// operator: it serves pulls, refuses writes through gate, and keeps
// trying in the background until the lease is written. Any other failure
// stops serve as before. The returned release removes the lease, or stops
// the trying.
func registerInstance(ctx context.Context, reg *storage.Registry, id string, readOnly bool, gate *writeGate, log logrus.FieldLogger) (func(), error) {
	release, err := reg.RegisterInstance(ctx, id, readOnly, storage.DefaultInstanceHeartbeat)
	if err == nil {
		return release, nil
	}
	fault, _ := driver.FaultOf(err)
	if fault == "" {
		return nil, err
	}
	log.WithError(err).WithField("storage_fault", string(fault)).
		Warn("cannot register with the storage: serving pulls, refusing writes until the registration succeeds")
	gate.closed.Store(true)
	var mu sync.Mutex
	var registered func()
	bg, stop := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(leaseRetry)
		defer t.Stop()
		for {
			select {
			case <-bg.Done():
				return
			case <-t.C:
			}
			rel, err := reg.RegisterInstance(bg, id, readOnly, storage.DefaultInstanceHeartbeat)
			if err != nil {
				continue
			}
			mu.Lock()
			registered = rel
			mu.Unlock()
			gate.closed.Store(false)
			log.Info("registered with the storage: writes accepted")
			return
		}
	}()
	return func() {
		stop()
		<-done
		mu.Lock()
		defer mu.Unlock()
		if registered != nil {
			registered()
		}
	}, nil
}
