package notifications

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// receiver is a webhook: it records every request and answers with what
// respond says (200 when nil).
type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	attempts []time.Time
	got      []Event     // events of accepted requests, in order
	headers  http.Header // of the last request
	respond  func(attempt int) int
}

func newReceiver(t *testing.T, respond func(attempt int) int) *receiver {
	t.Helper()
	r := &receiver{respond: respond}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.attempts = append(r.attempts, time.Now())
		n := len(r.attempts)
		r.headers = req.Header.Clone()
		r.mu.Unlock()
		code := http.StatusOK
		if r.respond != nil {
			code = r.respond(n)
		}
		if code/100 == 2 {
			var env Envelope
			if err := json.Unmarshal(body, &env); err != nil {
				t.Errorf("body is not an envelope: %v: %s", err, body)
			}
			r.mu.Lock()
			r.got = append(r.got, env.Events...)
			r.mu.Unlock()
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) events() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.got...)
}

func (r *receiver) attemptTimes() []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Time(nil), r.attempts...)
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func ids(evs []Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.ID
	}
	return out
}

type counter struct{ sent, failed, dropped atomic.Int64 }

func (c *counter) Sent(_ string, n int)    { c.sent.Add(int64(n)) }
func (c *counter) Failed(string)           { c.failed.Add(1) }
func (c *counter) Dropped(_ string, n int) { c.dropped.Add(int64(n)) }

func closeEndpoint(t *testing.T, e *Endpoint) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = e.Close(ctx)
	})
}

func TestRetryWithBackoff(t *testing.T) {
	const backoff = 20 * time.Millisecond
	cases := []struct {
		name      string
		failures  int
		code      int // of the failing answers
		threshold int
		// minimum total wait before the success: the sum of the waits
		minWait time.Duration
	}{
		{"accepted at once", 0, 500, 3, 0},
		{"500 twice", 2, 500, 3, 2 * backoff},
		{"redirect status is a failure", 1, 302, 3, backoff},
		{"404 past the threshold doubles", 4, 404, 2, backoff + 2*backoff + 4*backoff + 8*backoff},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rcv := newReceiver(t, func(n int) int {
				if n <= tc.failures {
					return tc.code
				}
				return http.StatusAccepted
			})
			obs := &counter{}
			e := NewEndpoint(EndpointConfig{Name: "t", URL: rcv.URL, Backoff: backoff, Threshold: tc.threshold}, nil, obs)
			closeEndpoint(t, e)
			e.Write(Event{ID: "e1", Action: ActionPush})
			waitFor(t, "delivery", func() bool { return len(rcv.events()) == 1 })
			at := rcv.attemptTimes()
			if len(at) != tc.failures+1 {
				t.Errorf("%d attempts, want %d", len(at), tc.failures+1)
			}
			if took := at[len(at)-1].Sub(at[0]); took < tc.minWait {
				t.Errorf("retried within %s, want at least %s of backoff", took, tc.minWait)
			}
			if got := ids(rcv.events()); !reflect.DeepEqual(got, []string{"e1"}) {
				t.Errorf("received %v", got)
			}
			waitFor(t, "stats", func() bool { return e.Stats().Pending == 0 })
			s := e.Stats()
			if s.Sent != 1 || s.Failures != tc.failures || s.Dropped != 0 {
				t.Errorf("stats %+v", s)
			}
			if obs.sent.Load() != 1 || obs.failed.Load() != int64(tc.failures) {
				t.Errorf("observer: sent %d, failed %d", obs.sent.Load(), obs.failed.Load())
			}
		})
	}
}

// A receiver that is down (connection refused) gets the events, in order,
// once it is back on the same address.
func TestRetryNetworkError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	e := NewEndpoint(EndpointConfig{Name: "t", URL: "http://" + addr + "/hook", Backoff: 10 * time.Millisecond, Threshold: 2}, nil, nil)
	closeEndpoint(t, e)
	for _, id := range []string{"a", "b", "c"} {
		e.Write(Event{ID: id, Action: ActionPush})
	}
	waitFor(t, "failures", func() bool { return e.Stats().Failures >= 3 })

	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("address %s taken meanwhile: %v", addr, err)
	}
	rcv := &receiver{}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var env Envelope
		_ = json.NewDecoder(req.Body).Decode(&env)
		rcv.mu.Lock()
		rcv.got = append(rcv.got, env.Events...)
		rcv.mu.Unlock()
	})}
	go srv.Serve(ln)
	defer srv.Close()
	waitFor(t, "delivery after the receiver came back", func() bool { return len(rcv.events()) == 3 })
	if got := ids(rcv.events()); !reflect.DeepEqual(got, []string{"a", "b", "c"}) {
		t.Errorf("received %v, want a, b, c in order", got)
	}
}

