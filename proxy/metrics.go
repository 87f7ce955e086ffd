package proxy

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the mirror's Prometheus collectors. distribution's names
// (registry_proxy_{requests,hits,misses,pulled_bytes,pushed_bytes}_total
// with label type="blob"|"manifest") are kept, with an upstream label
// added; the rest are registryd's.
type metrics struct {
	requests    *prometheus.CounterVec // type, upstream: client GETs of cached repositories
	hits        *prometheus.CounterVec // type, upstream: answered from the cache
	misses      *prometheus.CounterVec // type, upstream: fetched from the upstream
	pulledBytes *prometheus.CounterVec // type, upstream: bytes from the upstream
	pushedBytes *prometheus.CounterVec // type, upstream: bytes to clients
	stale       *prometheus.CounterVec // type, upstream: served from the cache because the upstream failed
	coalesced   *prometheus.CounterVec // type, upstream: requests that joined a fetch under way
	revalidated *prometheus.CounterVec // upstream, result: tag checks by HEAD (unchanged, changed, failed)

	upstreamRequests *prometheus.CounterVec // upstream, code ("error" without a response)
	tokenFetches     *prometheus.CounterVec // upstream, outcome
	rateLimit        *prometheus.GaugeVec   // upstream: ratelimit-limit
	rateRemaining    *prometheus.GaugeVec   // upstream: ratelimit-remaining
	rateLimited      *prometheus.CounterVec // upstream: 429s received
	breakerOpen      *prometheus.GaugeVec   // upstream: 1 while the circuit breaker is open

	fills       *prometheus.CounterVec // upstream, result: blob fills by outcome
	fillsActive prometheus.Gauge
	cacheBytes  prometheus.Gauge
	evictions   *prometheus.CounterVec // upstream, reason
}

func newMetrics(reg prometheus.Registerer) *metrics {
	const ns, sub = "registry", "proxy"
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help}, labels)
	}
	gauge := func(name, help string, labels ...string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help}, labels)
	}
	m := &metrics{
		requests:    counter("requests_total", "Client requests (GET) for blobs and manifests of cached repositories.", "type", "upstream"),
		hits:        counter("hits_total", "Requests answered from the cache.", "type", "upstream"),
		misses:      counter("misses_total", "Requests that fetched from the upstream.", "type", "upstream"),
		pulledBytes: counter("pulled_bytes_total", "Bytes fetched from the upstream.", "type", "upstream"),
		pushedBytes: counter("pushed_bytes_total", "Bytes sent to clients.", "type", "upstream"),
		stale:       counter("stale_total", "Requests answered from the cache because the upstream failed (served with a Warning header).", "type", "upstream"),
		coalesced:   counter("coalesced_total", "Requests that joined a fetch already under way instead of starting their own.", "type", "upstream"),
		revalidated: counter("revalidations_total", "Checks of a cached tag against the upstream (HEAD), by result.", "upstream", "result"),

		upstreamRequests: counter("upstream_requests_total", "Requests sent to the upstream, by HTTP status (\"error\": no response).", "upstream", "code"),
		tokenFetches:     counter("token_fetches_total", "Bearer token requests to the upstream's realm, by outcome.", "upstream", "outcome"),
		rateLimit:        gauge("ratelimit_limit", "The upstream's ratelimit-limit header (Docker Hub pulls per window).", "upstream"),
		rateRemaining:    gauge("ratelimit_remaining", "The upstream's ratelimit-remaining header.", "upstream"),
		rateLimited:      counter("rate_limited_total", "429 answers from the upstream.", "upstream"),
		breakerOpen:      gauge("upstream_unavailable", "1 while the upstream's circuit breaker is open (requests are not sent).", "upstream"),

		fills: counter("fills_total", "Blob downloads into the cache, by result (stored, digest_mismatch, failed).", "upstream", "result"),
		fillsActive: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "fills_in_flight",
			Help: "Blob downloads into the cache under way."}),
		cacheBytes: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "cache_bytes",
			Help: "Bytes of cached content (blobs and manifests referenced by cached images), as the eviction accounts them."}),
		evictions: counter("evictions_total", "Cached images removed, by reason (size, age, purge).", "upstream", "reason"),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.hits, m.misses, m.pulledBytes, m.pushedBytes, m.stale, m.coalesced, m.revalidated,
			m.upstreamRequests, m.tokenFetches, m.rateLimit, m.rateRemaining, m.rateLimited, m.breakerOpen,
			m.fills, m.fillsActive, m.cacheBytes, m.evictions)
	}
	return m
}

// initUpstream makes every series of an upstream exist from the start at
// zero (as distribution initialises its counters), so that rates work
// from the first scrape.
func (m *metrics) initUpstream(name string) {
	for _, t := range []string{"blob", "manifest"} {
		for _, c := range []*prometheus.CounterVec{m.requests, m.hits, m.misses, m.pulledBytes, m.pushedBytes, m.stale, m.coalesced} {
			c.WithLabelValues(t, name)
		}
	}
	m.breakerOpen.WithLabelValues(name).Set(0)
}
