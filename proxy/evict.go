package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/registryd/registryd/errcode"
	"github.com/registryd/registryd/storage"
)

// Eviction keeps the cache under proxy.cache.maxsize and drops images not
// pulled for proxy.ttl.
//
// The unit is an image as a client pulls it: a root manifest of a cache
// repository (one no other manifest of the repository lists as a child)
// with the children it lists, their configs and layers. Its last use is the
// latest pull of any of its manifests, from the registry's pull times
// (storage/times.go: recorded on every GET and HEAD, shared by instances
// through the storage), else when it was fetched (its tags' push records).
// Access refreshes an image, unlike distribution's TTL counted from the
// fetch (distribution#4659).
//
// Usage counts each stored digest once however many images share it: the
// manifests of cached images and the blobs they use that are linked into
// their repositories (fetched), at the sizes the manifests give. Above
// highwatermark percent of maxsize the least recently used images are
// evicted until usage is below lowwatermark percent.
//
// Evicting an image deletes its tags and manifest revisions from the cache
// repository, and the repository's links to the blobs no other image of
// it uses; never a blob. Blobs are reclaimed by garbage collection, which
// keeps every blob that any manifest still references, cached or hosted,
// in any repository: eviction can never break an image that is still
// cached, nor a hosted one (distribution#2367), and needs no
// storage.delete.enabled (distribution#4957). Until a collection has run,
// the bytes of evicted images are still on disk: the cap bounds the cached
// images, the collector (storage.maintenance.gc) the garbage. A pass or a
// purge that removed something calls Options.AfterEvict, which asks the
// online collector for a collection soon.
type evictor struct {
	p *Proxy

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
	kick   chan struct{}
	seen   map[string]time.Time // unit key: when this process first saw it (fallback age)
	last   EvictionReport       // of the last pass
	lastAt time.Time
}

func newEvictor(p *Proxy) *evictor {
	return &evictor{p: p, kick: make(chan struct{}, 1), seen: map[string]time.Time{}}
}

// enabled reports whether there is anything to enforce.
func (e *evictor) enabled() bool { return e.p.opts.MaxSize > 0 || e.p.opts.TTL > 0 }

func (e *evictor) start(ctx context.Context) {
	if !e.enabled() {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cancel != nil {
		return
	}
	ctx, e.cancel = context.WithCancel(ctx)
	e.done = make(chan struct{})
	interval := e.p.opts.Interval
	if interval <= 0 {
		interval = time.Minute
	}
	if e.p.opts.MaxSize <= 0 {
		// Age alone: a pass walks every repository, and an image a week
		// old can wait an hour more.
		interval = max(interval, e.p.opts.TTL/168)
	}
	go func() {
		defer close(e.done)
		t := time.NewTimer(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			case <-e.kick:
			}
			if _, err := e.pass(ctx); err != nil && ctx.Err() == nil {
				e.p.log.WithError(err).Warn("proxy: cache eviction")
			}
			t.Reset(interval)
		}
	}()
}