func TestQueueOverflowDropsOldest(t *testing.T) {
	release := make(chan struct{})
	var first sync.Once
	rcv := newReceiver(t, nil)
	inner := rcv.Config.Handler
	rcv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		first.Do(func() { <-release }) // hold the first delivery
		inner.ServeHTTP(w, r)
	})
	obs := &counter{}
	e := NewEndpoint(EndpointConfig{Name: "t", URL: rcv.URL, QueueSize: 3, MaxBatch: 1}, nil, obs)
	closeEndpoint(t, e)
	e.Write(Event{ID: "1"})
	waitFor(t, "first delivery in flight", func() bool {
		return len(rcv.attemptTimes()) == 0 && e.Stats().Pending == 1 && func() bool {
			e.mu.Lock()
			defer e.mu.Unlock()
			return e.inFlight == 1
		}()
	})
	start := time.Now()
	for _, id := range []string{"2", "3", "4", "5", "6"} {
		e.Write(Event{ID: id})
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("Write blocked for %s", d)
	}
	if s := e.Stats(); s.Dropped != 2 || s.Pending != 4 {
		t.Errorf("stats with a full queue: %+v, want 2 dropped, 4 pending", s)
	}
	close(release)
	waitFor(t, "delivery", func() bool { return len(rcv.events()) == 4 })
	if got := ids(rcv.events()); !reflect.DeepEqual(got, []string{"1", "4", "5", "6"}) {
		t.Errorf("received %v, want 1 then the newest 4, 5, 6", got)
	}
	if obs.dropped.Load() != 2 {
		t.Errorf("observer saw %d dropped", obs.dropped.Load())
	}
}

func TestIgnore(t *testing.T) {
	manifest := "application/vnd.oci.image.manifest.v1+json"
	cases := []struct {
		name    string
		types   []string
		actions []string
		ev      Event
		want    bool
	}{
		{"nothing ignored", nil, nil, Event{Action: ActionPull, Target: Target{MediaType: BlobMediaType}}, true},
		{"blob type ignored", []string{BlobMediaType}, nil, Event{Action: ActionPush, Target: Target{MediaType: BlobMediaType}}, false},
		{"other type kept", []string{BlobMediaType}, nil, Event{Action: ActionPush, Target: Target{MediaType: manifest}}, true},
		{"delete without a type kept", []string{BlobMediaType}, nil, Event{Action: ActionDelete, Target: Target{Digest: "sha256:x"}}, true},
		{"pull ignored", nil, []string{ActionPull}, Event{Action: ActionPull, Target: Target{MediaType: manifest}}, false},
		{"push kept", nil, []string{ActionPull}, Event{Action: ActionPush, Target: Target{MediaType: manifest}}, true},
		{"mount ignored", []string{manifest}, []string{ActionPull, ActionMount}, Event{Action: ActionMount, Target: Target{MediaType: BlobMediaType}}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rcv := newReceiver(t, nil)
			e := NewEndpoint(EndpointConfig{Name: "t", URL: rcv.URL, IgnoredMediaTypes: tc.types, IgnoredActions: tc.actions}, nil, nil)
			if got := e.Accepts(tc.ev); got != tc.want {
				t.Errorf("Accepts = %v, want %v", got, tc.want)
			}
			tc.ev.ID = "x"
			e.Write(tc.ev)
			e.Write(Event{ID: "marker", Action: "other"})
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := e.Close(ctx); err != nil {
				t.Fatal(err)
			}
			want := []string{"marker"}
			if tc.want {
				want = []string{"x", "marker"}
			}
			if got := ids(rcv.events()); !reflect.DeepEqual(got, want) {
				t.Errorf("received %v, want %v", got, want)
			}
		})
	}
}

