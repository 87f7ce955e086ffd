package gc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/registryd/registryd/storage"
	"github.com/registryd/registryd/storage/driver"
)

// The collector lease, _registryd/gc/lease: one collector per store, elected
// through the store itself by compare-and-swap (driver.ConditionalWriter),
// with no database. Its epoch grows by one with every take and is the
// fencing token: the collector writes it into its state and plans, and
// its state writes are conditional on the version it last wrote, so a
// collector that lost the lease cannot move the state on.
//
// Ages are the store's: a lease is expired when the store's clock
// (storage.Registry.StorageNow) is past its last write's modification
// time plus its time to live, so hosts with different clocks agree. The
// holder, which cannot read the store's clock for free, counts on its
// monotonic clock from the start of its last successful renewal (which
// precedes that modification time) and considers the lease lost ClockSkew
// before the others may consider it expired: ClockSkew bounds how far the
// clocks inside the store (the nodes of a MinIO cluster, an NFS server and
// its clients) may disagree.

// LeaseRecord is the lease's content.
type LeaseRecord struct {
	Holder string `json:"holder"` // a random id per take
	Host   string `json:"host,omitempty"`
	PID    int    `json:"pid,omitempty"`
	// Mode is "online" (a serving registry's collector) or "offline"
	// (registryd garbage-collect).
	Mode  string    `json:"mode,omitempty"`
	Epoch uint64    `json:"epoch"`
	Taken time.Time `json:"taken"` // holder's clock, for people
	// Renewed is the holder's clock at the last renewal, for people; ages
	// are computed from the object's modification time.
	Renewed  time.Time     `json:"renewed"`
	TTL      time.Duration `json:"ttl"`
	Released bool          `json:"released,omitempty"`
	Nonce    string        `json:"nonce"`
}

// LeaseOptions tune a lease.
type LeaseOptions struct {
	// Heartbeat is the renewal period; 0 selects DefaultLeaseHeartbeat.
	Heartbeat time.Duration
	// ClockSkew bounds the disagreement of clocks within the store; 0
	// selects DefaultClockSkew.
	ClockSkew time.Duration
	// Mode is written into the record ("online" or "offline").
	Mode string
}

// Defaults of LeaseOptions.
const (
	DefaultLeaseHeartbeat = 10 * time.Second
	DefaultClockSkew      = 5 * time.Second
)

func (o LeaseOptions) heartbeat() time.Duration {
	if o.Heartbeat > 0 {
		return o.Heartbeat
	}
	return DefaultLeaseHeartbeat
}

func (o LeaseOptions) skew() time.Duration {
	if o.ClockSkew > 0 {
		return o.ClockSkew
	}
	return DefaultClockSkew
}

// TTL is the lease's time to live: three heartbeats plus the clock skew
// bound.
func (o LeaseOptions) TTL() time.Duration { return 3*o.heartbeat() + o.skew() }

// ErrLeaseHeld is matched by errors.Is when another collector holds the
// lease.
var ErrLeaseHeld = errors.New("the collector lease is held by another collector")

// ErrLeaseLost is matched by errors.Is when a collector finds it no longer
// holds its lease: it stops before its next delete.
var ErrLeaseLost = errors.New("the collector lease was lost")

// LeaseHeldError says who holds the lease.
type LeaseHeldError struct {
	Record LeaseRecord
	// Age is how long ago (store time) the holder last renewed it.
	Age time.Duration
}

func (e *LeaseHeldError) Error() string {
	r := e.Record
	return fmt.Sprintf("%v: %s collector %s (host %s, pid %d), epoch %d, renewed %s ago",
		ErrLeaseHeld, orUnknown(r.Mode), r.Holder, orUnknown(r.Host), r.PID, r.Epoch, e.Age.Round(time.Second))
}

// Is makes errors.Is(err, ErrLeaseHeld) true.
func (e *LeaseHeldError) Is(target error) bool { return target == ErrLeaseHeld }

