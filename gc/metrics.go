package gc

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/registryd/registryd/storage"
)

// Metrics are the online collector's Prometheus collectors; it implements
// Observer. Register them with Collectors.
type Metrics struct {
	runs        *prometheus.CounterVec
	phase       *prometheus.HistogramVec
	marked      prometheus.Gauge
	condemned   prometheus.Gauge
	deleted     *prometheus.CounterVec
	bytesFreed  prometheus.Counter
	resurrected prometheus.Counter
	epoch       prometheus.Gauge
	lastSuccess prometheus.Gauge
	storeOK     prometheus.Gauge
	protocol    []prometheus.Collector
}

// NewMetrics creates the collectors.
func NewMetrics() *Metrics {
	return &Metrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "registryd", Subsystem: "gc", Name: "runs_total",
			Help: "Online garbage collection runs by result (ok, failed, refused, busy, interrupted).",
		}, []string{"result"}),
		phase: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "registryd", Subsystem: "gc", Name: "phase_duration_seconds",
			Help:    "Duration of the collector's phases (mark, sweep, plan, uploads).",
			Buckets: []float64{.01, .05, .1, .5, 1, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600},
		}, []string{"phase"}),
		marked: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "registryd", Subsystem: "gc", Name: "marked",
			Help: "Live digests the last mark found (manifests, configs, layers).",
		}),
		condemned: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "registryd", Subsystem: "gc", Name: "condemned",
			Help: "Items (revisions, layer links, blobs) the last plan condemned.",
		}),
		deleted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "registryd", Subsystem: "gc", Name: "deleted_total",
			Help: "Items deleted by the online collector, by kind (manifest, layer-link, blob, upload).",
		}, []string{"kind"}),
		bytesFreed: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "registryd", Subsystem: "gc", Name: "bytes_freed_total",
			Help: "Bytes of the blobs the online collector deleted.",
		}),
		resurrected: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "registryd", Subsystem: "gc", Name: "resurrected_total",
			Help: "Condemned items a sweep kept: referenced again by the re-check mark, or pinned by a writer.",
		}),
		epoch: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "registryd", Subsystem: "gc", Name: "lease_epoch",
			Help: "Epoch of the collector lease this instance last took.",
		}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "registryd", Subsystem: "gc", Name: "last_success_timestamp_seconds",
			Help: "When a run of this instance last ended well.",
		}),
		storeOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "registryd", Subsystem: "gc", Name: "store_consistent",
			Help: "1 when the store passed the collector's read-after-write check, 0 when online collection refuses to run on it.",
		}),
	}
}

// Collectors are the collectors to register.
func (m *Metrics) Collectors() []prometheus.Collector {
	return append([]prometheus.Collector{m.runs, m.phase, m.marked, m.condemned, m.deleted, m.bytesFreed,
		m.resurrected, m.epoch, m.lastSuccess, m.storeOK}, m.protocol...)
}

// Protocol adds counters of the writers' side of the protocol in reg
// (pins written, requests answered "unknown" because the sweep reached a
// digest, writes that waited for it, writes refused); call before
// Collectors.
func (m *Metrics) Protocol(reg *storage.Registry) {
	counter := func(name, help string, f func(storage.GCProtocolStats) int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: "registryd", Subsystem: "gc_protocol", Name: name, Help: help,
		}, func() float64 { return float64(f(reg.GCProtocolStats())) })
	}
	m.protocol = []prometheus.Collector{
		counter("pins_total", "Pins written: a request relied on a condemned digest.", func(s storage.GCProtocolStats) int64 { return s.Pins }),
		counter("refused_total", "Requests answered unknown because the sweep was deleting a digest they relied on.", func(s storage.GCProtocolStats) int64 { return s.Refused }),
		counter("waits_total", "Writes that waited for the sweep to delete their own content.", func(s storage.GCProtocolStats) int64 { return s.Waits }),
		counter("failed_total", "Writes refused with 503: the collector state unreadable, or a wait too long.", func(s storage.GCProtocolStats) int64 { return s.Failed }),
		counter("state_reads_total", "Reads of the collector state.", func(s storage.GCProtocolStats) int64 { return s.Refreshes }),
	}
}

// StoreChecked records the store check's outcome.
func (m *Metrics) StoreChecked(err error) {
	if err == nil {
		m.storeOK.Set(1)
	} else {
		m.storeOK.Set(0)
	}
}

// RunDone implements Observer.
func (m *Metrics) RunDone(result string) { m.runs.WithLabelValues(result).Inc() }

// PhaseDone implements Observer.
func (m *Metrics) PhaseDone(phase string, d time.Duration) {
	m.phase.WithLabelValues(phase).Observe(d.Seconds())
}

// Marked implements Observer.
func (m *Metrics) Marked(n int) { m.marked.Set(float64(n)) }

// Condemned implements Observer.
func (m *Metrics) Condemned(n int) { m.condemned.Set(float64(n)) }

// Deleted implements Observer.
func (m *Metrics) Deleted(kind string, n int, bytes int64) {
	if n > 0 {
		m.deleted.WithLabelValues(kind).Add(float64(n))
	}
	if bytes > 0 {
		m.bytesFreed.Add(float64(bytes))
	}
}

// Resurrected implements Observer.
func (m *Metrics) Resurrected(n int) { m.resurrected.Add(float64(n)) }

// LeaseEpoch implements Observer.
func (m *Metrics) LeaseEpoch(epoch uint64) { m.epoch.Set(float64(epoch)) }

// LastSuccess implements Observer.
func (m *Metrics) LastSuccess(t time.Time) { m.lastSuccess.Set(float64(t.UnixNano()) / 1e9) }
