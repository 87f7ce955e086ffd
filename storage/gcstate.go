package storage

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/opencontainers/go-digest"

	"github.com/registryd/registryd/storage/driver"
)

// The online garbage collector's objects in the store (paths.go lists
// them). The collector (package gc) decides what they say; this file reads
// and writes them, and gcprotocol.go is how every registry serving the
// store follows them. Package gc's comment has the protocol and why it is
// safe.

// Phases of GCState.
const (
	// GCPhaseCondemned: the plan is published, nothing of it is being
	// deleted; a writer that relies on a condemned digest pins it.
	GCPhaseCondemned = "condemned"
	// GCPhaseSweeping: the sweep set (the plan's items a re-check still
	// found dead) is being deleted in digest order, pass by pass.
	GCPhaseSweeping = "sweeping"
)

// Passes of a sweep, in order.
const (
	GCPassLinks = "links" // manifest revisions and layer links
	GCPassBlobs = "blobs" // blob content
)

// GCState is _registryd/gc/state: where the online collector is. It is
// small and rewritten, by compare-and-swap, at every step of a sweep.
type GCState struct {
	// Epoch is the lease epoch of the collector that wrote it (the
	// fencing token).
	Epoch uint64 `json:"epoch"`
	// Plan is the id of the current plan (plans/<id>), "" for none.
	Plan string `json:"plan,omitempty"`
	// PlanCreated is the store's time when the plan was published.
	PlanCreated time.Time `json:"planCreated,omitzero"`
	// Phase is GCPhaseCondemned or GCPhaseSweeping ("" without a plan).
	Phase string `json:"phase,omitempty"`
	// Sweep names the sweep set (sweeps/<id>) while sweeping.
	Sweep string `json:"sweep,omitempty"`
	// Pass is the sweep's pass: GCPassLinks, then GCPassBlobs.
	Pass string `json:"pass,omitempty"`
	// Cursor: every item of the pass's kinds whose digest is <= Cursor is
	// being deleted or gone. "" is before every digest.
	Cursor string `json:"cursor,omitempty"`
	// Done: every such item <= Done is gone (its deletion returned).
	Done string `json:"done,omitempty"`
	// Kept are digests of the sweep set the sweep keeps after all:
	// writers pinned them (or something referencing them) in time.
	Kept []string `json:"kept,omitempty"`
	// MaxAge is the collector's bound on how stale a registry's copy of
	// the state may be when it commits a write (Rmax): the collector
	// waits that long after moving the cursor before it looks for pins.
	MaxAge time.Duration `json:"maxAge,omitempty"`
	// Nonce makes every write's content, hence its version, unique.
	Nonce string `json:"nonce,omitempty"`
}

// conditional returns the driver's compare-and-swap.
func (r *Registry) conditional() (driver.ConditionalWriter, error) {
	cw, ok := driver.As[driver.ConditionalWriter](r.driver)
	if !ok {
		return nil, fmt.Errorf("the %s storage driver cannot write conditionally, which online garbage collection needs", r.driver.Name())
	}
	return cw, nil
}

// ReadGCState reads the collector's state and its version. A store where
// no online collection ever ran has none: the zero state, version "".
func (r *Registry) ReadGCState(ctx context.Context) (GCState, string, error) {
	cw, err := r.conditional()
	if err != nil {
		return GCState{}, "", err
	}
	b, v, err := cw.GetContentVersion(ctx, gcStatePath())
	if isNotFound(err) {
		return GCState{}, "", nil
	}
	if err != nil {
		return GCState{}, "", fmt.Errorf("reading the collector state: %w", err)
	}
	var st GCState
	if err := json.Unmarshal(b, &st); err != nil {
		return GCState{}, "", fmt.Errorf("the collector state is corrupt: %w", err)
	}
	return st, v, nil
}

// WriteGCState replaces the collector's state if it is still at version
// ifVersion ("": if there is none), and returns the new version. A
// collector that lost its lease finds the state moved on:
// driver.ErrPreconditionFailed.
func (r *Registry) WriteGCState(ctx context.Context, st GCState, ifVersion string) (string, error) {
	cw, err := r.conditional()
	if err != nil {
		return "", err
	}
	st.Nonce = uuid.NewString()
	b, err := json.Marshal(st)
	if err != nil {
		return "", err
	}
	v, err := cw.PutContentIf(ctx, gcStatePath(), b, ifVersion)
	if err != nil {
		return "", fmt.Errorf("writing the collector state: %w", err)
	}
	return v, nil
}

