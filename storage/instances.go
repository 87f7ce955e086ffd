package storage

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"regexp"
	"sort"
	"sync"
	"time"

	"github.com/google/uuid"
)

// Instance leases: how a process that works on the storage (a serving
// registry, a garbage collection) announces itself to the others sharing
// the storage, now or in future over S3. Each writes a small JSON lease
//
//	/docker/registry/v2/_registryd/instances/<id>
//
// and rewrites it every heartbeat; it deletes it when it stops. A process
// killed without a chance to clean up stops renewing its lease, which goes
// stale after a time to live (by default three heartbeats): no lease ever
// blocks anything for longer than that. The reference registry does not
// look below _registryd.

// DefaultInstanceHeartbeat is the renewal period of a lease when none is given.
const DefaultInstanceHeartbeat = 10 * time.Second

// Roles of a lease holder.
const (
	// RoleRegistry is a registry serving the storage (readOnly tells
	// whether it accepts writes).
	RoleRegistry = "registry"
	// RoleGC is a garbage collection in progress that may delete content.
	RoleGC = "gc"
)

// Instance is the content of a lease.
type Instance struct {
	ID       string `json:"id"`
	Role     string `json:"role,omitempty"` // RoleRegistry when empty
	Hostname string `json:"hostname"`
	PID      int    `json:"pid"`
	// PIDNamespace identifies the pid namespace of PID where the platform
	// has one ("pid:[4026531836]" on Linux), so that a process id is only
	// compared with processes it can name: two containers share a
	// hostname more often than one might think.
	PIDNamespace string    `json:"pidNamespace,omitempty"`
	ReadOnly     bool      `json:"readOnly"`
	StartedAt    time.Time `json:"startedAt"`
	RenewedAt    time.Time `json:"renewedAt"`
	// Heartbeat is the holder's renewal period; a lease is live for at
	// least three of them.
	Heartbeat time.Duration `json:"heartbeat,omitempty"`
	// GCProtocol says the registry follows online garbage collection's
	// protocol (gcprotocol.go): a collection may run while it serves.
	GCProtocol bool `json:"gcProtocol,omitempty"`
}

// Live reports whether the lease was renewed within ttl of now, or within
// three of its own heartbeats if that is longer. A renewal in the future (a
// clock ahead of ours) is live.
func (in Instance) Live(now time.Time, ttl time.Duration) bool {
	if hb := 3 * in.Heartbeat; hb > ttl {
		ttl = hb
	}
	return now.Sub(in.RenewedAt) <= ttl
}

// IsRole reports whether the lease holder has the given role; a lease
// without a role is a registry's.
func (in Instance) IsRole(role string) bool {
	r := in.Role
	if r == "" {
		r = RoleRegistry
	}
	return r == role
}

func instancesRoot() string { return path.Join(rootPath, "_registryd", "instances") }

func instancePath(id string) string { return path.Join(instancesRoot(), id) }

var instanceIDRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

// LocalInstance describes this process: hostname, pid and pid namespace,
// the fields of a lease that let a collector on the same host check whether
// the holder still runs. Everything else is zero.
func LocalInstance() Instance {
	host, _ := os.Hostname()
	ns, _ := os.Readlink("/proc/self/ns/pid")
	return Instance{Hostname: host, PID: os.Getpid(), PIDNamespace: ns}
}

// RegisterInstance announces a registry serving this storage: it writes its
// lease (role registry, this host and pid, readOnly) and renews it every
// heartbeat (DefaultInstanceHeartbeat when <= 0) until release is called.
// id names the lease; "" picks a random one. ctx bounds the first write
// only: renewals go on until release, so a registry draining after its
// context was cancelled still holds its lease. release stops the renewals
// and deletes the lease; it may be called more than once.
func (r *Registry) RegisterInstance(ctx context.Context, id string, readOnly bool, heartbeat time.Duration) (release func(), err error) {
	in := LocalInstance()
	in.ID = id
	in.Role = RoleRegistry
	in.ReadOnly = readOnly
	in.GCProtocol = r.SpeaksGCProtocol()
	return r.RegisterLease(ctx, in, heartbeat)
}

