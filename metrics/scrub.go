package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ScrubObserver records the background integrity check (storage.
// maintenance.scrub): bytes re-hashed, damage found by kind, runs by
// result, and the last run's findings and time. Its methods do nothing on
// a nil observer (metrics off).
type ScrubObserver struct {
	bytes      prometheus.Counter
	found      *prometheus.CounterVec
	lastDamage *prometheus.GaugeVec
	runs       *prometheus.CounterVec
	lastRun    prometheus.Gauge
}

// Scrub creates and registers the scrub's collectors (once per Metrics).
func (m *Metrics) Scrub() *ScrubObserver {
	m.scrubOnce.Do(func() {
		o := &ScrubObserver{
			bytes: prometheus.NewCounter(prometheus.CounterOpts{
				Namespace: "registryd", Subsystem: "scrub", Name: "bytes_total",
				Help: "Bytes of blob content re-hashed by the background integrity check.",
			}),
			found: prometheus.NewCounterVec(prometheus.CounterOpts{
				Namespace: "registryd", Subsystem: "scrub", Name: "damage_found_total",
				Help: "Damage found by the background integrity check, by kind: blob (bytes that do not match their digest), link (torn, or naming nothing), tag, image (a manifest that cannot be pulled whole).",
			}, []string{"kind"}),
			lastDamage: prometheus.NewGaugeVec(prometheus.GaugeOpts{
				Namespace: "registryd", Subsystem: "scrub", Name: "last_damage",
				Help: "Damage the last finished run of the integrity check found, by kind (0 when it found none).",
			}, []string{"kind"}),
			runs: prometheus.NewCounterVec(prometheus.CounterOpts{
				Namespace: "registryd", Subsystem: "scrub", Name: "runs_total",
				Help: "Runs of the background integrity check, by result: clean, damaged, failed (did not finish).",
			}, []string{"result"}),
			lastRun: prometheus.NewGauge(prometheus.GaugeOpts{
				Namespace: "registryd", Subsystem: "scrub", Name: "last_finished_timestamp_seconds",
				Help: "When the last run of the integrity check finished (Unix time).",
			}),
		}
		m.Registry.MustRegister(o.bytes, o.found, o.lastDamage, o.runs, o.lastRun)
		m.scrub = o
	})
	return m.scrub
}

// Hashed counts n bytes re-hashed.
func (o *ScrubObserver) Hashed(n int64) {
	if o != nil {
		o.bytes.Add(float64(n))
	}
}

// Found counts one damage of kind.
func (o *ScrubObserver) Found(kind string) {
	if o != nil {
		o.found.WithLabelValues(kind).Inc()
	}
}

// Finished records a run's end: its result and, for a run that finished,
// the damage it found by kind.
func (o *ScrubObserver) Finished(result string, damage map[string]int, at time.Time) {
	if o == nil {
		return
	}
	o.runs.WithLabelValues(result).Inc()
	if result == "failed" {
		return
	}
	for _, k := range []string{"blob", "link", "tag", "image"} {
		o.lastDamage.WithLabelValues(k).Set(float64(damage[k]))
	}
	o.lastRun.Set(float64(at.Unix()))
}
