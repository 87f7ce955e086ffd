package gc

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/registryd/registryd/storage"
	"github.com/registryd/registryd/storage/driver"
)

func regOn(d driver.StorageDriver) *storage.Registry {
	return storage.New(d, storage.Options{GCStateMaxAge: -1})
}

// fastLease is a lease that expires two seconds after its last renewal.
var fastLease = LeaseOptions{Heartbeat: 500 * time.Millisecond, ClockSkew: 500 * time.Millisecond, Mode: "online"}

func TestLeaseOneHolder(t *testing.T) {
	eachStore(t, func(t *testing.T, open func() driver.StorageDriver) {
		ctx := context.Background()
		a, b := regOn(open()), regOn(open())
		la, err := AcquireLease(ctx, a, fastLease)
		if err != nil {
			t.Fatal(err)
		}
		if la.Epoch() != 1 {
			t.Fatalf("first epoch %d, want 1", la.Epoch())
		}
		var held *LeaseHeldError
		if _, err := AcquireLease(ctx, b, fastLease); !errors.As(err, &held) || !errors.Is(err, ErrLeaseHeld) {
			t.Fatalf("second collector: %v, want the lease held", err)
		}
		if held.Record.Epoch != 1 || held.Record.Holder != la.Record().Holder {
			t.Fatalf("held by %+v", held.Record)
		}
		// Renewals keep it held well past its time to live.
		time.Sleep(fastLease.TTL() + 300*time.Millisecond)
		if _, err := AcquireLease(ctx, b, fastLease); !errors.Is(err, ErrLeaseHeld) {
			t.Fatalf("while renewed: %v, want held", err)
		}
		if err := la.Check(ctx); err != nil {
			t.Fatalf("holder's check: %v", err)
		}
		la.Release(ctx)
		if err := la.Check(ctx); !errors.Is(err, ErrLeaseLost) {
			t.Fatalf("check after release: %v", err)
		}
		lb, err := AcquireLease(ctx, b, fastLease)
		if err != nil {
			t.Fatalf("after release: %v", err)
		}
		defer lb.Release(ctx)
		if lb.Epoch() != 2 {
			t.Fatalf("epoch after release %d, want 2", lb.Epoch())
		}
	})
}

// TestLeaseExpiresAndFences: a holder that stops renewing (a process
// stopped, a partition) loses the lease after its time to live, measured
// on the store's clock; the new holder has a higher epoch, and the old one
// finds out at its next check, before it could delete anything.
func TestLeaseExpiresAndFences(t *testing.T) {
	eachStore(t, func(t *testing.T, open func() driver.StorageDriver) {
		ctx := context.Background()
		a, b := regOn(open()), regOn(open())
		la, err := AcquireLease(ctx, a, fastLease)
		if err != nil {
			t.Fatal(err)
		}
		// Freeze it: no more renewals, no release.
		close(la.stop)
		<-la.done
		start := time.Now()
		var lb *Lease
		for {
			lb, err = AcquireLease(ctx, b, fastLease)
			if err == nil {
				break
			}
			if !errors.Is(err, ErrLeaseHeld) {
				t.Fatal(err)
			}
			if time.Since(start) > 10*fastLease.TTL() {
				t.Fatalf("lease never expired: %v", err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		defer lb.Release(ctx)
		// S3 times have one-second resolution: the takeover comes after the
		// time to live, less at most that second.
		if el := time.Since(start); el < fastLease.TTL()-time.Second {
			t.Fatalf("taken over after %s, before its time to live %s", el, fastLease.TTL())
		}
		if lb.Epoch() != 2 {
			t.Fatalf("new epoch %d, want 2", lb.Epoch())
		}
		if err := la.Check(ctx); !errors.Is(err, ErrLeaseLost) {
			t.Fatalf("old holder's check: %v, want lost", err)
		}
		// The old holder's release must not release the new one's lease.
		la.once.Do(func() {}) // already stopped
		if err := lb.Check(ctx); err != nil {
			t.Fatalf("new holder: %v", err)
		}
	})
}

// TestLeaseRace: collectors taking the lease at once; exactly one wins.
func TestLeaseRace(t *testing.T) {
	eachStore(t, func(t *testing.T, open func() driver.StorageDriver) {
		ctx := context.Background()
		const n = 6
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			winners []*Lease
		)
		for range n {
			r := regOn(open())
			wg.Add(1)
			go func() {
				defer wg.Done()
				l, err := AcquireLease(ctx, r, fastLease)
				if err != nil {
					if !errors.Is(err, ErrLeaseHeld) {
						t.Error(err)
					}
					return
				}
				mu.Lock()
				winners = append(winners, l)
				mu.Unlock()
			}()
		}
		wg.Wait()
		if len(winners) != 1 {
			t.Fatalf("%d collectors hold the lease", len(winners))
		}
		winners[0].Release(ctx)
	})
}

// failingLeaseWrites fails every write of the lease: the holder cannot
// renew, and must consider the lease lost before anyone may take it.
type failingLeaseWrites struct {
	driver.StorageDriver
	cw   driver.ConditionalWriter
	fail chan struct{}
}

func (f *failingLeaseWrites) Unwrap() driver.StorageDriver { return f.StorageDriver }

func (f *failingLeaseWrites) PutContentIf(ctx context.Context, p string, b []byte, v string) (string, error) {
	select {
	case <-f.fail:
		return "", errors.New("injected: storage unreachable")
	default:
	}
	return f.cw.PutContentIf(ctx, p, b, v)
}

func (f *failingLeaseWrites) GetContentVersion(ctx context.Context, p string) ([]byte, string, error) {
	return f.cw.GetContentVersion(ctx, p)
}

func TestLeaseLostWhenRenewalsFail(t *testing.T) {
	eachStore(t, func(t *testing.T, open func() driver.StorageDriver) {
		ctx := context.Background()
		d := open()
		cw, _ := driver.As[driver.ConditionalWriter](d)
		f := &failingLeaseWrites{StorageDriver: d, cw: cw, fail: make(chan struct{})}
		l, err := AcquireLease(ctx, regOn(f), fastLease)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Release(ctx)
		close(f.fail)
		failed := time.Now()
		for l.Check(ctx) == nil {
			if time.Since(failed) > fastLease.TTL() {
				t.Fatal("the holder still trusts its lease after its time to live")
			}
			time.Sleep(20 * time.Millisecond)
		}
		// It gave up before anyone else may take the lease.
		if el := time.Since(failed); el > fastLease.TTL()-fastLease.skew() {
			t.Fatalf("gave up %s after renewals began failing; others may take it at %s", el, fastLease.TTL())
		}
	})
}

// TestStorageNow: the store's clock moves on, and agrees with this host's
// within the store's resolution (one second on S3).
func TestStorageNow(t *testing.T) {
	eachStore(t, func(t *testing.T, open func() driver.StorageDriver) {
		ctx := context.Background()
		r := regOn(open())
		t1, err := r.StorageNow(ctx)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(1100 * time.Millisecond)
		t2, err := r.StorageNow(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !t2.After(t1) {
			t.Fatalf("storage clock did not move: %s then %s", t1, t2)
		}
		if d := time.Since(t2); d < -2*time.Second || d > 2*time.Second {
			t.Fatalf("storage clock %s is %s from this host's", t2, d)
		}
	})
}
