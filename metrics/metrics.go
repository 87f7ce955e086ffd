// Package metrics instruments registryd for Prometheus: HTTP requests by
// route, method and status, their latency, bytes in and out, uploads in
// flight, blobs and manifests served, and the latency of every storage
// driver operation. Metrics live in a registry of their own (no global
// state) exposed on the debug listener only.
package metrics

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/registryd/registryd/internal/httprec"
	"github.com/registryd/registryd/storage/driver"
)

// Metrics holds registryd's collectors.
type Metrics struct {
	Registry *prometheus.Registry

	requests      *prometheus.CounterVec
	latency       *prometheus.HistogramVec
	bytesIn       *prometheus.CounterVec
	bytesOut      *prometheus.CounterVec
	uploads       prometheus.Gauge
	served        *prometheus.CounterVec
	driverLatency *prometheus.HistogramVec
	driverErrors  *prometheus.CounterVec
	driverFaults  *prometheus.CounterVec
	notifEvents   *prometheus.CounterVec
	notifFailures *prometheus.CounterVec

	scrubOnce sync.Once
	scrub     *ScrubObserver
}

// New creates the collectors and registers them, with the Go runtime and
// process collectors, in a fresh registry.
func New() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "registryd", Subsystem: "http", Name: "requests_total",
			Help: "HTTP requests by route, method and status code.",
		}, []string{"route", "method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "registryd", Subsystem: "http", Name: "request_duration_seconds",
			Help:    "Time to serve a request, by route and method.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"route", "method"}),
		bytesIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "registryd", Subsystem: "http", Name: "request_bytes_total",
			Help: "Bytes received in request bodies, by route.",
		}, []string{"route"}),
		bytesOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "registryd", Subsystem: "http", Name: "response_bytes_total",
			Help: "Bytes sent in response bodies, by route.",
		}, []string{"route"}),
		uploads: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "registryd", Subsystem: "http", Name: "uploads_in_flight",
			Help: "Blob upload requests (POST, PATCH, PUT of an upload) being served.",
		}),
		served: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "registryd", Name: "content_served_total",
			Help: "Successful GETs of blobs and manifests.",
		}, []string{"kind"}),
		driverLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "registryd", Subsystem: "storage", Name: "operation_duration_seconds",
			Help:    "Latency of storage driver operations.",
			Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
		}, []string{"driver", "op"}),
		driverErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "registryd", Subsystem: "storage", Name: "operation_errors_total",
			Help: "Storage driver operations that failed other than with path not found.",
		}, []string{"driver", "op"}),
		driverFaults: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "registryd", Subsystem: "storage", Name: "faults_total",
			Help: "Storage driver operations that failed because of the storage's condition, by cause: full (no space left, quota exceeded), throttled (slow down, after the driver's retries), unreachable (after the driver's retries). Clients get 503 UNAVAILABLE.",
		}, []string{"driver", "cause"}),
		notifEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "registryd", Subsystem: "notifications", Name: "events_total",
			Help: "Events by notification endpoint and outcome: sent (accepted by the endpoint) or dropped (queue overflow, shutdown).",
		}, []string{"endpoint", "outcome"}),
		notifFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "registryd", Subsystem: "notifications", Name: "delivery_failures_total",
			Help: "Failed attempts to deliver events to a notification endpoint (errors, timeouts, non-2xx answers); the events are retried.",
		}, []string{"endpoint"}),
	}
	m.Registry.MustRegister(m.requests, m.latency, m.bytesIn, m.bytesOut, m.uploads, m.served,
		m.driverLatency, m.driverErrors, m.driverFaults, m.notifEvents, m.notifFailures,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

// Route classifies a request path into a low-cardinality route label;
// repository names and digests never become label values.
func Route(method, p string) string {
	switch {
	case p == "/v2/" || p == "/v2":
		return "base"
	case p == "/v2/_catalog":
		return "catalog"
	case !strings.HasPrefix(p, "/v2/"):
		return "other"
	case strings.HasPrefix(p, "/v2/_registryd/") || strings.HasPrefix(p, "/v2/_oci/"):
		return "admin" // the admin API (api/admin); no name starts with "_"
	case strings.HasSuffix(p, "/tags/list"):
		return "tags"
	case strings.Contains(p, "/blobs/uploads/"):
		return "upload"
	case strings.Contains(p, "/manifests/"):
		return "manifest"
	case strings.Contains(p, "/blobs/"):
		return "blob"
	case strings.Contains(p, "/referrers/"):
		return "referrers"
	}
	return "other"
}

type countingReader struct {
	io.ReadCloser
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n += int64(n)
	return n, err
}

// Middleware records every request.
func (m *Metrics) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		route := Route(r.Method, r.URL.Path)
		if route == "upload" {
			m.uploads.Inc()
			defer m.uploads.Dec()
		}
		var body *countingReader
		if r.Body != nil && r.Body != http.NoBody {
			body = &countingReader{ReadCloser: r.Body}
			r.Body = body
		}
		sw := httprec.New(w)
		next.ServeHTTP(sw, r)
		status := sw.Code()
		m.requests.WithLabelValues(route, r.Method, strconv.Itoa(status)).Inc()
		m.latency.WithLabelValues(route, r.Method).Observe(time.Since(start).Seconds())
		if body != nil {
			m.bytesIn.WithLabelValues(route).Add(float64(body.n))
		}
		m.bytesOut.WithLabelValues(route).Add(float64(sw.Bytes))
		if r.Method == http.MethodGet && (status == http.StatusOK || status == http.StatusPartialContent) && (route == "blob" || route == "manifest") {
			m.served.WithLabelValues(route).Inc()
		}
	})
}

