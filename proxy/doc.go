// Package proxy is registryd's pull-through cache: it sits between the V2
// API and the storage and makes some repositories caches of upstream
// registries.
//
// # Routing
//
// Route decides per request: ?ns=<host> (containerd's hosts.toml mirrors)
// names the upstream by one of its configured names (never dialled: an
// unknown ns is NAME_UNKNOWN); else a first path component that is an
// upstream's name, alias or namespace selects it (/v2/ghcr.io/org/app, for
// containers-registries.conf mirrors and containerd's override_path); else
// the default upstream takes the name (dockerd's registry-mirrors), unless
// it matches a hosted pattern. Docker Hub's names are one upstream, and
// single-component names get library/ there. A cached repository lives
// under its upstream's namespace (docker.io/library/alpine), so two
// upstreams never share a repository; content is shared by digest.
// distribution's proxy.remoteurl is the one-upstream form where every
// repository is a cache, stored under its own name. The API refuses
// pushes and deletes in cached repositories (405 UNSUPPORTED).
//
// # Fetching (fill.go, blobs.go, manifests.go)
//
// A blob the cache lacks is fetched once per upstream and digest however
// many clients ask (a fill); every client streams from the fill's spool as
// bytes arrive, with headers as soon as the upstream's. The last byte of
// every read waits until the whole blob hashed to its digest, and a fill
// that fails breaks every client's download and stores nothing; a verified
// fill is stored through an upload session, whose commit verifies again.
// Manifests and token requests are likewise one upstream round per key at a
// time (flight). A blob the store already has for another repository is
// linked into this one only once the upstream confirms this repository has
// it (HEAD), so that a cached repository never serves another's blobs to
// someone who merely knows their digests.
//
// # Freshness and failure
//
// Digests, once cached, are never asked again. Tags are checked with a
// HEAD at most once per revalidate interval (stretched when the upstream's
// rate limit runs low), and a GET only fetches a changed digest. When the
// upstream fails in any way but "not found", a cached tag is served with a
// Warning header. Each upstream has a circuit breaker (one failure opens it
// for a window that doubles, 10 s to 5 min; one request probes after it)
// and remembers a 429's Retry-After, so an outage or a rate limit costs one
// wait, not one per request. What clients see when nothing is cached is
// the upstream's answer in the spec's terms (clientError): 404 as the
// unknown code, 429 as 429 with Retry-After, an outage as 503 UNAVAILABLE
// with Retry-After, a refusal as 403 DENIED.
//
// # Credentials
//
// The mirror uses its own credentials (static or a credential helper),
// answering the upstream's challenge: Basic, or Docker's token flow with a
// token cache per realm, service and scope. Credentials go only to realms
// of the upstream's own host or registrable domain. Client credentials are
// registryd's to check and are never forwarded.
//
// # Eviction (evict.go) and purge (admin.go)
//
// Eviction and purges delete tags, manifests and blob links of cache
// repositories, never blobs: garbage collection reclaims what no manifest
// references, in any repository, so an image that is still cached, or a
// hosted one sharing a blob, is never broken.
//
// The invariants each part keeps are written where it is implemented
// (fill.go, evict.go); the tests that hold them are in *_test.go here
// (deterministic pause points with a gated upstream, and a seeded random
// test of fills against a faulty upstream) and in e2e/proxy_test.go (real
// upstreams and clients).
package proxy
