package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/registryd/registryd/errcode"
	"github.com/registryd/registryd/notifications"
	"github.com/registryd/registryd/storage"
)

// manifestResult is what one upstream round of a manifest request found.
type manifestResult struct {
	m     *storage.Manifest
	stale error // set when m is the cached copy served because the upstream failed
}

// Manifest resolves ref for a client, from the cache or the upstream.
//
// By digest: the cache answers whenever it has it; the upstream is never
// asked again for content it can only confirm. By tag: the cached tag is
// served as it is within the upstream's revalidate interval of its last
// check; after that one HEAD asks the upstream for the tag's digest (Docker
// Hub does not count HEADs as pulls), and only a changed digest is fetched
// (GET by that digest) and the tag moved. When the upstream fails (timeout,
// refused, 5xx, 429, 401, its circuit open) a cached tag is served with a
// Warning header; with nothing cached the client gets the upstream's
// answer (404 as MANIFEST_UNKNOWN, 429 as 429 with Retry-After, an outage as
// 503). Concurrent requests for one reference share one upstream round.
// h receives the headers the answer needs (Warning).
func (r *Repo) Manifest(ctx context.Context, h http.Header, ref string, head bool) (*storage.Manifest, error) {
	m, err := r.manifest(ctx, h, ref)
	if err == nil && !head {
		r.p.m.requests.WithLabelValues("manifest", r.up.name).Inc()
		r.p.m.pushedBytes.WithLabelValues("manifest", r.up.name).Add(float64(len(m.Content)))
	}
	return m, err
}

func (r *Repo) manifest(ctx context.Context, h http.Header, ref string) (*storage.Manifest, error) {
	p := r.p
	unknown := func() *errcode.Error {
		return errcode.New(errcode.ManifestUnknown).WithDetail(map[string]string{"reference": clip(ref, 200)})
	}
	cached, err := r.local.GetManifest(ctx, ref)
	if err != nil && !errcode.Is(err, errcode.ManifestUnknown) {
		return nil, err
	}
	byDigest := storage.IsDigest(ref)
	if cached != nil && (byDigest || p.isFresh(r.key(ref), r.up.revalidateEvery())) {
		p.m.hits.WithLabelValues("manifest", r.up.name).Inc()
		return cached, nil
	}
	if byDigest {
		if _, err := storage.ParseDigest(ref); err != nil {
			return nil, err
		}
	} else if !storage.ValidTag(ref) {
		return nil, unknown()
	}
	if cached == nil && p.isNotFound(r.key(ref)) {
		return nil, unknown()
	}
	res, shared, err := p.flight.do(ctx, "m|"+r.key(ref), func() (manifestResult, error) {
		return r.refresh(ref, cached)
	})
	if shared {
		p.m.coalesced.WithLabelValues("manifest", r.up.name).Inc()
	}
	if err != nil {
		return nil, clientError(err, unknown)
	}
	if res.stale != nil {
		setWarning(h, res.stale)
		p.m.stale.WithLabelValues("manifest", r.up.name).Inc()
	} else if res.m != nil && cached != nil && res.m.Digest == cached.Digest {
		p.m.hits.WithLabelValues("manifest", r.up.name).Inc()
	}
	return res.m, nil
}

// setWarning marks an answer served from the cache because the upstream
// failed (RFC 9111's 110 "Response is Stale").
func setWarning(h http.Header, cause error) {
	msg := strings.Map(func(c rune) rune {
		if c == '"' || c == '\\' || c < 0x20 || c > 0x7e {
			return ' '
		}
		return c
	}, clip(cause.Error(), 300))
	h.Set("Warning", `110 registryd "Response is Stale: `+msg+`"`)
}