// Lease is a held collector lease, renewed in the background until
// Release.
type Lease struct {
	reg   *storage.Registry
	opts  LeaseOptions
	epoch uint64

	// io serialises the renewal's write with Check's read, so that Check
	// never compares a version just written with the one before it.
	io         sync.Mutex
	mu         sync.Mutex
	rec        LeaseRecord
	version    string
	renewStart time.Time // monotonic start of the last successful write
	lost       error

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// AcquireLease takes the lease if nobody holds it, or if its holder let it
// expire (or released it), and starts renewing it. Otherwise it returns a
// *LeaseHeldError. The epoch is one more than the last one the store
// knows, in the lease or in the collector state.
func AcquireLease(ctx context.Context, reg *storage.Registry, opts LeaseOptions) (*Lease, error) {
	host, _ := os.Hostname()
	for attempt := 0; ; attempt++ {
		prevB, prevV, err := reg.ReadGCLease(ctx)
		missing := errors.Is(err, driver.ErrPathNotFound)
		if err != nil && !missing {
			return nil, fmt.Errorf("reading the collector lease: %w", err)
		}
		var prev LeaseRecord
		if !missing {
			if json.Unmarshal(prevB, &prev) != nil {
				// Unreadable: it expires by its time like any other.
				prev = LeaseRecord{Holder: "unreadable"}
			}
			written, err := reg.GCLeaseWritten(ctx)
			if err != nil && !errors.Is(err, driver.ErrPathNotFound) {
				return nil, fmt.Errorf("reading the collector lease: %w", err)
			}
			now, err := reg.StorageNow(ctx)
			if err != nil {
				return nil, err
			}
			ttl := max(prev.TTL, opts.TTL())
			if age := now.Sub(written); !prev.Released && age <= ttl {
				return nil, &LeaseHeldError{Record: prev, Age: max(age, 0)}
			}
		}
		st, _, err := reg.ReadGCState(ctx)
		if err != nil {
			return nil, err
		}
		now := time.Now().UTC()
		rec := LeaseRecord{
			Holder: uuid.NewString(), Host: host, PID: os.Getpid(), Mode: opts.Mode,
			Epoch: max(prev.Epoch, st.Epoch) + 1, Taken: now, Renewed: now, TTL: opts.TTL(), Nonce: uuid.NewString(),
		}
		b, _ := json.Marshal(rec)
		start := time.Now()
		v, err := reg.WriteGCLease(ctx, b, prevV)
		if errors.Is(err, driver.ErrPreconditionFailed) {
			if attempt < 5 {
				continue // another collector took it meanwhile: look again
			}
			return nil, fmt.Errorf("%w (it changed under five attempts to take it)", ErrLeaseHeld)
		}
		if err != nil {
			return nil, fmt.Errorf("taking the collector lease: %w", err)
		}
		l := &Lease{reg: reg, opts: opts, epoch: rec.Epoch, rec: rec, version: v, renewStart: start,
			stop: make(chan struct{}), done: make(chan struct{})}
		go l.renew()
		return l, nil
	}
}

// Epoch is the lease's epoch, the collector's fencing token.
func (l *Lease) Epoch() uint64 { return l.epoch }

// Record is the lease's content as last written.
func (l *Lease) Record() LeaseRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rec
}

func (l *Lease) renew() {
	defer close(l.done)
	t := time.NewTicker(l.opts.heartbeat())
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		l.mu.Lock()
		if l.lost != nil {
			l.mu.Unlock()
			return
		}
		rec, version := l.rec, l.version
		l.mu.Unlock()
		rec.Renewed = time.Now().UTC()
		rec.Nonce = uuid.NewString()
		b, _ := json.Marshal(rec)
		l.io.Lock()
		start := time.Now()
		// A slow write is worth waiting for: its start is what counts.
		ctx, cancel := context.WithTimeout(context.Background(), l.validFor())
		v, err := l.reg.WriteGCLease(ctx, b, version)
		cancel()
		l.mu.Lock()
		switch {
		case err == nil:
			l.rec, l.version, l.renewStart = rec, v, start
		case errors.Is(err, driver.ErrPreconditionFailed):
			l.lost = fmt.Errorf("%w: another collector took it (epoch %d)", ErrLeaseLost, rec.Epoch)
		case time.Since(l.renewStart) > l.validFor():
			l.lost = fmt.Errorf("%w: not renewed for %s: %v", ErrLeaseLost, time.Since(l.renewStart).Round(time.Millisecond), err)
		}
		l.mu.Unlock()
		l.io.Unlock()
	}
}

