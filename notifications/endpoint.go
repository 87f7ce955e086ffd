package notifications

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
)

// Defaults of EndpointConfig.
const (
	DefaultQueueSize = 1024 // events waiting per endpoint
	DefaultMaxBatch  = 32   // events per POST
	DefaultTimeout   = 5 * time.Second
	DefaultThreshold = 5
	DefaultBackoff   = time.Second
	// maxBackoffFactor caps the wait between attempts at this many times
	// Backoff.
	maxBackoffFactor = 16
)

// EndpointConfig configures one endpoint.
type EndpointConfig struct {
	Name    string      // in logs and metrics
	URL     string      // where envelopes are POSTed
	Headers http.Header // added to every POST
	// Timeout bounds one attempt (connect, send, response headers).
	Timeout time.Duration
	// Threshold is how many failures in a row mark the endpoint as
	// failing: it is logged as a warning, and the wait between attempts
	// doubles from then on, up to 16 times Backoff.
	Threshold int
	// Backoff is the wait after a failed attempt.
	Backoff time.Duration
	// IgnoredMediaTypes and IgnoredActions filter events out: an event
	// whose target media type or action is listed is not sent.
	IgnoredMediaTypes []string
	IgnoredActions    []string
	// QueueSize bounds the events waiting to be sent; when it is full the
	// oldest is dropped. MaxBatch bounds the events in one POST.
	QueueSize int
	MaxBatch  int
}

// Observer is told what happens to events; metrics implement it. Nil
// methods are not called: an Endpoint without an Observer counts nothing.
type Observer interface {
	Sent(endpoint string, events int)    // delivered (a 2xx answer)
	Failed(endpoint string)              // an attempt failed; the events are retried
	Dropped(endpoint string, events int) // lost: the queue overflowed, or shutdown cut delivery short
}

// Stats are an endpoint's counters since it started.
type Stats struct {
	Sent, Dropped, Failures int
	Pending                 int // queued, or in a delivery not yet done
}

// Endpoint delivers events to one URL. Its methods are safe for concurrent
// use.
type Endpoint struct {
	cfg    EndpointConfig
	client *http.Client
	log    logrus.FieldLogger
	obs    Observer

	mu       sync.Mutex
	queue    []Event
	inFlight int
	closed   bool
	stats    Stats
	lastDrop time.Time // of the last drop warning

	wake   chan struct{} // a value when the queue gains events or closes
	ctx    context.Context
	abort  context.CancelFunc // cuts a delivery short at shutdown
	done   chan struct{}      // closed when the sender has returned
	closer sync.Once
}

// NewEndpoint starts an endpoint's sender. Zero fields of cfg take their
// defaults; log may be nil.
func NewEndpoint(cfg EndpointConfig, log logrus.FieldLogger, obs Observer) *Endpoint {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Threshold <= 0 {
		cfg.Threshold = DefaultThreshold
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = DefaultBackoff
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = DefaultQueueSize
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = DefaultMaxBatch
	}
	if log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		log = l
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &Endpoint{
		cfg: cfg,
		client: &http.Client{
			Transport: http.DefaultTransport.(*http.Transport).Clone(),
			Timeout:   cfg.Timeout,
		},
		log:   log.WithFields(logrus.Fields{"endpoint": cfg.Name, "url": cfg.URL}),
		obs:   obs,
		wake:  make(chan struct{}, 1),
		ctx:   ctx,
		abort: cancel,
		done:  make(chan struct{}),
	}
	go e.run()
	return e
}

// Name is the endpoint's name.
func (e *Endpoint) Name() string { return e.cfg.Name }

// Accepts tells whether the endpoint wants ev (it is not filtered out).
func (e *Endpoint) Accepts(ev Event) bool {
	return !slices.Contains(e.cfg.IgnoredActions, ev.Action) &&
		(ev.Target.MediaType == "" || !slices.Contains(e.cfg.IgnoredMediaTypes, ev.Target.MediaType))
}

// Write queues ev unless it is filtered out. It never blocks: when the
// queue is full the oldest event is dropped. After Close it does nothing.
func (e *Endpoint) Write(ev Event) {
	if !e.Accepts(ev) {
		return
	}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return
	}
	dropped := 0
	if len(e.queue) >= e.cfg.QueueSize {
		dropped = len(e.queue) - e.cfg.QueueSize + 1
		e.queue = e.queue[dropped:]
		e.stats.Dropped += dropped
	}
	e.queue = append(e.queue, ev)
	warn := dropped > 0 && time.Since(e.lastDrop) > 10*time.Second
	if warn {
		e.lastDrop = time.Now()
	}
	total := e.stats.Dropped
	e.mu.Unlock()
	if dropped > 0 {
		if e.obs != nil {
			e.obs.Dropped(e.cfg.Name, dropped)
		}
		if warn {
			e.log.WithFields(logrus.Fields{"queue_size": e.cfg.QueueSize, "dropped_total": total}).
				Warn("notifications: endpoint queue full, dropping the oldest events")
		}
	}
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// Stats returns the endpoint's counters.
func (e *Endpoint) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.stats
	s.Pending = len(e.queue) + e.inFlight
	return s
}

