// Package health answers the liveness and readiness probes: /healthz says
// the process serves HTTP; /readyz says the storage can be reached and,
// unless the registry is read-only, written.
package health

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/registryd/registryd/storage/driver"
)

// probePath is where the write check writes; the reference registry does
// not look below _registryd.
const probeDir = "/docker/registry/v2/_registryd/health"

// Checker checks the storage, either on each /readyz request or, with an
// interval, in the background (distribution's health.storagedriver).
type Checker struct {
	d         driver.StorageDriver
	id        string
	readOnly  bool
	timeout   time.Duration
	threshold int

	mu       sync.Mutex
	failures int
	lastErr  error
	checked  bool
}

// New returns a checker of d. id names this instance's probe file so that
// instances sharing the storage do not step on each other.
func New(d driver.StorageDriver, id string, readOnly bool, threshold int) *Checker {
	if threshold <= 0 {
		threshold = 1
	}
	return &Checker{d: d, id: id, readOnly: readOnly, timeout: 5 * time.Second, threshold: threshold}
}

// probeError is a failed check: what /readyz says (no path, no bucket:
// the probe is on the registry's own listener) and the cause.
type probeError struct {
	public string
	err    error
}

func (e *probeError) Error() string {
	if e.err == nil {
		return e.public
	}
	return e.public + ": " + e.err.Error()
}

func (e *probeError) Unwrap() error { return e.err }

func failed(public string, err error) error {
	if fault, _ := driver.FaultOf(err); fault != "" {
		public += " (" + string(fault) + ")"
	}
	return &probeError{public: public, err: err}
}

// errWritesRefused is the check's result when the storage is full but
// still serves what it holds: the instance stays ready (every instance on
// that storage is in the same state, and taking them all out would stop
// the pulls too), and /readyz says why pushes fail.
var errWritesRefused = errors.New("storage full: writes are refused until space is freed, pulls are served")

// Check probes the storage once.
func (c *Checker) Check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	if c.readOnly {
		if _, err := c.d.List(ctx, "/"); err != nil {
			return failed("storage not readable", err)
		}
		return nil
	}
	p := probeDir + "/" + c.id
	want := []byte(time.Now().UTC().Format(time.RFC3339Nano))
	if err := c.d.PutContent(ctx, p, want); err != nil {
		if fault, _ := driver.FaultOf(err); fault == driver.FaultFull {
			if _, lerr := c.d.List(ctx, "/"); lerr == nil {
				return errWritesRefused
			}
		}
		return failed("storage not writable", err)
	}
	got, err := c.d.GetContent(ctx, p)
	if err != nil {
		return failed("storage not readable", err)
	}
	if string(got) != string(want) {
		return failed("storage returned other content than written", nil)
	}
	return nil
}

// public is what /readyz tells of err.
func public(err error) string {
	var pe *probeError
	if errors.As(err, &pe) {
		return pe.public
	}
	return err.Error()
}

// record notes one result; readiness fails after threshold failures in a row.
func (c *Checker) record(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.checked = true
	if err == nil {
		c.failures = 0
		c.lastErr = nil
		return
	}
	if errors.Is(err, errWritesRefused) {
		// Ready, with the reason writes fail for /readyz to show.
		c.failures = 0
		c.lastErr = err
		return
	}
	c.failures++
	c.lastErr = err
}

// status is the current readiness: nil when ready.
func (c *Checker) status() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.failures >= c.threshold || errors.Is(c.lastErr, errWritesRefused) {
		return c.lastErr
	}
	return nil
}

// Run checks every interval until ctx ends.
func (c *Checker) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		c.record(c.Check(ctx))
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Handler serves /healthz and /readyz. With background checks running
// (background true) /readyz reports their state; otherwise it checks now.
func (c *Checker) Handler(background bool) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		var err error
		if background {
			err = c.status()
		} else {
			err = c.Check(r.Context())
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if errors.Is(err, errWritesRefused) {
			fmt.Fprintf(w, "ok (%v)\n", err)
			return
		}
		if err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "not ready: %s\n", public(err))
			return
		}
		if c.readOnly {
			fmt.Fprintln(w, "ok (read-only)")
			return
		}
		fmt.Fprintln(w, "ok")
	})
	return mux
}
