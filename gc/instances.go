package gc

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/registryd/registryd/storage"
)

// DefaultInstanceTTL is how long a registry's lease protects the storage
// after its last renewal: three of serve's heartbeats.
const DefaultInstanceTTL = 3 * storage.DefaultInstanceHeartbeat

// LeaseStatus is what a collector makes of one lease.
type LeaseStatus int

// Lease statuses.
const (
	// LeaseLive is a live lease: its holder may be working on the storage.
	LeaseLive LeaseStatus = iota
	// LeaseStale was not renewed within its time to live.
	LeaseStale
	// LeaseDead is from this host, and its process is gone.
	LeaseDead
)

// Classify tells whether lease in is live at now. With localStorage (the
// storage is this host's filesystem, so a lease from this hostname was
// written by this host) a lease whose process no longer exists is dead at
// once instead of after ttl: that is how a registry killed with -9 stops
// blocking a collection right away. The pid is only trusted when it was
// recorded in our own pid namespace.
func Classify(in storage.Instance, now time.Time, ttl time.Duration, localStorage bool, self storage.Instance) LeaseStatus {
	if !in.Live(now, ttl) {
		return LeaseStale
	}
	if localStorage && in.Hostname != "" && in.Hostname == self.Hostname &&
		in.PIDNamespace == self.PIDNamespace && processGone(in.PID) {
		return LeaseDead
	}
	return LeaseLive
}

// WritableRegistries returns the live leases of registries that serve the
// storage and accept writes: while one exists, a collection could delete a
// blob a concurrent push is relying on. Read-only registries and other
// collections do not block.
func WritableRegistries(ctx context.Context, reg *storage.Registry, now time.Time, ttl time.Duration, localStorage bool) ([]storage.Instance, error) {
	all, err := reg.Instances(ctx)
	if err != nil {
		return nil, err
	}
	self := storage.LocalInstance()
	var out []storage.Instance
	for _, in := range all {
		if !in.IsRole(storage.RoleRegistry) || in.ReadOnly {
			continue
		}
		if Classify(in, now, ttl, localStorage, self) == LeaseLive {
			out = append(out, in)
		}
	}
	return out, nil
}

// DescribeInstance is one line about a lease holder for messages.
func DescribeInstance(in storage.Instance, now time.Time) string {
	var b strings.Builder
	fmt.Fprintf(&b, "instance %s", in.ID)
	if in.Hostname != "" || in.PID != 0 {
		fmt.Fprintf(&b, " (host %s, pid %d)", orUnknown(in.Hostname), in.PID)
	}
	if !in.StartedAt.IsZero() {
		fmt.Fprintf(&b, ", started %s", in.StartedAt.Format(time.RFC3339))
	}
	fmt.Fprintf(&b, ", lease renewed %s ago", now.Sub(in.RenewedAt).Round(time.Second))
	return b.String()
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// ErrWritableRegistry is matched by errors.Is for the error NoWritableRegistry returns.
var ErrWritableRegistry = errors.New("a registry that accepts writes is serving the storage")

// NoWritableRegistry returns a Guard for Options: it fails when
// WritableRegistries finds any.
func NoWritableRegistry(reg *storage.Registry, ttl time.Duration, localStorage bool) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		now := time.Now()
		ins, err := WritableRegistries(ctx, reg, now, ttl, localStorage)
		if err != nil {
			return fmt.Errorf("checking for serving registries: %w", err)
		}
		if len(ins) == 0 {
			return nil
		}
		descs := make([]string, len(ins))
		for i, in := range ins {
			descs[i] = DescribeInstance(in, now)
		}
		return fmt.Errorf("%w: %s", ErrWritableRegistry, strings.Join(descs, "; "))
	}
}
