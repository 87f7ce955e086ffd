package s3

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/registryd/registryd/storage/driver"
)

// fakeStore is an endpoint that answers the first `failing` requests with
// a fault (status), and then as S3 would for one object.
type fakeStore struct {
	status  int    // the fault's status: 503, 429, 507
	code    string // its S3 code
	failing int    // requests that get the fault; -1: all

	mu       sync.Mutex
	requests int
	bodies   [][]byte // bodies of the PUTs that got through
	object   []byte
}

func (f *fakeStore) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.requests++
	fail := f.failing < 0 || f.requests <= f.failing
	if !fail && r.Method == http.MethodPut {
		if strings.HasPrefix(r.Header.Get("X-Amz-Content-Sha256"), "STREAMING-") {
			body = unchunk(body)
		}
		f.bodies = append(f.bodies, body)
		f.object = body
	}
	obj := f.object
	f.mu.Unlock()
	if fail {
		w.Header().Set("Retry-After", "3")
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(f.status)
		io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>`+f.code+`</Code><Message>slow down</Message><Resource>/b/k</Resource><RequestId>1</RequestId></Error>`)
		return
	}
	switch r.Method {
	case http.MethodPut:
		w.Header().Set("ETag", `"e"`)
	case http.MethodGet:
		w.Header().Set("ETag", `"e"`)
		w.Header().Set("Last-Modified", time.Now().UTC().Format(http.TimeFormat))
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(obj)
	}
}

// unchunk decodes an aws-chunked body: <hex size>;chunk-signature=...
// CRLF, the data, CRLF, until a chunk of size 0.
func unchunk(b []byte) []byte {
	var out []byte
	for {
		line, rest, ok := bytes.Cut(b, []byte("\r\n"))
		if !ok {
			return out
		}
		hexSize, _, _ := strings.Cut(string(line), ";")
		n, err := strconv.ParseInt(hexSize, 16, 64)
		if err != nil || n == 0 || int64(len(rest)) < n {
			return out
		}
		out = append(out, rest[:n]...)
		b = bytes.TrimPrefix(rest[n:], []byte("\r\n"))
	}
}

func (f *fakeStore) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests
}

func fakeDriver(t *testing.T, endpoint string) *Driver {
	t.Helper()
	d, err := New(Parameters{AccessKey: "ak", SecretKey: "sk", Region: "us-east-1", RegionEndpoint: endpoint, Bucket: "bucket", ForcePathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// A store that keeps throttling: each request is tried retryAttempts
// times, then the failure is a FaultThrottled with the store's
// Retry-After, whatever the status it came as.
func TestThrottledUntilGivingUp(t *testing.T) {
	for _, c := range []struct {
		status int
		code   string
		fault  driver.Fault
	}{
		{http.StatusServiceUnavailable, "SlowDown", driver.FaultThrottled},
		{http.StatusTooManyRequests, "TooManyRequests", driver.FaultThrottled},
		{http.StatusServiceUnavailable, "XMinioServerNotInitialized", driver.FaultThrottled},
		{http.StatusInsufficientStorage, "XMinioStorageFull", driver.FaultFull},
	} {
		t.Run(c.code, func(t *testing.T) {
			t.Parallel()
			fs := &fakeStore{status: c.status, code: c.code, failing: -1}
			srv := httptest.NewServer(fs)
			defer srv.Close()
			d := fakeDriver(t, srv.URL)
			_, err := d.GetContent(context.Background(), "/docker/x")
			fault, hint := driver.FaultOf(err)
			if fault != c.fault || hint != 3*time.Second {
				t.Fatalf("GetContent against a store answering %d %s: %v (fault %q, retry after %s)", c.status, c.code, err, fault, hint)
			}
			if n := fs.count(); n != retryAttempts {
				t.Errorf("%d attempts, want %d", n, retryAttempts)
			}
			if errors.Is(err, driver.ErrPathNotFound) {
				t.Errorf("a throttled request taken for a missing path")
			}
		})
	}
}

// A throttled request that then gets through succeeds, its body sent
// again whole (bodies are replayed by minio-go, which the transport's
// error makes retry).
func TestThrottledThenThrough(t *testing.T) {
	fs := &fakeStore{status: http.StatusServiceUnavailable, code: "SlowDown", failing: 2}
	srv := httptest.NewServer(fs)
	defer srv.Close()
	d := fakeDriver(t, srv.URL)
	content := bytes.Repeat([]byte("registryd "), 10000)
	if err := d.PutContent(context.Background(), "/docker/x", content); err != nil {
		t.Fatalf("PutContent after two SlowDowns: %v", err)
	}
	if len(fs.bodies) != 1 || !bytes.Equal(fs.bodies[0], content) {
		t.Fatalf("the store got %d bodies, want the content once", len(fs.bodies))
	}
	got, err := d.GetContent(context.Background(), "/docker/x")
	if err != nil || !bytes.Equal(got, content) {
		t.Fatalf("GetContent: %v", err)
	}
	if th, _, _ := d.transportFaults(); th != 2 {
		t.Errorf("%d throttled attempts counted, want 2", th)
	}
}

// A store nobody answers for: the attempts are bounded, and the failure
// is FaultUnreachable.
func TestUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	d := fakeDriver(t, "http://"+addr)
	start := time.Now()
	_, err = d.Stat(context.Background(), "/docker/x")
	if fault, _ := driver.FaultOf(err); fault != driver.FaultUnreachable {
		t.Fatalf("Stat with the store down: %v (fault %q)", err, fault)
	}
	if _, _, un := d.transportFaults(); un != retryAttempts {
		t.Errorf("%d attempts, want %d", un, retryAttempts)
	}
	t.Logf("gave up after %s", time.Since(start).Round(time.Millisecond))

	// A cancelled request is the caller's doing: no fault, no retries.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := d.Stat(ctx, "/docker/x"); err == nil || !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Stat: %v", err)
	} else if fault, _ := driver.FaultOf(err); fault != "" {
		t.Errorf("cancelled Stat reported as fault %q", fault)
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, c := range []struct {
		h    string
		want time.Duration
	}{
		{"", 0}, {"0", 0}, {"-5", 0}, {"7", 7 * time.Second}, {"999999999999", maxRetryAfter}, {"soon", 0},
		{now.Add(20 * time.Second).Format(http.TimeFormat), 20 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
		{now.Add(time.Hour).Format(http.TimeFormat), maxRetryAfter},
	} {
		if got := retryAfter(c.h, now); got != c.want {
			t.Errorf("retryAfter(%q) = %s, want %s", c.h, got, c.want)
		}
	}
}