// ReadGCLease reads the collector lease: its content and version. No
// lease: driver.ErrPathNotFound.
func (r *Registry) ReadGCLease(ctx context.Context) (b []byte, version string, err error) {
	cw, err := r.conditional()
	if err != nil {
		return nil, "", err
	}
	return cw.GetContentVersion(ctx, gcLeasePath())
}

// GCLeaseWritten is the store's time of the lease's last write.
func (r *Registry) GCLeaseWritten(ctx context.Context) (time.Time, error) {
	fi, err := r.driver.Stat(ctx, gcLeasePath())
	if err != nil {
		return time.Time{}, err
	}
	return fi.ModTime(), nil
}

// WriteGCLease writes the collector lease if it is at version ifVersion
// ("": if there is none).
func (r *Registry) WriteGCLease(ctx context.Context, b []byte, ifVersion string) (string, error) {
	cw, err := r.conditional()
	if err != nil {
		return "", err
	}
	return cw.PutContentIf(ctx, gcLeasePath(), b, ifVersion)
}

// StorageNow returns the store's clock: it writes a small probe object and
// reads back its modification time. Every grace period of the online
// collector is measured in it (object times against StorageNow), never in
// one host's clock, so instances whose clocks disagree still agree on ages.
// On S3 the time has a resolution of one second, rounded down: ages come
// out at most a second short, never long.
func (r *Registry) StorageNow(ctx context.Context) (time.Time, error) {
	if err := r.driver.PutContent(ctx, gcClockPath(), []byte(uuid.NewString())); err != nil {
		return time.Time{}, fmt.Errorf("reading the storage clock: %w", err)
	}
	fi, err := r.driver.Stat(ctx, gcClockPath())
	if err != nil {
		return time.Time{}, fmt.Errorf("reading the storage clock: %w", err)
	}
	if fi.ModTime().IsZero() {
		return time.Time{}, fmt.Errorf("the %s storage driver has no modification times", r.driver.Name())
	}
	return fi.ModTime(), nil
}

// GCKind is the kind of an item of a plan.
type GCKind byte

// Kinds of plan items, in the order they sort within a digest.
const (
	GCBlob     GCKind = 'b' // blob content: blobs/<alg>/<xx>/<hex>/data
	GCLink     GCKind = 'l' // a repository's link to a blob: _layers/<alg>/<hex>/link
	GCRevision GCKind = 'r' // a manifest revision of a repository
)

// Pass is the sweep pass that deletes items of kind k.
func (k GCKind) Pass() string {
	if k == GCBlob {
		return GCPassBlobs
	}
	return GCPassLinks
}

func (k GCKind) mask() uint8 {
	switch k {
	case GCBlob:
		return maskBlob
	case GCLink:
		return maskLink
	}
	return maskRevision
}

// Masks of the plan's DigestSet: which kinds of items a digest has.
const (
	maskBlob      uint8 = 1
	maskLink      uint8 = 2
	maskRevision  uint8 = 4
	maskLinksPass       = maskLink | maskRevision
)

// GCItem is one item a plan condemns.
type GCItem struct {
	Digest     digest.Digest
	Kind       GCKind
	Repository string // links and revisions
	Size       int64  // blobs
}

func (it GCItem) less(o GCItem) int {
	if c := strings.Compare(string(it.Digest), string(o.Digest)); c != 0 {
		return c
	}
	if it.Kind != o.Kind {
		return int(it.Kind) - int(o.Kind)
	}
	return strings.Compare(it.Repository, o.Repository)
}

// SortGCItems sorts items as plans keep them: by digest, kind, repository.
func SortGCItems(items []GCItem) { slices.SortFunc(items, GCItem.less) }

// GCPlan is a plan (or a sweep set): the items condemned, sorted.
type GCPlan struct {
	ID      string
	Epoch   uint64
	Created time.Time // store time, as the collector measured it
	Items   []GCItem
}

const planMagic = "registryd-gc-plan 1"