// refresh is one upstream round for ref: a fetch when nothing is cached, a
// revalidation of a cached tag otherwise. It runs detached from the
// requests waiting for it, bounded by the upstream timeout.
func (r *Repo) refresh(ref string, cached *storage.Manifest) (manifestResult, error) {
	p := r.p
	ctx, cancel := context.WithTimeout(context.Background(), 2*r.up.timeout)
	defer cancel()
	key := r.key(ref)
	if cached == nil {
		m, err := r.fetchManifest(ctx, ref, "")
		if err != nil {
			if ue, ok := err.(*upstreamError); ok && ue.kind == kindNotFound {
				p.setNotFound(key, r.up.notFoundTTL)
			}
			return manifestResult{}, err
		}
		if !storage.IsDigest(ref) {
			p.setFresh(key)
		}
		return manifestResult{m: m}, nil
	}
	// A cached tag due for its check: HEAD, and GET only what changed.
	resp, err := r.up.do(ctx, request{method: http.MethodHead, repo: r.remote, path: r.remote + "/manifests/" + ref,
		header: http.Header{"Accept": manifestAccept}})
	if err != nil {
		return r.staleOr(cached, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		e := statusError(r.up.name, resp, "HEAD manifest "+r.remote+":"+ref)
		if e.kind == kindNotFound {
			// The tag is gone upstream. As distribution does, the cached
			// copy stays served (marked stale) until it is evicted: a
			// mirror is where images survive their upstream.
			p.setFresh(key)
			p.m.revalidated.WithLabelValues(r.up.name, "gone").Inc()
			return manifestResult{m: cached, stale: e}, nil
		}
		return r.staleOr(cached, e)
	}
	want, _ := digest.Parse(resp.Header.Get("Docker-Content-Digest"))
	if want == cached.Digest {
		p.setFresh(key)
		p.m.revalidated.WithLabelValues(r.up.name, "unchanged").Inc()
		return manifestResult{m: cached}, nil
	}
	p.m.revalidated.WithLabelValues(r.up.name, "changed").Inc()
	byRef := ref
	if want != "" {
		byRef = want.String()
	}
	m, err := r.fetchManifest(ctx, byRef, ref)
	if err != nil {
		return r.staleOr(cached, err)
	}
	p.setFresh(key)
	return manifestResult{m: m}, nil
}

// staleOr serves the cached copy in place of an upstream failure.
func (r *Repo) staleOr(cached *storage.Manifest, err error) (manifestResult, error) {
	var ue *upstreamError
	if errors.As(err, &ue) && ue.stalable() {
		r.p.m.revalidated.WithLabelValues(r.up.name, "failed").Inc()
		return manifestResult{m: cached, stale: ue}, nil
	}
	return manifestResult{}, err
}

// fetchManifest GETs a manifest from the upstream by ref and stores it,
// tagged tag (ref itself when it is a tag and tag is ""). The body must
// hash to the digest asked for, or to the one the upstream announces.
func (r *Repo) fetchManifest(ctx context.Context, ref, tag string) (*storage.Manifest, error) {
	up := r.up
	resp, err := up.do(ctx, request{method: http.MethodGet, repo: r.remote, path: r.remote + "/manifests/" + ref,
		header: http.Header{"Accept": manifestAccept}})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, statusError(up.name, resp, "GET manifest "+r.remote+":"+ref)
	}
	limit := r.p.reg.MaxManifestBytes()
	if resp.ContentLength > limit {
		return nil, &upstreamError{upstream: up.name, kind: kindInvalid, msg: fmt.Sprintf("manifest %s of %d bytes is larger than the limit of %d", ref, resp.ContentLength, limit)}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, unavailable(up.name, err, "reading manifest %s", ref)
	}
	if int64(len(body)) > limit {
		return nil, &upstreamError{upstream: up.name, kind: kindInvalid, msg: fmt.Sprintf("manifest %s is larger than the limit of %d bytes", ref, limit)}
	}
	var want digest.Digest
	if storage.IsDigest(ref) {
		want = digest.Digest(ref)
	} else {
		if tag == "" {
			tag = ref
		}
		if d, err := digest.Parse(resp.Header.Get("Docker-Content-Digest")); err == nil && d.Algorithm().Available() {
			want = d
		}
	}
	m, err := r.local.PutCachedManifest(ctx, want, resp.Header.Get("Content-Type"), body, tag)
	if err != nil {
		if e := errcode.From(err); e != nil && (e.Code == errcode.DigestInvalid || e.Code == errcode.ManifestInvalid || e.Code == errcode.SizeInvalid) {
			return nil, &upstreamError{upstream: up.name, kind: kindInvalid, msg: "manifest " + ref + " not cached", err: err}
		}
		return nil, err
	}
	r.p.m.misses.WithLabelValues("manifest", up.name).Inc()
	r.p.m.pulledBytes.WithLabelValues("manifest", up.name).Add(float64(len(body)))
	r.p.evict.added(r.local.Name(), m)
	r.p.notifyFill(r, m.Digest, m.MediaType, int64(len(body)), tag)
	return m, nil
}

