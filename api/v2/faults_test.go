package v2

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/sirupsen/logrus"

	"github.com/registryd/registryd/storage"
	"github.com/registryd/registryd/storage/driver"
	"github.com/registryd/registryd/storage/driver/inmemory"
)

// faultyDriver is an in-memory driver whose writes fail as the test says:
// with a full disk, a throttling or absent backend, or a plain failure.
// Reads always work (a full disk still serves what it holds). The errors
// name paths and credentials the way real ones do, so the tests can check
// that none reaches a client.
type faultyDriver struct {
	driver.StorageDriver
	mode atomic.Value // string: "", "full", "throttled", "unreachable", "broken"
}

const secretish = "/var/lib/registry/docker/registry/v2/blobs/AKIAIOSFODNN7EXAMPLE"

func (d *faultyDriver) fail() error {
	m, _ := d.mode.Load().(string)
	switch m {
	case "full":
		return &fs.PathError{Op: "write", Path: secretish, Err: syscall.ENOSPC}
	case "quota":
		return &fs.PathError{Op: "open", Path: secretish, Err: syscall.EDQUOT}
	case "throttled":
		return fmt.Errorf("s3: put %s: %w", secretish, &driver.FaultError{Fault: driver.FaultThrottled, RetryAfter: 7 * time.Second, Err: errors.New("SlowDown bucket=secret-bucket")})
	case "unreachable":
		return fmt.Errorf("s3: put %s: %w", secretish, &driver.FaultError{Fault: driver.FaultUnreachable, Err: errors.New("dial tcp 10.0.0.1:9000: connection refused")})
	case "broken":
		return &fs.PathError{Op: "open", Path: secretish, Err: syscall.EACCES}
	}
	return nil
}

func (d *faultyDriver) PutContent(ctx context.Context, p string, b []byte) error {
	if err := d.fail(); err != nil {
		return err
	}
	return d.StorageDriver.PutContent(ctx, p, b)
}

func (d *faultyDriver) Move(ctx context.Context, src, dst string) error {
	if err := d.fail(); err != nil {
		return err
	}
	return d.StorageDriver.Move(ctx, src, dst)
}

func (d *faultyDriver) Writer(ctx context.Context, p string, app bool) (driver.FileWriter, error) {
	w, err := d.StorageDriver.Writer(ctx, p, app)
	if err != nil {
		return nil, err
	}
	return &faultyWriter{FileWriter: w, d: d}, nil
}

type faultyWriter struct {
	driver.FileWriter
	d *faultyDriver
}

// Write fails after the first bytes, as a disk that fills up mid-upload.
func (w *faultyWriter) Write(p []byte) (int, error) {
	if err := w.d.fail(); err != nil {
		n, _ := w.FileWriter.Write(p[:len(p)/2])
		return n, err
	}
	return w.FileWriter.Write(p)
}

// syncBuffer is a log output tests read while the server writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type errBody struct {
	Errors []struct {
		Code    string            `json:"code"`
		Message string            `json:"message"`
		Detail  map[string]string `json:"detail"`
	} `json:"errors"`
}