// Driver wraps a storage driver so that every operation is timed.
func (m *Metrics) Driver(d driver.StorageDriver) driver.StorageDriver {
	return &instrumented{StorageDriver: d, m: m, name: d.Name()}
}

type instrumented struct {
	driver.StorageDriver
	m    *Metrics
	name string
}

// Unwrap implements driver.Unwrapper: the catalog reaches the driver's
// directory watcher (memory reads, nothing to time) through it.
func (i *instrumented) Unwrap() driver.StorageDriver { return i.StorageDriver }

func (i *instrumented) observe(op string, start time.Time, err error) {
	i.m.driverLatency.WithLabelValues(i.name, op).Observe(time.Since(start).Seconds())
	if err != nil && !isNotFound(err) {
		i.m.driverErrors.WithLabelValues(i.name, op).Inc()
		if fault, _ := driver.FaultOf(err); fault != "" {
			i.m.driverFaults.WithLabelValues(i.name, string(fault)).Inc()
		}
	}
}

func isNotFound(err error) bool {
	_, ok := err.(driver.PathNotFoundError)
	return ok
}

func (i *instrumented) GetContent(ctx context.Context, p string) (b []byte, err error) {
	defer func(t time.Time) { i.observe("get_content", t, err) }(time.Now())
	return i.StorageDriver.GetContent(ctx, p)
}

func (i *instrumented) PutContent(ctx context.Context, p string, b []byte) (err error) {
	defer func(t time.Time) { i.observe("put_content", t, err) }(time.Now())
	return i.StorageDriver.PutContent(ctx, p, b)
}

// Reader is timed to the open; the stream itself is untouched so that the
// filesystem driver's *os.File still reaches sendfile.
func (i *instrumented) Reader(ctx context.Context, p string, off int64) (rc io.ReadCloser, err error) {
	defer func(t time.Time) { i.observe("reader", t, err) }(time.Now())
	return i.StorageDriver.Reader(ctx, p, off)
}