func (e *evictor) stop() {
	e.mu.Lock()
	cancel, done := e.cancel, e.done
	e.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

// added is told of content stored in the cache: with a size cap, the next
// pass comes sooner.
func (e *evictor) added(repo string, m *storage.Manifest) { e.poke() }

func (e *evictor) blobAdded(repo string, d digest.Digest, size int64) { e.poke() }

func (e *evictor) poke() {
	if e.p.opts.MaxSize <= 0 {
		return
	}
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// image is one eviction unit.
type cachedImage struct {
	repo    *storage.Repository
	root    digest.Digest
	members []digest.Digest // root and its children present in the repository
	tags    []string
	uses    []digest.Digest // stored digests it holds: members and linked blobs
	access  time.Time
	up      string
}

// EvictionReport says what a pass found and did.
type EvictionReport struct {
	Images  int   // cached images
	Usage   int64 // bytes before the pass
	After   int64 // bytes after it
	Evicted []EvictedImage
}

// EvictedImage is one image a pass evicted.
type EvictedImage struct {
	Repository string
	Digest     digest.Digest
	Tags       []string
	Reason     string // "size" or "age"
	LastUsed   time.Time
}

// pass scans the cache, evicts what it must and reports.
func (e *evictor) pass(ctx context.Context) (EvictionReport, error) {
	p := e.p
	images, sizes, err := e.scan(ctx)
	if err != nil {
		return EvictionReport{}, err
	}
	refs := map[digest.Digest]int{}
	// Links per repository: an evicted image's blob links go when no
	// image left in the repository uses the blob.
	repoRefs := map[string]map[digest.Digest]int{}
	var usage int64
	for _, im := range images {
		rr := repoRefs[im.repo.Name()]
		if rr == nil {
			rr = map[digest.Digest]int{}
			repoRefs[im.repo.Name()] = rr
		}
		for _, d := range im.uses {
			if refs[d] == 0 {
				usage += sizes[d]
			}
			refs[d]++
			rr[d]++
		}
	}
	rep := EvictionReport{Images: len(images), Usage: usage}
	sort.Slice(images, func(i, j int) bool { return images[i].access.Before(images[j].access) })

	now := p.now()
	high, low := p.opts.MaxSize*int64(p.opts.High)/100, p.opts.MaxSize*int64(p.opts.Low)/100
	overCap := p.opts.MaxSize > 0 && usage > high
	for _, im := range images {
		if len(im.members) == 0 {
			continue // blobs without a manifest: the collector's
		}
		reason := ""
		switch {
		case p.opts.TTL > 0 && now.Sub(im.access) > p.opts.TTL:
			reason = "age"
		case overCap && usage > low:
			reason = "size"
		default:
			continue
		}
		rr := repoRefs[im.repo.Name()]
		var unlink []digest.Digest
		for _, d := range im.uses {
			if rr[d]--; rr[d] == 0 {
				unlink = append(unlink, d)
			}
		}
		if err := e.evict(ctx, im, unlink); err != nil {
			if ctx.Err() != nil {
				return rep, err
			}
			p.log.WithError(err).WithField("repository", im.repo.Name()).Warn("proxy: evicting a cached image")
			continue
		}
		for _, d := range im.uses {
			if refs[d]--; refs[d] == 0 {
				usage -= sizes[d]
			}
		}
		p.m.evictions.WithLabelValues(im.up, reason).Inc()
		rep.Evicted = append(rep.Evicted, EvictedImage{Repository: im.repo.Name(), Digest: im.root, Tags: im.tags, Reason: reason, LastUsed: im.access})
	}
	rep.After = usage
	p.m.cacheBytes.Set(float64(usage))
	e.mu.Lock()
	e.last, e.lastAt = rep, p.now()
	e.mu.Unlock()
	if len(rep.Evicted) > 0 {
		p.log.WithFields(map[string]any{"evicted": len(rep.Evicted), "bytes_before": rep.Usage, "bytes_after": usage}).Info("proxy: cache eviction")
		p.afterEvict()
	}
	return rep, nil
}

// afterEvict asks for a collection of what eviction left unreferenced.
func (p *Proxy) afterEvict() {
	if p.opts.AfterEvict != nil {
		p.opts.AfterEvict()
	}
}

// evict deletes an image's tags and manifests from its cache repository,
// then the repository's links to the blobs (unlink) only it used.
func (e *evictor) evict(ctx context.Context, im *cachedImage, unlink []digest.Digest) error {
	for _, t := range im.tags {
		if err := im.repo.DeleteTag(ctx, t); err != nil && !errcode.Is(err, errcode.ManifestUnknown) {
			return err
		}
	}
	for _, d := range im.members {
		if err := im.repo.DeleteManifest(ctx, d); err != nil && !errcode.Is(err, errcode.ManifestUnknown) {
			return err
		}
	}
	for _, d := range unlink {
		if err := im.repo.UnlinkLayer(ctx, d); err != nil {
			return err
		}
	}
	e.p.forgetRepo(im.repo.Name())
	return nil
}

// sizedManifest reads the sizes a manifest gives its references.
type sizedManifest struct {
	Config *struct {
		Digest digest.Digest `json:"digest"`
		Size   int64         `json:"size"`
	} `json:"config"`
	Layers []struct {
		Digest digest.Digest `json:"digest"`
		Size   int64         `json:"size"`
	} `json:"layers"`
	Manifests []struct {
		Digest digest.Digest `json:"digest"`
	} `json:"manifests"`
}

// scan reads every cache repository into images, and the size of every
// digest they hold.
func (e *evictor) scan(ctx context.Context) ([]*cachedImage, map[digest.Digest]int64, error) {
	p := e.p
	var images []*cachedImage
	sizes := map[digest.Digest]int64{}
	seenKeys := map[string]bool{}
	err := p.reg.WalkRepositories(ctx, func(repo *storage.Repository) error {
		up := e.cacheUpstream(repo.Name())
		if up == "" {
			return nil
		}
		var revs []digest.Digest
		if err := repo.Revisions(ctx, func(d digest.Digest) error { revs = append(revs, d); return nil }); err != nil {
			return err
		}
		linked := map[digest.Digest]bool{}
		if err := repo.LayerLinks(ctx, func(d digest.Digest) error { linked[d] = true; return nil }); err != nil {
			return err
		}
		tags, err := repo.TagsAndTargets(ctx)
		if err != nil {
			return err
		}
		children := map[digest.Digest][]digest.Digest{}
		blobs := map[digest.Digest][]digest.Digest{}
		isChild := map[digest.Digest]bool{}
		present := map[digest.Digest]bool{}
		for _, d := range revs {
			b, err := p.reg.ManifestContent(ctx, d)
			if err != nil {
				if storage.ErrNotFound(err) || errors.Is(err, storage.ErrCorruptContent) {
					continue // nothing to pull: its revision goes with a purge
				}
				return err
			}
			present[d] = true
			sizes[d] = int64(len(b))
			var sm sizedManifest
			_ = json.Unmarshal(b, &sm)
			if sm.Config != nil && sm.Config.Digest.Validate() == nil {
				blobs[d] = append(blobs[d], sm.Config.Digest)
				sizes[sm.Config.Digest] = sm.Config.Size
			}
			for _, l := range sm.Layers {
				if l.Digest.Validate() == nil {
					blobs[d] = append(blobs[d], l.Digest)
					sizes[l.Digest] = l.Size
				}
			}
			for _, c := range sm.Manifests {
				if c.Digest.Validate() == nil {
					children[d] = append(children[d], c.Digest)
					isChild[c.Digest] = true
				}
			}
		}
		tagsOf := map[digest.Digest][]string{}
		for t, d := range tags {
			tagsOf[d] = append(tagsOf[d], t)
		}
		for _, root := range revs {
			if !present[root] || isChild[root] && len(tagsOf[root]) == 0 {
				continue
			}
			im := &cachedImage{repo: repo, root: root, up: up}
			work := []digest.Digest{root}
			inImage := map[digest.Digest]bool{}
			for len(work) > 0 {
				d := work[len(work)-1]
				work = work[:len(work)-1]
				if inImage[d] || !present[d] {
					continue
				}
				inImage[d] = true
				im.uses = append(im.uses, d)
				if d != root && len(tagsOf[d]) > 0 {
					// A child with tags of its own is an image of its
					// own too: it holds this one's bytes but goes with
					// its own tags.
					continue
				}
				im.members = append(im.members, d)
				im.tags = append(im.tags, tagsOf[d]...)
				for _, b := range blobs[d] {
					if linked[b] {
						im.uses = append(im.uses, b)
					}
				}
				work = append(work, children[d]...)
			}
			// Children of a tagged child stay with the child's tag; an
			// index's children that another root also lists are shared.
			sort.Strings(im.tags)
			im.access = e.lastUse(ctx, im)
			seenKeys[repo.Name()+"@"+root.String()] = true
			images = append(images, im)
		}
		// Blobs linked here that no cached manifest uses (fetched by
		// digest alone, or a manifest cached since the listing) are not
		// counted: garbage collection removes what nothing references.
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	// Forget first sightings of images that are gone.
	e.mu.Lock()
	for k := range e.seen {
		if !seenKeys[k] {
			delete(e.seen, k)
		}
	}
	e.mu.Unlock()
	return images, sizes, nil
}

// lastUse is the image's last pull, else its fetch (its tags' push
// records), else when this process first saw it.
func (e *evictor) lastUse(ctx context.Context, im *cachedImage) time.Time {
	var last time.Time
	for _, d := range im.members {
		if t, err := im.repo.LastPulled(ctx, d); err == nil && t.After(last) {
			last = t
		}
	}
	if last.IsZero() && len(im.tags) > 0 {
		if infos, err := im.repo.TagInfosOf(ctx, im.tags); err == nil {
			for _, in := range infos {
				if in.Pushed.After(last) {
					last = in.Pushed
				}
			}
		}
	}
	if last.IsZero() {
		key := im.repo.Name() + "@" + im.root.String()
		e.mu.Lock()
		t, ok := e.seen[key]
		if !ok {
			t = e.p.now()
			e.seen[key] = t
		}
		e.mu.Unlock()
		last = t
	}
	return last
}

// cacheUpstream is the upstream a repository caches, "" for a hosted one.
func (e *evictor) cacheUpstream(name string) string {
	p := e.p
	if p.opts.All {
		return p.upstreams[0].name
	}
	for _, u := range p.upstreams {
		if u.namespace != "" && strings.HasPrefix(name, u.namespace+"/") {
			return u.name
		}
	}
	return ""
}

// Evict runs one eviction pass now (for tests and the admin API).
func (p *Proxy) Evict(ctx context.Context) (EvictionReport, error) { return p.evict.pass(ctx) }
