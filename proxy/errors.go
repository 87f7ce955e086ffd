package proxy

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/registryd/registryd/errcode"
)

// errKind classifies what went wrong with an upstream.
type errKind int

const (
	// kindUnavailable: the upstream could not be asked or did not answer
	// usefully (refused, timed out, reset, 5xx, circuit open). A cached
	// copy is served instead, marked stale.
	kindUnavailable errKind = iota + 1
	// kindRateLimited: the upstream answered 429 (or said its limit is
	// used up); a cached copy is served instead.
	kindRateLimited
	// kindDenied: the upstream refused the mirror's credentials (401,
	// 403). Docker Hub says this of repositories that do not exist too.
	kindDenied
	// kindNotFound: the upstream does not have it (404).
	kindNotFound
	// kindInvalid: the upstream answered with content that cannot be
	// cached (a digest that does not match, a manifest registryd does not
	// serve): never stored, never served.
	kindInvalid
)

// upstreamError is a failure of an upstream request.
type upstreamError struct {
	upstream   string
	kind       errKind
	status     int           // the upstream's HTTP status, 0 without one
	retryAfter time.Duration // when asking again makes sense; 0 unknown
	msg        string
	err        error
}

func (e *upstreamError) Error() string {
	s := "upstream " + e.upstream + ": " + e.msg
	if e.err != nil {
		s += ": " + e.err.Error()
	}
	return s
}

func (e *upstreamError) Unwrap() error { return e.err }

// stalable reports whether a cached copy should be served in place of
// the upstream's answer (every failure but a definite "not there").
func (e *upstreamError) stalable() bool { return e.kind != kindNotFound && e.kind != kindInvalid }

func unavailable(up string, err error, format string, args ...any) *upstreamError {
	return &upstreamError{upstream: up, kind: kindUnavailable, msg: fmt.Sprintf(format, args...), err: err}
}

// statusError classifies a response that is not what the request wanted.
func statusError(up string, resp *http.Response, what string) *upstreamError {
	e := &upstreamError{upstream: up, status: resp.StatusCode, msg: fmt.Sprintf("%s: %s", what, resp.Status)}
	switch s := resp.StatusCode; {
	case s == http.StatusNotFound:
		e.kind = kindNotFound
	case s == http.StatusUnauthorized || s == http.StatusForbidden:
		e.kind = kindDenied
	case s == http.StatusTooManyRequests:
		e.kind = kindRateLimited
		e.retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	default:
		e.kind = kindUnavailable
		e.retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	return e
}

// parseRetryAfter reads Retry-After: seconds or an HTTP date; 0 when
// absent or unreadable.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// clientError is what a client sees of an upstream failure when nothing
// cached can stand in: the upstream's 404 as the unknown code of what was
// asked for (notFound), a 429 as 429 with Retry-After (never a 404), an
// outage as 503.
func clientError(err error, notFound func() *errcode.Error) error {
	shared, ok := err.(*upstreamError)
	if !ok {
		return err
	}
	// Errors are shared by every request that waited on one fetch.
	c := *shared
	ue := &c
	// The message tells the client what the upstream said; the cause is
	// kept for the log where the message does not hold it.
	switch ue.kind {
	case kindNotFound:
		e := notFound()
		e.Message = ue.Error()
		return e
	case kindRateLimited:
		if ue.retryAfter <= 0 {
			ue.retryAfter = defaultRateLimitWait
		}
		return errcode.Newf(errcode.TooManyRequests, "upstream %s: %s", ue.upstream, ue.msg).WithRetryAfter(ue.retryAfter).Wrap(ue)
	case kindDenied:
		return errcode.Newf(errcode.Denied, "%s (the repository may not exist there, or the mirror's credentials do not allow it)", ue.Error())
	case kindInvalid:
		return errcode.Newf(errcode.Unknown, "%s", ue.Error()).WithStatus(http.StatusBadGateway)
	default:
		if ue.retryAfter <= 0 {
			ue.retryAfter = 10 * time.Second
		}
		return errcode.Newf(errcode.Unavailable, "upstream %s unavailable", ue.upstream).WithRetryAfter(ue.retryAfter).Wrap(ue)
	}
}