// TestStorageFaults: a storage fault is 503 UNAVAILABLE with Retry-After
// and a message naming the cause, on every kind of write; pulls go on;
// the log names the condition once and its end; writing resumes by itself.
// Any other storage failure is 500 UNKNOWN. Neither tells the client a
// path, a bucket or a key.
func TestStorageFaults(t *testing.T) {
	for _, c := range []struct {
		mode, cause, msg string
		status           int
		retryAfter       string
	}{
		{"full", "full", "storage is full", 503, "30"},
		{"quota", "full", "storage is full", 503, "30"},
		{"throttled", "throttled", "throttling", 503, "7"},
		{"unreachable", "unreachable", "cannot be reached", 503, "5"},
		{"broken", "", "", 500, ""},
	} {
		t.Run(c.mode, func(t *testing.T) {
			d := &faultyDriver{StorageDriver: inmemory.New()}
			logBuf := &syncBuffer{}
			log := logrus.New()
			log.SetOutput(logBuf)
			log.SetFormatter(&logrus.JSONFormatter{})
			reg := storage.New(d, storage.Options{})
			srv := httptest.NewServer(Middleware(NewHandler(reg, Options{DeleteEnabled: true}), log))
			defer srv.Close()
			tr := &testRegistry{t: t, srv: srv}

			old := []byte("pushed before the fault")
			oldDigest := digest.FromBytes(old)
			if r := tr.do("POST", "/v2/f/a/blobs/uploads/?digest="+oldDigest.String(), old); r.StatusCode != 201 {
				t.Fatalf("push before the fault: %d", r.StatusCode)
			}

			session := func() string {
				return strings.TrimPrefix(tr.do("POST", "/v2/f/a/blobs/uploads/", nil).Header.Get("Location"), srv.URL)
			}
			loc1, loc2 := session(), session()

			d.mode.Store(c.mode)
			content := bytes.Repeat([]byte("layer "), 200000)
			dg := digest.FromBytes(content).String()
			check := func(what string, r *http.Response) {
				t.Helper()
				b := readBody(t, r)
				if r.StatusCode != c.status {
					t.Fatalf("%s: %d %s, want %d", what, r.StatusCode, b, c.status)
				}
				for _, leak := range []string{"AKIA", "/var/lib", "secret", "10.0.0.1", "docker/registry"} {
					if bytes.Contains(b, []byte(leak)) {
						t.Errorf("%s: the answer tells the client %q: %s", what, leak, b)
					}
				}
				var e errBody
				if err := json.Unmarshal(b, &e); err != nil || len(e.Errors) != 1 {
					t.Fatalf("%s: error body %s", what, b)
				}
				if c.status == 500 {
					if e.Errors[0].Code != "UNKNOWN" {
						t.Errorf("%s: code %s, want UNKNOWN", what, e.Errors[0].Code)
					}
					return
				}
				if e.Errors[0].Code != "UNAVAILABLE" || !strings.Contains(e.Errors[0].Message, c.msg) || e.Errors[0].Detail["cause"] != c.cause {
					t.Errorf("%s: %s, want UNAVAILABLE saying %q (cause %s)", what, b, c.msg, c.cause)
				}
				if got := r.Header.Get("Retry-After"); got != c.retryAfter {
					t.Errorf("%s: Retry-After %q, want %q", what, got, c.retryAfter)
				}
			}
			// Every kind of write: a session, a monolithic push, a chunk,
			// the end of an upload, a manifest.
			check("POST (new session)", tr.do("POST", "/v2/f/a/blobs/uploads/", nil))
			check("POST ?digest=", tr.do("POST", "/v2/f/a/blobs/uploads/?digest="+dg, content))
			check("PATCH", tr.do("PATCH", loc1, content, "Content-Type", "application/octet-stream"))
			check("PUT ?digest= with the body", tr.do("PUT", loc2+"?digest="+dg, content, "Content-Type", "application/octet-stream"))
			cfg := digest.FromBytes(old)
			m := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},"layers":[]}`, ociManifest, cfg, len(old))
			check("PUT manifest", tr.do("PUT", "/v2/f/a/manifests/v1", []byte(m), "Content-Type", ociManifest))

			// What is stored is still served.
			if r := tr.do("GET", "/v2/f/a/blobs/"+oldDigest.String(), nil); r.StatusCode != 200 || !bytes.Equal(readBody(t, r), old) {
				t.Fatalf("GET of a stored blob during the fault: %d", r.StatusCode)
			}
			// Nothing half-visible.
			if r := tr.do("HEAD", "/v2/f/a/blobs/"+dg, nil); r.StatusCode != 404 {
				t.Errorf("blob visible after the failed pushes: %d", r.StatusCode)
			}

			// The fault passes: the same pushes succeed, no restart.
			d.mode.Store("")
			if r := tr.do("POST", "/v2/f/a/blobs/uploads/?digest="+dg, content); r.StatusCode != 201 {
				t.Fatalf("push after the fault: %d %s", r.StatusCode, readBody(t, r))
			}
			if r := tr.do("PUT", "/v2/f/a/manifests/v1", []byte(m), "Content-Type", ociManifest); r.StatusCode != 201 {
				t.Fatalf("manifest after the fault: %d %s", r.StatusCode, readBody(t, r))
			}

			logs := logBuf.String()
			if c.cause == "" {
				if strings.Contains(logs, "storage_fault") {
					t.Errorf("a plain failure logged as a storage fault:\n%s", logs)
				}
				return
			}
			if n := strings.Count(logs, `"msg":"`+faultWhat[driver.Fault(c.cause)]); n != 1 {
				t.Errorf("the condition logged %d times, want once:\n%s", n, logs)
			}
			if !strings.Contains(logs, `"msg":"storage fault over: requests succeed again"`) || !strings.Contains(logs, `"refused":5`) {
				t.Errorf("the end of the condition not logged with 5 requests refused:\n%s", logs)
			}
			// The access log names the cause of each refused request, and
			// keeps the storage's own error for the operator.
			if n := strings.Count(logs, `"storage_fault":"`+c.cause+`"`); n < 6 {
				t.Errorf("%d log lines name the cause, want the 5 requests and the condition:\n%s", n, logs)
			}
			if !strings.Contains(logs, secretish) {
				t.Errorf("the log lacks the storage's own error:\n%s", logs)
			}
		})
	}
}
