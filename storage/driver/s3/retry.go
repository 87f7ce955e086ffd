package s3

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/registryd/registryd/storage/driver"
)

// Throttling and an unreachable object store.
//
// Every request the driver sends goes through faultTransport, below
// minio-go's client. It turns what is a condition of the store rather than
// an answer into an error of the transport, a *driver.FaultError:
//
//   - 503 Service Unavailable and 429 Too Many Requests (S3's SlowDown,
//     MinIO's "server busy" and "not initialized") are FaultThrottled, with
//     the store's Retry-After when it sends one;
//   - 507 Insufficient Storage (MinIO's XMinioStorageFull) is FaultFull;
//   - a request that could not be sent or answered (connection refused or
//     reset, closed before the answer, a timeout) is FaultUnreachable.
//
// minio-go retries every transport error with jittered exponential backoff
// (200 ms doubling, at most 1 s between attempts), replaying the body
// (every body the driver sends is seekable: a part buffer, a small
// object), so each of these is retried where it happened, one S3 request,
// not as a whole driver operation (a Move is a copy then a delete: the
// operation is not idempotent, each request is). retryAttempts bounds
// the attempts; what still fails reaches the registry as the FaultError,
// which answers 503 UNAVAILABLE with Retry-After. Everything else (an S3
// error such as NoSuchKey or AccessDenied, a TLS certificate the client
// does not trust) passes through untouched.

// retryAttempts is how many times one S3 request is tried: at most about
// 5 s of waiting between the first and the last (7 waits of at most 0.2,
// 0.4, 0.8, then 1 s).
const retryAttempts = 8

// withRetries makes the client built from opts send through a
// faultTransport and try each request retryAttempts times.
func withRetries(opts *minio.Options, secure bool) (*faultTransport, error) {
	base := opts.Transport
	if base == nil {
		tr, err := minio.DefaultTransport(secure)
		if err != nil {
			return nil, err
		}
		base = tr
	}
	ft := &faultTransport{base: base}
	opts.Transport = ft
	opts.MaxRetries = retryAttempts
	return ft, nil
}

// faultTransport is the http.RoundTripper described above.
type faultTransport struct {
	base http.RoundTripper
	// Attempts answered throttled, full, or not at all: counted for
	// tests and the log.
	throttled, full, unreachable atomic.Int64
}

func (t *faultTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		if req.Context().Err() != nil || untrusted(err) {
			// The caller gave up, or the store is not who it should
			// be: neither is a condition that passes.
			return nil, err
		}
		t.unreachable.Add(1)
		return nil, &driver.FaultError{Fault: driver.FaultUnreachable, Err: &transportError{req.Method, err}}
	}
	var fault driver.Fault
	switch resp.StatusCode {
	case http.StatusServiceUnavailable, http.StatusTooManyRequests:
		fault = driver.FaultThrottled
		t.throttled.Add(1)
	case http.StatusInsufficientStorage:
		fault = driver.FaultFull
		t.full.Add(1)
	default:
		return resp, nil
	}
	// The error body names the S3 code (SlowDown, XMinioStorageFull);
	// the rest of the answer is not needed.
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	return nil, &driver.FaultError{
		Fault:      fault,
		RetryAfter: retryAfter(resp.Header.Get("Retry-After"), time.Now()),
		Err:        &statusError{method: req.Method, status: resp.Status, code: s3Code(b)},
	}
}

// untrusted reports a TLS failure to verify the store: retrying changes
// nothing, and minio-go gives up on it at once, which a wrapped error
// would hide from it.
func untrusted(err error) bool {
	var ua x509.UnknownAuthorityError
	var ci x509.CertificateInvalidError
	var hn x509.HostnameError
	var cv *tls.CertificateVerificationError
	return errors.As(err, &ua) || errors.As(err, &ci) || errors.As(err, &hn) || errors.As(err, &cv)
}

// transportError is a request the store did not answer. Its text never
// says "EOF": minio-go replaces errors that do with one of its own,
// dropping the FaultError it would then no longer carry.
type transportError struct {
	method string
	err    error
}

func (e *transportError) Error() string {
	if errors.Is(e.err, io.EOF) || errors.Is(e.err, io.ErrUnexpectedEOF) {
		return e.method + ": the object store closed the connection before answering"
	}
	return fmt.Sprintf("%s: %v", e.method, e.err)
}

func (e *transportError) Unwrap() error { return e.err }

// statusError is a request the store refused for its own condition.
type statusError struct {
	method, status, code string
}

func (e *statusError) Error() string {
	if e.code != "" {
		return fmt.Sprintf("%s: the object store answered %s (%s)", e.method, e.status, e.code)
	}
	return fmt.Sprintf("%s: the object store answered %s", e.method, e.status)
}

var s3CodeRE = regexp.MustCompile(`<Code>([A-Za-z0-9.]{1,64})</Code>`)

// s3Code is the <Code> of an S3 error body, or "".
func s3Code(body []byte) string {
	if m := s3CodeRE.FindSubmatch(body); m != nil {
		return string(m[1])
	}
	return ""
}

// maxRetryAfter bounds the store's hint passed on to clients.
const maxRetryAfter = time.Minute

// retryAfter reads a Retry-After header (seconds, or an HTTP date), 0 when
// absent or unreadable.
func retryAfter(h string, now time.Time) time.Duration {
	if h == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.ParseInt(h, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		d = time.Duration(min(n, int64(maxRetryAfter/time.Second))) * time.Second
	} else if at, err := http.ParseTime(h); err == nil {
		d = at.Sub(now)
	}
	return max(0, min(d, maxRetryAfter))
}

// transportFaults reports the attempts the store answered throttled or
// full, or did not answer (tests).
func (d *Driver) transportFaults() (throttled, full, unreachable int64) {
	if d.faults == nil {
		return 0, 0, 0
	}
	return d.faults.throttled.Load(), d.faults.full.Load(), d.faults.unreachable.Load()
}
