package retention

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are retention's Prometheus collectors. A nil *Metrics counts
// nothing.
type Metrics struct {
	deletedTags      *prometheus.CounterVec
	deletedManifests *prometheus.CounterVec
	refusals         *prometheus.CounterVec
	deferred         prometheus.Counter
	runs             *prometheus.CounterVec
	lastRun          *prometheus.GaugeVec
}

// NewMetrics creates the collectors; register them with Collectors.
func NewMetrics() *Metrics {
	return &Metrics{
		deletedTags: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "registryd", Subsystem: "retention", Name: "deleted_tags_total",
			Help: "Tags deleted by retention, by policy (its repositories globs).",
		}, []string{"policy"}),
		deletedManifests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "registryd", Subsystem: "retention", Name: "deleted_manifests_total",
			Help: "Untagged manifests deleted by retention (deleteuntagged), by policy.",
		}, []string{"policy"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "registryd", Subsystem: "retention", Name: "refusals_total",
			Help: "Repositories a run refused to touch because it would have deleted more than maxshare of their tags, by policy.",
		}, []string{"policy"}),
		deferred: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "registryd", Subsystem: "retention", Name: "deferred_total",
			Help: "Deletions left for a later run by maxdeletionsperrun.",
		}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "registryd", Subsystem: "retention", Name: "runs_total",
			Help: "Retention runs by result (ok, refused, failed) and dry_run.",
		}, []string{"result", "dry_run"}),
		lastRun: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "registryd", Subsystem: "retention", Name: "last_run_timestamp_seconds",
			Help: "When the last retention run finished, by result.",
		}, []string{"result"}),
	}
}

// Collectors are the collectors to register.
func (m *Metrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.deletedTags, m.deletedManifests, m.refusals, m.deferred, m.runs, m.lastRun}
}

func (m *Metrics) deletedTag(policy string) {
	if m != nil {
		m.deletedTags.WithLabelValues(policy).Inc()
	}
}

func (m *Metrics) deletedManifest(policy string) {
	if m != nil {
		m.deletedManifests.WithLabelValues(policy).Inc()
	}
}

func (m *Metrics) refused(policy string) {
	if m != nil {
		m.refusals.WithLabelValues(policy).Inc()
	}
}

func (m *Metrics) run(r Report) {
	if m == nil {
		return
	}
	m.runs.WithLabelValues(r.Result, strconv.FormatBool(r.DryRun)).Inc()
	if !r.DryRun {
		m.deferred.Add(float64(r.Deferred))
	}
	m.lastRun.WithLabelValues(r.Result).Set(float64(r.Finished.Unix()))
}
