package admin

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/registryd/registryd/auth"
	"github.com/registryd/registryd/errcode"
	"github.com/registryd/registryd/notifications"
	"github.com/registryd/registryd/storage"
)

// Service is the admin API's logic over a storage.Registry: the HTTP
// handlers (handler.go) and the web UI call these methods, so that there
// is one implementation of each. It decides nothing about who the caller
// is: methods that list take a May, answering what the caller may do,
// and the HTTP handler has already authorized the rest.
type Service struct {
	reg  *storage.Registry
	opts Options
}

// Options configure a Service.
type Options struct {
	// DeleteEnabled allows repository deletes (storage.delete.enabled).
	DeleteEnabled bool
	// ReadOnly refuses every change (storage.maintenance.readonly).
	ReadOnly bool
	// Version is the registry's version, for Info.
	Version string
	// GC and Retention run collections and retention (nil: the feature is
	// off, and its endpoints say so).
	GC        Maintainer
	Retention Maintainer
	// GCOff says why GC is nil (the setting that turns the collector on,
	// read-only mode, a store without conditional writes): its endpoints
	// answer with it, so that an operator learns what to change.
	GCOff string
	// Notifier receives the event of a repository delete; nil sends none.
	Notifier *notifications.Notifier
}

// NewService returns the admin service over reg.
func NewService(reg *storage.Registry, opts Options) *Service {
	if opts.Version == "" {
		opts.Version = "dev"
	}
	return &Service{reg: reg, opts: opts}
}

// May answers whether the caller may have an access; nil allows all.
type May func(auth.Access) bool

func (m May) allows(a auth.Access) bool { return m == nil || m(a) }

// Page limits.
const (
	DefaultPage = 100
	MaxPage     = 1000
)

// Info is what this server and this caller can do.
func (s *Service) Info(callerName string, may May) Info {
	return Info{
		Version:  Version,
		Registry: "registryd " + s.opts.Version,
		Features: Features{
			DeleteEnabled: s.opts.DeleteEnabled,
			ReadOnly:      s.opts.ReadOnly,
			GC:            s.opts.GC != nil,
			Retention:     s.opts.Retention != nil,
			PushTimes:     true,
			PullTimes:     s.reg.PullTimesEnabled(),
			Sizes:         true,
		},
		Caller: Caller{Name: callerName, Admin: may.allows(auth.Admin)},
	}
}

// Discover is the OCI extensions discovery document.
func Discover() Discovery {
	return Discovery{Extensions: []Extension{{
		Name:        ExtensionName,
		URL:         "https://github.com/registryd/registryd/blob/main/docs/admin-api.md",
		Description: "registryd administration: sizes, times, repository delete, retention, GC",
		Endpoints:   []string{strings.TrimPrefix(Prefix, "/v2/")},
	}}}
}

// RepositoryQuery selects a page of repositories.
type RepositoryQuery struct {
	// N is the page size: 0 selects DefaultPage, more than MaxPage is cut
	// to it.
	N int
	// Last is the last name of the previous page.
	Last string
	// Prefix keeps names starting with it; Q names containing it,
	// case-insensitively.
	Prefix string
	Q      string
}

// Repositories lists a page of the repositories the caller may pull, with
// their tag count, last push and sizes; more tells whether another page
// follows. Cost: without Q, the catalog walk of the page
// (storage.CatalogPrefix, O(page)); with Q, a scan of the name index in
// memory (storage.SearchCatalog); then the page's summaries.
func (s *Service) Repositories(ctx context.Context, q RepositoryQuery, may May) (RepositoryList, bool, error) {
	n := clampPage(q.N)
	keep := func(name string) bool { return may.allows(auth.Repository(name, auth.ActionPull)) }
	var names []string
	var more bool
	var err error
	if q.Q != "" {
		names, more, err = s.reg.SearchCatalog(ctx, q.Prefix, strings.ToLower(q.Q), q.Last, n, keep)
	} else {
		names, more, err = s.reg.CatalogPrefix(ctx, q.Prefix, q.Last, n, keep)
	}
	if err != nil {
		return RepositoryList{}, false, err
	}
	sums, err := s.reg.RepositorySummaries(ctx, names)
	if err != nil {
		return RepositoryList{}, false, err
	}
	out := RepositoryList{Repositories: make([]Repository, 0, len(sums))}
	for _, sum := range sums {
		out.Repositories = append(out.Repositories, repositoryOf(sum))
	}
	return out, more, nil
}