// Close stops accepting events and waits for the queued ones to be
// delivered, until ctx is done; then it gives up on the rest, counting
// them as dropped, and returns an error saying how many were not sent.
func (e *Endpoint) Close(ctx context.Context) error {
	e.closer.Do(func() {
		e.mu.Lock()
		e.closed = true
		e.mu.Unlock()
		select {
		case e.wake <- struct{}{}:
		default:
		}
	})
	select {
	case <-e.done:
		return nil
	case <-ctx.Done():
	}
	e.mu.Lock()
	lost := len(e.queue) + e.inFlight
	e.mu.Unlock()
	e.abort()
	<-e.done
	if lost == 0 {
		return nil
	}
	return fmt.Errorf("notifications: endpoint %s: %d events not delivered at shutdown", e.cfg.Name, lost)
}

// run is the sender: it takes batches off the queue in order and delivers
// each before the next.
func (e *Endpoint) run() {
	defer close(e.done)
	for {
		e.mu.Lock()
		n := min(len(e.queue), e.cfg.MaxBatch)
		batch := slices.Clone(e.queue[:n])
		e.queue = e.queue[n:]
		e.inFlight = n
		closed := e.closed
		e.mu.Unlock()
		if n == 0 {
			if closed {
				return
			}
			select {
			case <-e.wake:
			case <-e.ctx.Done():
				return
			}
			continue
		}
		if !e.deliver(batch) {
			e.drop()
			return
		}
	}
}

// drop counts the queued and in-flight events as lost (shutdown).
func (e *Endpoint) drop() {
	e.mu.Lock()
	lost := len(e.queue) + e.inFlight
	e.queue, e.inFlight = nil, 0
	e.stats.Dropped += lost
	e.mu.Unlock()
	if lost > 0 {
		if e.obs != nil {
			e.obs.Dropped(e.cfg.Name, lost)
		}
		e.log.WithField("events", lost).Warn("notifications: shutting down before these events could be delivered")
	}
}

// deliver POSTs batch until the endpoint accepts it (true) or the endpoint
// is aborted (false).
func (e *Endpoint) deliver(batch []Event) bool {
	body, err := Marshal(batch)
	if err != nil { // events are plain data: this does not happen
		e.log.WithError(err).Error("notifications: encoding events")
		return true
	}
	failures := 0
	for {
		err := e.post(body)
		if err == nil {
			e.mu.Lock()
			e.stats.Sent += len(batch)
			e.inFlight = 0
			e.mu.Unlock()
			if e.obs != nil {
				e.obs.Sent(e.cfg.Name, len(batch))
			}
			if failures >= e.cfg.Threshold {
				e.log.WithField("failures", failures).Info("notifications: endpoint is accepting events again")
			}
			return true
		}
		if e.ctx.Err() != nil {
			return false
		}
		failures++
		e.mu.Lock()
		e.stats.Failures++
		e.mu.Unlock()
		if e.obs != nil {
			e.obs.Failed(e.cfg.Name)
		}
		wait := e.cfg.Backoff
		entry := e.log.WithError(err).WithFields(logrus.Fields{"failures": failures, "events": len(batch)})
		switch {
		case failures == e.cfg.Threshold:
			entry.Warn("notifications: endpoint is failing; retrying with growing backoff")
		case failures < e.cfg.Threshold:
			entry.Debug("notifications: delivery failed; retrying")
		}
		if failures >= e.cfg.Threshold {
			wait <<= min(failures-e.cfg.Threshold+1, 4) // up to maxBackoffFactor
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-e.ctx.Done():
			t.Stop()
			return false
		}
	}
}

// errStatus is a non-2xx answer.
type errStatus struct{ code int }

func (e errStatus) Error() string {
	return fmt.Sprintf("endpoint answered %d %s", e.code, http.StatusText(e.code))
}

func (e *Endpoint) post(body []byte) error {
	req, err := http.NewRequestWithContext(e.ctx, http.MethodPost, e.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	for name, vs := range e.cfg.Headers {
		req.Header[name] = slices.Clone(vs)
	}
	req.Header.Set("Content-Type", EventsMediaType)
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", "registryd-notifications")
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return errStatus{resp.StatusCode}
	}
	return nil
}