func (i *instrumented) Writer(ctx context.Context, p string, app bool) (w driver.FileWriter, err error) {
	defer func(t time.Time) { i.observe("writer", t, err) }(time.Now())
	w, err = i.StorageDriver.Writer(ctx, p, app)
	if err != nil {
		return nil, err
	}
	return &instrumentedWriter{FileWriter: w, i: i}, nil
}

// instrumentedWriter counts the failures of a writer's writes, commit and
// close (a disk that fills up fails there); their latency is the upload's.
type instrumentedWriter struct {
	driver.FileWriter
	i *instrumented
}

func (w *instrumentedWriter) failed(op string, err error) {
	if err != nil {
		w.i.m.driverErrors.WithLabelValues(w.i.name, op).Inc()
		if fault, _ := driver.FaultOf(err); fault != "" {
			w.i.m.driverFaults.WithLabelValues(w.i.name, string(fault)).Inc()
		}
	}
}

func (w *instrumentedWriter) Write(p []byte) (int, error) {
	n, err := w.FileWriter.Write(p)
	w.failed("write", err)
	return n, err
}

func (w *instrumentedWriter) Commit(ctx context.Context) error {
	err := w.FileWriter.Commit(ctx)
	w.failed("commit", err)
	return err
}

func (w *instrumentedWriter) Close() error {
	err := w.FileWriter.Close()
	w.failed("close", err)
	return err
}

func (i *instrumented) Stat(ctx context.Context, p string) (fi driver.FileInfo, err error) {
	defer func(t time.Time) { i.observe("stat", t, err) }(time.Now())
	return i.StorageDriver.Stat(ctx, p)
}

func (i *instrumented) List(ctx context.Context, p string) (l []string, err error) {
	defer func(t time.Time) { i.observe("list", t, err) }(time.Now())
	return i.StorageDriver.List(ctx, p)
}

func (i *instrumented) Move(ctx context.Context, src, dst string) (err error) {
	defer func(t time.Time) { i.observe("move", t, err) }(time.Now())
	return i.StorageDriver.Move(ctx, src, dst)
}

// Batch implements driver.Batcher: timed as one "batch" when the driver
// underneath has batches, else run as its operations, each timed as
// itself.
func (i *instrumented) Batch(ctx context.Context, ops ...driver.BatchOp) (err error) {
	if _, ok := driver.As[driver.Batcher](i.StorageDriver); !ok {
		return driver.BatchEach(ctx, i, ops...)
	}
	defer func(t time.Time) { i.observe("batch", t, err) }(time.Now())
	return driver.Batch(ctx, i.StorageDriver, ops...)
}

func (i *instrumented) Delete(ctx context.Context, p string) (err error) {
	defer func(t time.Time) { i.observe("delete", t, err) }(time.Now())
	return i.StorageDriver.Delete(ctx, p)
}

func (i *instrumented) Walk(ctx context.Context, p string, fn driver.WalkFn) (err error) {
	defer func(t time.Time) { i.observe("walk", t, err) }(time.Now())
	return i.StorageDriver.Walk(ctx, p, fn)
}

// Notifications returns the observer of notification endpoints
// (notifications.Observer): events sent and dropped, failed deliveries.
func (m *Metrics) Notifications() *NotificationObserver { return &NotificationObserver{m: m} }

// NotificationObserver counts what happens to events, per endpoint.
type NotificationObserver struct{ m *Metrics }

// Sent counts events an endpoint accepted.
func (o *NotificationObserver) Sent(endpoint string, n int) {
	o.m.notifEvents.WithLabelValues(endpoint, "sent").Add(float64(n))
}

// Failed counts a failed delivery attempt.
func (o *NotificationObserver) Failed(endpoint string) {
	o.m.notifFailures.WithLabelValues(endpoint).Inc()
}

// Dropped counts events given up on.
func (o *NotificationObserver) Dropped(endpoint string, n int) {
	o.m.notifEvents.WithLabelValues(endpoint, "dropped").Add(float64(n))
}
