package gc

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/registryd/registryd/storage"
	"github.com/registryd/registryd/storage/driver"
)

// Timings of the online tests: short, but with the proportions of
// production (delay well above the state bound). On MinIO the store's
// clock has a resolution of a second, so ages and delays are longer there.
const (
	testRmax = 150 * time.Millisecond
	testSkew = 100 * time.Millisecond
)

// onlineEnv is a serving registry (following the protocol, with test
// hooks) and a collector over one store, each through its own driver
// instance, as two processes would be.
type onlineEnv struct {
	*env
	open  func() driver.StorageDriver
	col   *Collector
	opts  OnlineOptions
	hooks *storage.GCHooks
	delay time.Duration
}

func newOnlineEnv(t *testing.T, open func() driver.StorageDriver, mod func(*OnlineOptions)) *onlineEnv {
	t.Helper()
	d := open()
	delay := MinDelay(testRmax, testSkew) + 200*time.Millisecond
	if d.Name() == "s3" {
		delay = 2 * time.Second
	}
	hooks := &storage.GCHooks{}
	e := &env{t: t, ctx: context.Background(), d: d,
		reg: storage.New(d, storage.Options{GCStateMaxAge: testRmax, GCHooks: hooks})}
	opts := OnlineOptions{
		Delay: delay, StateMaxAge: testRmax, ClockSkew: testSkew,
		LeaseHeartbeat: time.Second, Workers: 4, Instance: "test",
	}
	if mod != nil {
		mod(&opts)
	}
	col, err := NewCollector(open(), opts, 0)
	if err != nil {
		t.Fatal(err)
	}
	return &onlineEnv{env: e, open: open, col: col, opts: opts, hooks: hooks, delay: opts.Delay}
}

// runGC runs the collector once and fails the test on error.
func (o *onlineEnv) runGC() *RunReport {
	o.t.Helper()
	rep, err := o.col.RunOnce(o.ctx)
	if err != nil {
		o.t.Fatalf("gc run: %v", err)
	}
	return rep
}

// age waits until what was written so far is older than the delay.
func (o *onlineEnv) age() {
	time.Sleep(o.delay + testSkew + 100*time.Millisecond)
	if o.d.Name() == "s3" {
		time.Sleep(time.Second) // one-second resolution of S3 times
	}
}

// collect runs the collector until a plan made now has been swept: a run
// that publishes the plan, the delay, a run that sweeps it.
func (o *onlineEnv) collect() (plan, sweep *RunReport) {
	o.t.Helper()
	plan = o.runGC()
	o.age()
	sweep = o.runGC()
	return plan, sweep
}

func (o *onlineEnv) state() storage.GCState {
	o.t.Helper()
	st, _, err := o.reg.ReadGCState(o.ctx)
	if err != nil {
		o.t.Fatal(err)
	}
	return st
}

func isUnknown(err error) bool {
	return err != nil && storage.ErrNotFound(err)
}

var errNever = errors.New("never")