// validFor is how long after the start of its last renewal the holder
// may act on the lease: its time to live less the clock skew bound, so
// that it stops before any other collector may take it.
func (l *Lease) validFor() time.Duration { return l.opts.TTL() - l.opts.skew() }

// Check is the fence before a delete: it fails (ErrLeaseLost) if the
// lease was lost, if it has not been renewed for so long that less than a
// heartbeat of validity is left for the delete, or if the lease in the
// store is no longer this one.
func (l *Lease) Check(ctx context.Context) error {
	l.mu.Lock()
	lost, since := l.lost, time.Since(l.renewStart)
	l.mu.Unlock()
	if lost != nil {
		return lost
	}
	if since > l.validFor()-l.opts.heartbeat() {
		return fmt.Errorf("%w: not renewed for %s", ErrLeaseLost, since.Round(time.Millisecond))
	}
	l.io.Lock()
	defer l.io.Unlock()
	_, v, err := l.reg.ReadGCLease(ctx)
	if err != nil {
		if errors.Is(err, driver.ErrPathNotFound) {
			return l.markLost(fmt.Errorf("%w: the lease object is gone", ErrLeaseLost))
		}
		return fmt.Errorf("checking the collector lease: %w", err)
	}
	l.mu.Lock()
	mine := v == l.version
	l.mu.Unlock()
	if !mine {
		return l.markLost(fmt.Errorf("%w: another collector took it", ErrLeaseLost))
	}
	return nil
}

func (l *Lease) markLost(err error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lost == nil {
		l.lost = err
	}
	return l.lost
}

// Lost returns why the lease was lost, or nil.
func (l *Lease) Lost() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lost
}

// Release stops renewing and writes the lease back released (if it is
// still this one), so that the next collector need not wait for it to
// expire. It may be called more than once.
func (l *Lease) Release(ctx context.Context) {
	l.once.Do(func() {
		close(l.stop)
		<-l.done
		l.mu.Lock()
		rec, version, lost := l.rec, l.version, l.lost
		l.mu.Unlock()
		if lost != nil {
			return
		}
		rec.Released = true
		rec.Renewed = time.Now().UTC()
		rec.Nonce = uuid.NewString()
		b, _ := json.Marshal(rec)
		// Failing is harmless: the lease expires by itself.
		_, _ = l.reg.WriteGCLease(ctx, b, version)
		l.markLost(fmt.Errorf("%w: released", ErrLeaseLost))
	})
}

// ReadLease returns the lease as it is in the store, and how long ago
// (store time) it was last written; ok is false when there is none.
func ReadLease(ctx context.Context, reg *storage.Registry) (rec LeaseRecord, age time.Duration, ok bool, err error) {
	b, _, err := reg.ReadGCLease(ctx)
	if errors.Is(err, driver.ErrPathNotFound) {
		return LeaseRecord{}, 0, false, nil
	}
	if err != nil {
		return LeaseRecord{}, 0, false, err
	}
	_ = json.Unmarshal(b, &rec)
	written, err := reg.GCLeaseWritten(ctx)
	if err != nil {
		return rec, 0, true, err
	}
	now, err := reg.StorageNow(ctx)
	if err != nil {
		return rec, 0, true, err
	}
	return rec, max(now.Sub(written), 0), true, nil
}