func TestHeadersAndEnvelope(t *testing.T) {
	var body []byte
	var hdr http.Header
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		body, hdr = b, r.Header.Clone()
		mu.Unlock()
		if r.Method != http.MethodPost {
			t.Errorf("method %s", r.Method)
		}
	}))
	defer srv.Close()
	n := New(Config{
		Endpoints: []EndpointConfig{{Name: "t", URL: srv.URL, Headers: http.Header{"Authorization": {"Bearer tok"}, "X-Team": {"a", "b"}}}},
		Source:    Source{Addr: "reg:5000", InstanceID: "inst-1"},
	}, nil, nil)
	n.Notify(Event{
		Action:  ActionPush,
		Target:  Target{MediaType: "application/vnd.oci.image.manifest.v1+json", Size: 42, Digest: "sha256:abc", Repository: "lib/a", URL: "http://reg:5000/v2/lib/a/manifests/sha256:abc", Tag: "v1"},
		Request: Request{ID: "req-1", Addr: "10.0.0.1:1234", Host: "reg:5000", Method: "PUT", UserAgent: "crane"},
		Actor:   Actor{Name: "alice"},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.Close(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if got := hdr.Get("Content-Type"); got != EventsMediaType {
		t.Errorf("Content-Type %q", got)
	}
	if hdr.Get("Authorization") != "Bearer tok" || !reflect.DeepEqual(hdr["X-Team"], []string{"a", "b"}) {
		t.Errorf("configured headers not sent: %v", hdr)
	}
	// The field names distribution documents, exactly.
	var raw struct {
		Events []map[string]any `json:"events"`
	}
	if err := json.Unmarshal(body, &raw); err != nil || len(raw.Events) != 1 {
		t.Fatalf("envelope %s: %v", body, err)
	}
	ev := raw.Events[0]
	if id, _ := ev["id"].(string); id == "" {
		t.Error("no id")
	}
	if ts, _ := ev["timestamp"].(string); ts == "" {
		t.Error("no timestamp")
	} else if _, err := time.Parse(time.RFC3339Nano, ts); err != nil {
		t.Errorf("timestamp %q: %v", ts, err)
	}
	want := map[string]any{
		"action": "push",
		"target": map[string]any{"mediaType": "application/vnd.oci.image.manifest.v1+json", "size": 42.0, "length": 42.0, "digest": "sha256:abc",
			"repository": "lib/a", "url": "http://reg:5000/v2/lib/a/manifests/sha256:abc", "tag": "v1"},
		"request": map[string]any{"id": "req-1", "addr": "10.0.0.1:1234", "host": "reg:5000", "method": "PUT", "useragent": "crane"},
		"actor":   map[string]any{"name": "alice"},
		"source":  map[string]any{"addr": "reg:5000", "instanceID": "inst-1"},
	}
	for k, v := range want {
		if !reflect.DeepEqual(ev[k], v) {
			t.Errorf("%s: %v, want %v", k, ev[k], v)
		}
	}
}

func TestTimeout(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body) // so that the server notices the client leaving
		if calls.Add(1) == 1 {
			select { // hang past the timeout
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
			return
		}
	}))
	defer srv.Close()
	e := NewEndpoint(EndpointConfig{Name: "t", URL: srv.URL, Timeout: 100 * time.Millisecond, Backoff: 10 * time.Millisecond}, nil, nil)
	closeEndpoint(t, e)
	start := time.Now()
	e.Write(Event{ID: "1"})
	waitFor(t, "delivery", func() bool { return e.Stats().Sent == 1 })
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("the hanging attempt was not cut at the timeout: delivery took %s", took)
	}
	if s := e.Stats(); s.Failures != 1 {
		t.Errorf("stats %+v, want 1 failure (the timeout)", s)
	}
}

func TestCloseFlushesThenGivesUp(t *testing.T) {
	rcv := newReceiver(t, nil)
	e := NewEndpoint(EndpointConfig{Name: "t", URL: rcv.URL}, nil, nil)
	for i := 0; i < 100; i++ {
		e.Write(Event{ID: strings.Repeat("x", i%3+1)})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(rcv.events()); n != 100 {
		t.Errorf("Close flushed %d of 100 events", n)
	}
	e.Write(Event{ID: "late"}) // after Close: ignored, no panic

	failing := newReceiver(t, func(int) int { return http.StatusServiceUnavailable })
	obs := &counter{}
	e = NewEndpoint(EndpointConfig{Name: "down", URL: failing.URL, Backoff: 10 * time.Millisecond}, nil, obs)
	e.Write(Event{ID: "1"})
	e.Write(Event{ID: "2"})
	ctx, cancel = context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := e.Close(ctx)
	if err == nil || !strings.Contains(err.Error(), "2 events not delivered") {
		t.Errorf("Close: %v", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Close took %s past its deadline", took)
	}
	if obs.dropped.Load() != 2 || e.Stats().Dropped != 2 {
		t.Errorf("dropped: observer %d, stats %+v", obs.dropped.Load(), e.Stats())
	}
}

func TestNilNotifier(t *testing.T) {
	var n *Notifier
	if n.Enabled() || n.IncludeReferences() {
		t.Error("nil notifier enabled")
	}
	n.Notify(Event{}) // no panic
	if err := n.Close(context.Background()); err != nil {
		t.Error(err)
	}
	if New(Config{}, nil, nil) != nil {
		t.Error("New without endpoints is not nil")
	}
}