func clampPage(n int) int {
	switch {
	case n <= 0:
		return DefaultPage
	case n > MaxPage:
		return MaxPage
	}
	return n
}

// repositoryOf is a summary as the API shows it: no size while the size
// index is in its first sync after a start.
func repositoryOf(sum storage.RepositorySummary) Repository {
	r := Repository{Name: sum.Name, TagCount: sum.TagCount, Manifests: sum.Manifests, LastPushed: timePtr(sum.LastPushed)}
	if sum.Sized {
		r.Size = &Size{Logical: sum.Size.Logical, Unique: sum.Size.Unique, Exclusive: sum.Size.Exclusive}
	}
	return r
}

// NamespaceCounts counts repositories below a namespace.
type NamespaceCounts struct {
	Total  int            // matching repositories below the prefix
	Direct int            // those directly in it (no further "/")
	Below  map[string]int // per next name component, those below it
}

// Namespaces counts the repositories the caller may pull whose names
// start with prefix and contain q (case-insensitively): for a namespace
// tree beside a catalog page. From the name index: O(names) in memory.
func (s *Service) Namespaces(ctx context.Context, prefix, q string, may May) (NamespaceCounts, error) {
	keep := func(name string) bool { return may.allows(auth.Repository(name, auth.ActionPull)) }
	total, direct, below, err := s.reg.NamespaceCounts(ctx, prefix, strings.ToLower(q), keep)
	return NamespaceCounts{Total: total, Direct: direct, Below: below}, err
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// Repository describes one repository; NAME_UNKNOWN when it has no
// manifests or is being deleted.
func (s *Service) Repository(ctx context.Context, name string) (Repository, error) {
	if _, err := s.reg.Repository(name); err != nil {
		return Repository{}, err
	}
	sums, err := s.reg.RepositorySummaries(ctx, []string{name})
	if err != nil {
		return Repository{}, err
	}
	if len(sums) == 0 {
		return Repository{}, errcode.New(errcode.NameUnknown).WithDetail(map[string]string{"name": name})
	}
	return repositoryOf(sums[0]), nil
}

// Tag orders.
const (
	SortName   = "name"
	SortPushed = "pushed"
)

// TagQuery selects a page of a repository's tags.
type TagQuery struct {
	N    int    // as RepositoryQuery.N
	Last string // the last tag name of the previous page
	// Sort is SortName (default) or SortPushed, newest first (ties by
	// name).
	Sort string
}

// Tags lists a page of the repository's tags with their digest, media
// and artifact type, platforms, size and times. A page costs the page,
// by name as by push time (the push-order index, storage.TagInfosByPush).
func (s *Service) Tags(ctx context.Context, name string, q TagQuery) (TagList, bool, error) {
	repo, err := s.reg.Repository(name)
	if err != nil {
		return TagList{}, false, err
	}
	n := clampPage(q.N)
	var infos []storage.TagInfo
	more := false
	switch q.Sort {
	case "", SortName:
		infos, more, err = repo.TagInfosPage(ctx, q.Last, n)
	case SortPushed:
		infos, more, err = repo.TagInfosByPush(ctx, q.Last, n)
	default:
		return TagList{}, false, badParam("sort", q.Sort, "name or pushed")
	}
	if err != nil {
		return TagList{}, false, err
	}
	ds := make([]digest.Digest, len(infos))
	for i, in := range infos {
		ds[i] = in.Digest
	}
	images, err := repo.Images(ctx, ds)
	if err != nil {
		return TagList{}, false, err
	}
	out := TagList{Name: name, Tags: make([]Tag, len(infos))}
	for i, in := range infos {
		img := images[i]
		out.Tags[i] = Tag{
			Name: in.Name, Digest: in.Digest.String(), MediaType: img.MediaType, ArtifactType: img.ArtifactType,
			Platforms: img.Platforms, Size: img.Size, Pushed: timePtr(in.Pushed), LastPulled: timePtr(in.LastPulled),
		}
	}
	return out, more, nil
}

// Impact is what DELETE /v2/NAME/manifests/DIGEST would take along.
func (s *Service) Impact(ctx context.Context, name, ref string) (Impact, error) {
	repo, err := s.reg.Repository(name)
	if err != nil {
		return Impact{}, err
	}
	d, err := storage.ParseDigest(ref)
	if err != nil {
		return Impact{}, err
	}
	imp, err := repo.ManifestImpact(ctx, d)
	if err != nil {
		return Impact{}, err
	}
	out := Impact{Digest: imp.Digest.String(), Tags: imp.Tags, Referrers: []Referrer{}, Exclusive: imp.Exclusive}
	for _, r := range imp.Referrers {
		out.Referrers = append(out.Referrers, Referrer{Digest: r.Digest.String(), ArtifactType: r.ArtifactType, MediaType: r.MediaType, Size: r.Size})
	}
	return out, nil
}

// Usage is the size of a namespace prefix ("" for the registry). The
// caller must be an admin, or (with a prefix) may pull every repository
// under it: exclusive bytes say something of every repository in scope.
func (s *Service) Usage(ctx context.Context, prefix string, may May) (Usage, error) {
	if !may.allows(auth.Admin) {
		if prefix == "" {
			return Usage{}, errcode.Newf(errcode.Denied, "the registry's usage needs the admin action").WithStatus(403)
		}
		names, _, err := s.reg.CatalogPrefix(ctx, prefix, "", -1, nil)
		if err != nil {
			return Usage{}, err
		}
		for _, n := range names {
			if !may.allows(auth.Repository(n, auth.ActionPull)) {
				return Usage{}, errcode.Newf(errcode.Denied, "the usage of %q needs pull on every repository under it, or the admin action", prefix)
			}
		}
	}
	u, err := s.reg.Usage(ctx, prefix)
	if err != nil {
		return Usage{}, err
	}
	return Usage{Prefix: prefix, Repositories: u.Repositories,
		Size: Size{Logical: u.Logical, Unique: u.Unique, Exclusive: u.Exclusive}, Total: u.Total}, nil
}

// EventSource is who asked for a change, for its event.
type EventSource struct {
	Request notifications.Request
	Actor   string
}

// DeleteRepository deletes the repository (storage.DeleteRepository) and
// sends its event. It needs deletes enabled and the registry writable.
func (s *Service) DeleteRepository(ctx context.Context, name string, src EventSource) (RepositoryDeleted, error) {
	if err := s.deletable(); err != nil {
		return RepositoryDeleted{}, err
	}
	res, err := s.reg.DeleteRepository(ctx, name)
	if err != nil {
		return RepositoryDeleted{}, err
	}
	s.notify(src, notifications.Target{Repository: name})
	return RepositoryDeleted{Name: res.Name, Tags: res.Tags, Manifests: res.Manifests}, nil
}

// writable refuses changes when deletes are off or the registry is
// read-only.
func (s *Service) deletable() error {
	if s.opts.ReadOnly {
		return errcode.Newf(errcode.Unsupported, "the registry is in read-only mode (storage.maintenance.readonly): nothing can be deleted")
	}
	if !s.opts.DeleteEnabled {
		return errcode.Newf(errcode.Unsupported, "deletes are disabled on this registry (storage.delete.enabled is false)")
	}
	return nil
}

func (s *Service) notify(src EventSource, target notifications.Target) {
	if !s.opts.Notifier.Enabled() {
		return
	}
	ev := notifications.Event{Action: notifications.ActionDelete, Target: target, Request: src.Request}
	ev.Actor.Name = src.Actor
	s.opts.Notifier.Notify(ev)
}

// DeleteTag deletes one tag (the manifest and its other tags stay), as
// DELETE /v2/NAME/manifests/TAG does, with its event. For the web UI.
func (s *Service) DeleteTag(ctx context.Context, name, tag string, src EventSource) error {
	if err := s.deletable(); err != nil {
		return err
	}
	repo, err := s.reg.Repository(name)
	if err != nil {
		return err
	}
	if err := s.reg.CheckWritable(ctx, name); err != nil {
		return err
	}
	target := notifications.Target{Repository: name, Tag: tag}
	if m, err := repo.GetManifest(ctx, tag); err == nil {
		target.Digest, target.MediaType = m.Digest.String(), m.MediaType
	}
	if err := repo.DeleteTag(ctx, tag); err != nil {
		return err
	}
	s.notify(src, target)
	return nil
}

// DeleteManifest deletes a manifest by digest with every tag pointing at
// it (Impact lists them first), as DELETE /v2/NAME/manifests/DIGEST does,
// with its event. For the web UI.
func (s *Service) DeleteManifest(ctx context.Context, name, ref string, src EventSource) error {
	if err := s.deletable(); err != nil {
		return err
	}
	repo, err := s.reg.Repository(name)
	if err != nil {
		return err
	}
	d, err := storage.ParseDigest(ref)
	if err != nil {
		return err
	}
	if err := s.reg.CheckWritable(ctx, name); err != nil {
		return err
	}
	if err := repo.DeleteManifest(ctx, d); err != nil {
		return err
	}
	s.notify(src, notifications.Target{Repository: name, Digest: d.String()})
	return nil
}

// Maintenance kinds.
const (
	KindGC        = "gc"
	KindRetention = "retention"
)

func (s *Service) maintainer(kind string) (Maintainer, error) {
	var m Maintainer
	switch kind {
	case KindGC:
		m = s.opts.GC
	case KindRetention:
		m = s.opts.Retention
	}
	if m == nil {
		return nil, errcode.Newf(errcode.Unsupported, "%s", s.off(kind))
	}
	return m, nil
}

// off says why kind is not available here.
func (s *Service) off(kind string) string {
	switch kind {
	case KindGC:
		if s.opts.GCOff != "" {
			return "online garbage collection is not enabled on this registry: " + s.opts.GCOff
		}
		return "online garbage collection is not enabled on this registry"
	case KindRetention:
		return "retention is not enabled on this registry"
	}
	return kind + " is not available on this registry"
}

// Maintenance is the status and last runs of kind (KindGC or
// KindRetention); a feature that is off answers enabled false, no runs
// and why it is off.
func (s *Service) Maintenance(ctx context.Context, kind string) (Maintenance, error) {
	m, err := s.maintainer(kind)
	if err != nil {
		return Maintenance{Runs: []Run{}, Off: s.off(kind)}, nil
	}
	st, err := m.Status(ctx)
	if st.Runs == nil {
		st.Runs = []Run{}
	}
	return st, err
}

// StartRun starts a run of kind now; with wait it returns the run's report
// once it is over (or ctx ends). A run under way is ErrBusy.
func (s *Service) StartRun(ctx context.Context, kind string, dryRun, wait bool) (string, *Run, error) {
	m, err := s.maintainer(kind)
	if err != nil {
		return "", nil, err
	}
	if s.opts.ReadOnly && !dryRun {
		return "", nil, errcode.Newf(errcode.Unsupported, "the registry is in read-only mode (storage.maintenance.readonly): only dry runs")
	}
	id, err := m.Start(ctx, dryRun)
	if errors.Is(err, ErrBusy) {
		return "", nil, errcode.Newf(errcode.TooManyRequests, "a %s run is already under way", kind).WithStatus(409).WithRetryAfter(10 * time.Second).Wrap(err)
	}
	if err != nil {
		return "", nil, err
	}
	if !wait {
		return id, nil, nil
	}
	run, err := m.Wait(ctx, id)
	if err != nil {
		return id, nil, err
	}
	return id, &run, nil
}

func badParam(name, value, want string) error {
	if len(value) > 100 {
		value = value[:100] + "..."
	}
	return errcode.Newf(errcode.Unsupported, "query parameter %s=%q: must be %s", name, value, want).WithStatus(400)
}