// isFresh reports whether the upstream was asked about key within every.
func (p *Proxy) isFresh(key string, every time.Duration) bool {
	if every <= 0 {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	t, ok := p.fresh[key]
	return ok && p.now().Sub(t) < every
}

func (p *Proxy) setFresh(key string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.fresh) >= maxMemo {
		p.fresh = map[string]time.Time{} // forgetting only costs a HEAD each
	}
	p.fresh[key] = p.now()
}

// forgetRepo drops what is remembered of the tags of a cache repository
// (its content was evicted or purged): the next request asks upstream.
func (p *Proxy) forgetRepo(local string) {
	var prefix string
	for _, u := range p.upstreams {
		if u.namespace == "" {
			prefix = u.name + "|" + local + "|"
		} else if rest, ok := strings.CutPrefix(local, u.namespace+"/"); ok {
			prefix = u.name + "|" + rest + "|"
			break
		}
	}
	if prefix == "" {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for k := range p.fresh {
		if strings.HasPrefix(k, prefix) {
			delete(p.fresh, k)
		}
	}
}

// maxMemo bounds the memory of tag checks and 404s.
const maxMemo = 1 << 17

func (p *Proxy) isNotFound(key string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	t, ok := p.notFound[key]
	if ok && !p.now().Before(t) {
		delete(p.notFound, key)
		return false
	}
	return ok
}

func (p *Proxy) setNotFound(key string, ttl time.Duration) {
	if ttl <= 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.notFound) >= maxMemo {
		p.notFound = map[string]time.Time{}
	}
	p.notFound[key] = p.now().Add(ttl)
}

// Tags lists the repository's tags as the upstream has them; when the
// upstream fails or no longer has the repository, the cached tags (with a
// Warning).
func (r *Repo) Tags(ctx context.Context, h http.Header, last string, n int) ([]string, bool, error) {
	up := r.up
	q := url.Values{}
	if n >= 0 {
		q.Set("n", strconv.Itoa(n))
	}
	if last != "" {
		q.Set("last", last)
	}
	path := r.remote + "/tags/list"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	rctx, cancel := context.WithTimeout(ctx, 2*up.timeout)
	defer cancel()
	tags, more, err := func() ([]string, bool, error) {
		resp, err := up.do(rctx, request{method: http.MethodGet, repo: r.remote, path: path})
		if err != nil {
			return nil, false, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, false, statusError(up.name, resp, "GET tags of "+r.remote)
		}
		var body struct {
			Tags []string `json:"tags"`
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
		if err != nil {
			return nil, false, unavailable(up.name, err, "reading tags of %s", r.remote)
		}
		if err := json.NewDecoder(bytes.NewReader(b)).Decode(&body); err != nil {
			return nil, false, &upstreamError{upstream: up.name, kind: kindInvalid, msg: "tags of " + r.remote + " are not JSON", err: err}
		}
		return body.Tags, strings.Contains(resp.Header.Get("Link"), `rel="next"`), nil
	}()
	if err == nil {
		if tags == nil {
			tags = []string{}
		}
		return tags, more, nil
	}
	// The cached tags stand in for the upstream's answer, whatever went
	// wrong (a repository gone upstream is still served from the cache,
	// as its manifests are).
	var ue *upstreamError
	if errors.As(err, &ue) {
		local, lmore, lerr := r.local.Tags(ctx, last, n)
		if lerr == nil && (len(local) > 0 || last != "") {
			setWarning(h, ue)
			r.p.m.stale.WithLabelValues("tags", up.name).Inc()
			return local, lmore, nil
		}
	}
	return nil, false, clientError(err, func() *errcode.Error {
		return errcode.New(errcode.NameUnknown).WithDetail(map[string]string{"name": r.remote})
	})
}

// notifyFill sends a "fill" event: content stored in the cache.
func (p *Proxy) notifyFill(r *Repo, d digest.Digest, mediaType string, size int64, tag string) {
	if !p.opts.Notifier.Enabled() {
		return
	}
	p.opts.Notifier.Notify(notifications.Event{
		Action: notifications.ActionFill,
		Target: notifications.Target{
			MediaType:  mediaType,
			Size:       size,
			Digest:     d.String(),
			Repository: r.local.Name(),
			Tag:        tag,
			URL:        r.up.base.String() + "/v2/" + r.remote + "/" + kindPath(mediaType) + "/" + d.String(),
		},
		Actor: notifications.Actor{Name: "proxy:" + r.up.name},
	})
}

func kindPath(mediaType string) string {
	if mediaType == "" || mediaType == "application/octet-stream" {
		return "blobs"
	}
	return "manifests"
}
