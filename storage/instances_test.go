package storage

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/registryd/registryd/storage/driver/inmemory"
)

func TestRegisterInstanceLifecycle(t *testing.T) {
	ctx := context.Background()
	d := inmemory.New()
	r := New(d, Options{})
	other := New(d, Options{}) // another process over the same storage

	release, err := r.RegisterInstance(ctx, "serve-1", true, 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	ins, err := other.LiveInstances(ctx, time.Now(), time.Second)
	if err != nil || len(ins) != 1 {
		t.Fatalf("live %v %v", ins, err)
	}
	in := ins[0]
	host, _ := os.Hostname()
	if in.ID != "serve-1" || !in.ReadOnly || in.PID != os.Getpid() || in.Hostname != host ||
		!in.IsRole(RoleRegistry) || in.StartedAt.IsZero() || in.Heartbeat != 20*time.Millisecond {
		t.Fatalf("lease %+v", in)
	}

	// Renewed every heartbeat.
	deadline := time.Now().Add(5 * time.Second)
	for {
		ins, err := other.Instances(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(ins) == 1 && ins[0].RenewedAt.After(in.RenewedAt) {
			if !ins[0].StartedAt.Equal(in.StartedAt) {
				t.Fatal("renewal changed startedAt")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("lease never renewed")
		}
		time.Sleep(5 * time.Millisecond)
	}

	// A cancelled context does not stop renewals; release does, and removes the lease.
	release()
	release()
	if ins, err := other.Instances(ctx); err != nil || len(ins) != 0 {
		t.Fatalf("after release: %v %v", ins, err)
	}
	time.Sleep(60 * time.Millisecond) // no renewal resurrects it
	if ins, err := other.Instances(ctx); err != nil || len(ins) != 0 {
		t.Fatalf("lease written after release: %v %v", ins, err)
	}
}

func TestRenewalsOutliveTheContext(t *testing.T) {
	d := inmemory.New()
	r := New(d, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	release, err := r.RegisterInstance(ctx, "", false, 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	cancel()
	first, err := r.Instances(context.Background())
	if err != nil || len(first) != 1 || first[0].ID == "" {
		t.Fatalf("%v %v", first, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		now, err := r.Instances(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(now) == 1 && now[0].RenewedAt.After(first[0].RenewedAt) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("renewals stopped with the context")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestLiveInstancesTTL(t *testing.T) {
	ctx := context.Background()
	d := inmemory.New()
	r := New(d, Options{})
	// A lease whose holder was killed: never renewed, never released.
	base := LocalInstance()
	base.ID = "killed"
	base.Role = RoleRegistry
	release, err := r.RegisterLease(ctx, base, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	ins, err := r.Instances(ctx)
	if err != nil || len(ins) != 1 {
		t.Fatal(ins, err)
	}
	renewed := ins[0].RenewedAt
	tests := []struct {
		name string
		now  time.Time
		ttl  time.Duration
		live bool
	}{
		{"just renewed", renewed, 30 * time.Second, true},
		{"within ttl", renewed.Add(29 * time.Second), 30 * time.Second, true},
		// The lease's own heartbeat (1h) stretches the ttl to 3h.
		{"within three heartbeats", renewed.Add(2 * time.Hour), 30 * time.Second, true},
		{"stale", renewed.Add(3*time.Hour + time.Second), 30 * time.Second, false},
		{"clock behind the holder's", renewed.Add(-time.Minute), 30 * time.Second, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			live, err := r.LiveInstances(ctx, tc.now, tc.ttl)
			if err != nil {
				t.Fatal(err)
			}
			if got := len(live) == 1; got != tc.live {
				t.Fatalf("live %v, want %v", live, tc.live)
			}
		})
	}
}

func TestInstanceLeaseEdgeCases(t *testing.T) {
	ctx := context.Background()
	d := inmemory.New()
	r := New(d, Options{})
	for _, id := range []string{"..", "a/b", "-x", string(make([]byte, 200))} {
		if _, err := r.RegisterInstance(ctx, id, false, time.Second); err == nil {
			t.Errorf("id %q accepted", id)
		}
	}
	// A lease that cannot be parsed counts as a writable registry renewed
	// when the file was last written.
	if err := d.PutContent(ctx, instancePath("junk"), []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	live, err := r.LiveInstances(ctx, time.Now(), time.Minute)
	if err != nil || len(live) != 1 || live[0].ID != "junk" || live[0].ReadOnly || !live[0].IsRole(RoleRegistry) {
		t.Fatalf("%+v %v", live, err)
	}
	if live, err := r.LiveInstances(ctx, time.Now().Add(time.Hour), time.Minute); err != nil || len(live) != 0 {
		t.Fatalf("%+v %v", live, err)
	}
	if err := r.RemoveInstance(ctx, "junk"); err != nil {
		t.Fatal(err)
	}
	if err := r.RemoveInstance(ctx, "junk"); err != nil {
		t.Fatalf("removing a missing lease: %v", err)
	}
}