// RegisterLease writes the lease in (ID "" picks a random one; StartedAt
// zero means now) and renews it every heartbeat until release is called,
// as RegisterInstance does. Renewal failures are retried at the next
// heartbeat; a lease that could not be renewed for its time to live goes
// stale like that of a dead process.
func (r *Registry) RegisterLease(ctx context.Context, in Instance, heartbeat time.Duration) (release func(), err error) {
	if in.ID == "" {
		in.ID = uuid.NewString()
	}
	if !instanceIDRE.MatchString(in.ID) {
		return nil, fmt.Errorf("instance id %q: must match %s", clip(in.ID), instanceIDRE)
	}
	if heartbeat <= 0 {
		heartbeat = DefaultInstanceHeartbeat
	}
	now := time.Now().UTC()
	if in.StartedAt.IsZero() {
		in.StartedAt = now
	}
	in.RenewedAt = now
	in.Heartbeat = heartbeat
	if err := r.writeLease(ctx, in); err != nil {
		return nil, err
	}
	bg := context.WithoutCancel(ctx)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(heartbeat)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			in.RenewedAt = time.Now().UTC()
			wctx, cancel := context.WithTimeout(bg, heartbeat)
			_ = r.writeLease(wctx, in) // retried at the next tick
			cancel()
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(stop)
			<-done
			dctx, cancel := context.WithTimeout(bg, 10*time.Second)
			defer cancel()
			// A lease that cannot be deleted goes stale on its own.
			_ = r.RemoveInstance(dctx, in.ID)
		})
	}, nil
}

func (r *Registry) writeLease(ctx context.Context, in Instance) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	if err := r.driver.PutContent(ctx, instancePath(in.ID), b); err != nil {
		return fmt.Errorf("writing instance lease %s: %w", in.ID, err)
	}
	return nil
}

// Instances returns every lease in the storage, live or stale, ordered by
// id. A lease that cannot be parsed is reported with its id, its
// modification time as RenewedAt and nothing else, so that it counts as a
// writable registry until it goes stale.
func (r *Registry) Instances(ctx context.Context) ([]Instance, error) {
	ps, err := r.driver.List(ctx, instancesRoot())
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing instance leases: %w", err)
	}
	out := make([]Instance, 0, len(ps))
	for _, p := range ps {
		b, err := r.driver.GetContent(ctx, p)
		if isNotFound(err) {
			continue // released meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("reading instance lease %s: %w", path.Base(p), err)
		}
		var in Instance
		if json.Unmarshal(b, &in) != nil || in.ID != path.Base(p) {
			in = Instance{ID: path.Base(p)}
			if fi, err := r.driver.Stat(ctx, p); err == nil {
				in.RenewedAt = fi.ModTime()
			} else {
				in.RenewedAt = time.Now()
			}
		}
		out = append(out, in)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// LiveInstances returns the leases renewed within ttl of now (or within
// three of the holder's heartbeats, if longer): the processes that may be
// working on the storage. ttl should be at least three heartbeats plus the
// clock skew between the hosts sharing the storage.
func (r *Registry) LiveInstances(ctx context.Context, now time.Time, ttl time.Duration) ([]Instance, error) {
	all, err := r.Instances(ctx)
	if err != nil {
		return nil, err
	}
	live := all[:0]
	for _, in := range all {
		if in.Live(now, ttl) {
			live = append(live, in)
		}
	}
	return live, nil
}

// RemoveInstance deletes the lease id, which is how a stale lease is
// cleaned up. A missing lease is not an error. A holder that is in fact
// alive writes its lease again at its next heartbeat.
func (r *Registry) RemoveInstance(ctx context.Context, id string) error {
	if !instanceIDRE.MatchString(id) {
		return fmt.Errorf("instance id %q: must match %s", clip(id), instanceIDRE)
	}
	err := r.driver.Delete(ctx, instancePath(id))
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("removing instance lease %s: %w", id, err)
	}
	return nil
}