// encode is the plan's text form: a header, then one line per item,
// "<digest> <kind> <size|repository>", in sort order.
func (p *GCPlan) encode() []byte {
	var b bytes.Buffer
	b.Grow(64 + 100*len(p.Items))
	fmt.Fprintf(&b, "%s\nid %s\nepoch %d\ncreated %s\nitems %d\n\n", planMagic, p.ID, p.Epoch, p.Created.UTC().Format(time.RFC3339Nano), len(p.Items))
	for _, it := range p.Items {
		b.WriteString(string(it.Digest))
		b.WriteByte(' ')
		b.WriteByte(byte(it.Kind))
		b.WriteByte(' ')
		if it.Kind == GCBlob {
			b.WriteString(strconv.FormatInt(it.Size, 10))
		} else {
			b.WriteString(it.Repository)
		}
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// decodeGCPlan parses a plan; each item goes to fn (the collector keeps
// them, registries index them).
func decodeGCPlan(b []byte, fn func(GCItem)) (*GCPlan, error) {
	p := &GCPlan{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	if !sc.Scan() || sc.Text() != planMagic {
		return nil, errors.New("not a plan")
	}
	want := -1
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			break
		}
		k, v, _ := strings.Cut(line, " ")
		switch k {
		case "id":
			p.ID = v
		case "epoch":
			p.Epoch, _ = strconv.ParseUint(v, 10, 64)
		case "created":
			p.Created, _ = time.Parse(time.RFC3339Nano, v)
		case "items":
			want, _ = strconv.Atoi(v)
		}
	}
	n := 0
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 || len(f[1]) != 1 {
			return nil, fmt.Errorf("plan %s: bad line %q", p.ID, clip(sc.Text()))
		}
		d, err := digest.Parse(f[0])
		if err != nil {
			return nil, fmt.Errorf("plan %s: %w", p.ID, err)
		}
		it := GCItem{Digest: d, Kind: GCKind(f[1][0])}
		switch it.Kind {
		case GCBlob:
			if it.Size, err = strconv.ParseInt(f[2], 10, 64); err != nil {
				return nil, fmt.Errorf("plan %s: bad size in %q", p.ID, clip(sc.Text()))
			}
		case GCLink, GCRevision:
			if ValidateName(f[2]) != nil {
				return nil, fmt.Errorf("plan %s: bad repository in %q", p.ID, clip(sc.Text()))
			}
			it.Repository = f[2]
		default:
			return nil, fmt.Errorf("plan %s: bad kind in %q", p.ID, clip(sc.Text()))
		}
		fn(it)
		n++
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	// A plan is written whole (PutContent is atomic), so a short one is
	// not torn but corrupt: refuse it rather than sweep part of it.
	if n != want {
		return nil, fmt.Errorf("plan %s: %d items, header says %d", p.ID, n, want)
	}
	return p, nil
}

var planIDRE = instanceIDRE

// WriteGCPlan stores plan p durably as plans/<p.ID>.
func (r *Registry) WriteGCPlan(ctx context.Context, p *GCPlan) error {
	return r.writePlanAt(ctx, gcPlanPath, p)
}

// WriteGCSweep stores the sweep set of plan p.ID as sweeps/<p.ID>.
func (r *Registry) WriteGCSweep(ctx context.Context, p *GCPlan) error {
	return r.writePlanAt(ctx, gcSweepPath, p)
}

func (r *Registry) writePlanAt(ctx context.Context, at func(string) string, p *GCPlan) error {
	if !planIDRE.MatchString(p.ID) {
		return fmt.Errorf("plan id %q is not valid", clip(p.ID))
	}
	if err := r.driver.PutContent(ctx, at(p.ID), p.encode()); err != nil {
		return fmt.Errorf("writing plan %s: %w", p.ID, err)
	}
	return nil
}

// ReadGCPlan reads plans/<id> with its items.
func (r *Registry) ReadGCPlan(ctx context.Context, id string) (*GCPlan, error) {
	return r.readPlanAt(ctx, gcPlanPath, id)
}

// ReadGCSweep reads the sweep set sweeps/<id> with its items.
func (r *Registry) ReadGCSweep(ctx context.Context, id string) (*GCPlan, error) {
	return r.readPlanAt(ctx, gcSweepPath, id)
}

func (r *Registry) readPlanAt(ctx context.Context, at func(string) string, id string) (*GCPlan, error) {
	b, err := r.readPlanBytes(ctx, at, id)
	if err != nil {
		return nil, err
	}
	var items []GCItem
	p, err := decodeGCPlan(b, func(it GCItem) { items = append(items, it) })
	if err != nil {
		return nil, err
	}
	p.Items = items
	return p, nil
}

func (r *Registry) readPlanBytes(ctx context.Context, at func(string) string, id string) ([]byte, error) {
	if !planIDRE.MatchString(id) {
		return nil, fmt.Errorf("plan id %q is not valid", clip(id))
	}
	b, err := r.driver.GetContent(ctx, at(id))
	if err != nil {
		return nil, fmt.Errorf("reading plan %s: %w", id, err)
	}
	return b, nil
}

// readPlanSet reads a plan (or sweep set) as a DigestSet whose masks say
// which kinds of items each digest has: what a registry keeps of it.
func (r *Registry) readPlanSet(ctx context.Context, at func(string) string, id string) (*DigestSet, error) {
	b, err := r.readPlanBytes(ctx, at, id)
	if err != nil {
		return nil, err
	}
	var sb DigestSetBuilder
	if _, err := decodeGCPlan(b, func(it GCItem) { sb.Add(it.Digest, it.Kind.mask()) }); err != nil {
		return nil, err
	}
	return sb.Build(), nil
}

// DeleteGCPlan removes plan id, its sweep set and its pins. Missing ones
// are not an error.
func (r *Registry) DeleteGCPlan(ctx context.Context, id string) error {
	if !planIDRE.MatchString(id) {
		return fmt.Errorf("plan id %q is not valid", clip(id))
	}
	var errs []error
	for _, p := range []string{gcPinsDir(id), gcSweepPath(id), gcPlanPath(id)} {
		if err := r.driver.Delete(ctx, p); err != nil && !isNotFound(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// GCPlanIDs lists the plans in the store (a crash can leave one that no
// state names; the collector removes those).
func (r *Registry) GCPlanIDs(ctx context.Context) ([]string, error) {
	var ids []string
	for _, dir := range []string{path.Dir(gcPlanPath("x")), path.Dir(gcSweepPath("x")), path.Dir(gcPinsDir("x"))} {
		ps, err := r.driver.List(ctx, dir)
		if isNotFound(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, p := range ps {
			if id := path.Base(p); planIDRE.MatchString(id) && !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// WriteGCPin records that a writer relied on d while plan condemned it.
func (r *Registry) WriteGCPin(ctx context.Context, plan string, d digest.Digest) error {
	if !planIDRE.MatchString(plan) || d.Validate() != nil {
		return fmt.Errorf("pin %s in plan %s: invalid", clip(string(d)), clip(plan))
	}
	return r.driver.PutContent(ctx, gcPinPath(plan, d), []byte(time.Now().UTC().Format(time.RFC3339Nano)))
}

// GCPins lists the digests pinned in plan.
func (r *Registry) GCPins(ctx context.Context, plan string) ([]digest.Digest, error) {
	if !planIDRE.MatchString(plan) {
		return nil, fmt.Errorf("plan id %q is not valid", clip(plan))
	}
	ps, err := r.driver.List(ctx, gcPinsDir(plan))
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing the pins of plan %s: %w", plan, err)
	}
	var out []digest.Digest
	for _, p := range ps {
		alg, hex, ok := strings.Cut(path.Base(p), "-")
		if !ok {
			continue
		}
		if d, ok := digestFromDirs(alg, hex); ok {
			out = append(out, d)
		}
	}
	return out, nil
}

// WriteGCRun stores a run report (JSON) under runs/<id>.
func (r *Registry) WriteGCRun(ctx context.Context, id string, b []byte) error {
	if !planIDRE.MatchString(id) {
		return fmt.Errorf("run id %q is not valid", clip(id))
	}
	return r.driver.PutContent(ctx, gcRunPath(id), b)
}

// GCRunIDs lists the stored run reports' ids, sorted.
func (r *Registry) GCRunIDs(ctx context.Context) ([]string, error) {
	ps, err := r.driver.List(ctx, gcRunsRoot())
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(ps))
	for _, p := range ps {
		if id := path.Base(p); planIDRE.MatchString(id) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// ReadGCRun reads the run report id.
func (r *Registry) ReadGCRun(ctx context.Context, id string) ([]byte, error) {
	if !planIDRE.MatchString(id) {
		return nil, fmt.Errorf("run id %q is not valid", clip(id))
	}
	return r.driver.GetContent(ctx, gcRunPath(id))
}

// DeleteGCRun removes the run report id.
func (r *Registry) DeleteGCRun(ctx context.Context, id string) error {
	if !planIDRE.MatchString(id) {
		return fmt.Errorf("run id %q is not valid", clip(id))
	}
	if err := r.driver.Delete(ctx, gcRunPath(id)); err != nil && !isNotFound(err) {
		return err
	}
	return nil
}
