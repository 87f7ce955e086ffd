// Package errcode holds the error codes of the OCI Distribution
// specification and the Docker Registry HTTP API V2, and the error type that
// carries one. It is a leaf package: the storage layer returns these errors so
// that the code a client finally sees is decided where the failure is known,
// and the HTTP layer only renders them.
package errcode

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Code is an error code as it appears in the "code" field of an error body.
type Code string

// The codes of the distribution specification (and Docker's TOOMANYREQUESTS).
const (
	BlobUnknown             Code = "BLOB_UNKNOWN"
	BlobUploadInvalid       Code = "BLOB_UPLOAD_INVALID"
	BlobUploadUnknown       Code = "BLOB_UPLOAD_UNKNOWN"
	DigestInvalid           Code = "DIGEST_INVALID"
	ManifestBlobUnknown     Code = "MANIFEST_BLOB_UNKNOWN"
	ManifestInvalid         Code = "MANIFEST_INVALID"
	ManifestUnknown         Code = "MANIFEST_UNKNOWN"
	NameInvalid             Code = "NAME_INVALID"
	NameUnknown             Code = "NAME_UNKNOWN"
	SizeInvalid             Code = "SIZE_INVALID"
	Unauthorized            Code = "UNAUTHORIZED"
	Denied                  Code = "DENIED"
	Unsupported             Code = "UNSUPPORTED"
	TooManyRequests         Code = "TOOMANYREQUESTS"
	RangeInvalid            Code = "RANGE_INVALID"
	PaginationNumberInvalid Code = "PAGINATION_NUMBER_INVALID"
	TagInvalid              Code = "TAG_INVALID"
	Unknown                 Code = "UNKNOWN"
	// Unavailable is Docker's code for a registry that cannot serve the
	// request now but may later (the storage is full, the object store
	// throttles or cannot be reached): 503, with Retry-After.
	Unavailable Code = "UNAVAILABLE"
)

type codeInfo struct {
	status  int
	message string
}

// info gives each code its HTTP status and the spec's default message.
var info = map[Code]codeInfo{
	BlobUnknown:             {http.StatusNotFound, "blob unknown to registry"},
	BlobUploadInvalid:       {http.StatusBadRequest, "blob upload invalid"},
	BlobUploadUnknown:       {http.StatusNotFound, "blob upload unknown to registry"},
	DigestInvalid:           {http.StatusBadRequest, "provided digest did not match uploaded content"},
	ManifestBlobUnknown:     {http.StatusBadRequest, "manifest references a manifest or blob unknown to registry"},
	ManifestInvalid:         {http.StatusBadRequest, "manifest invalid"},
	ManifestUnknown:         {http.StatusNotFound, "manifest unknown to registry"},
	NameInvalid:             {http.StatusBadRequest, "invalid repository name"},
	NameUnknown:             {http.StatusNotFound, "repository name not known to registry"},
	SizeInvalid:             {http.StatusBadRequest, "provided length did not match content length"},
	Unauthorized:            {http.StatusUnauthorized, "authentication required"},
	Denied:                  {http.StatusForbidden, "requested access to the resource is denied"},
	Unsupported:             {http.StatusMethodNotAllowed, "the operation is unsupported"},
	TooManyRequests:         {http.StatusTooManyRequests, "too many requests"},
	RangeInvalid:            {http.StatusRequestedRangeNotSatisfiable, "invalid content range"},
	PaginationNumberInvalid: {http.StatusBadRequest, "invalid number of results requested"},
	TagInvalid:              {http.StatusBadRequest, "manifest tag did not match URI"},
	Unknown:                 {http.StatusInternalServerError, "unknown error"},
	Unavailable:             {http.StatusServiceUnavailable, "service unavailable"},
}

// Status is the HTTP status code that goes with c.
func (c Code) Status() int {
	if i, ok := info[c]; ok {
		return i.status
	}
	return http.StatusInternalServerError
}

// Message is the spec's default message for c.
func (c Code) Message() string {
	if i, ok := info[c]; ok {
		return i.message
	}
	return "unknown error"
}

// Error is one entry of an error body. Status overrides the code's default
// HTTP status where the spec asks for another one (a 416 for an upload
// chunk out of order is still BLOB_UPLOAD_INVALID, for instance).
type Error struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
	Detail  any    `json:"detail,omitempty"`
	Status  int    `json:"-"`
	// RetryAfter, when positive, is sent as the Retry-After header: when
	// the client may try again (429, 503).
	RetryAfter time.Duration `json:"-"`
	// Err is the underlying cause; logged, never sent to the client.
	Err error `json:"-"`
}

// New returns an Error with the code's default message.
func New(c Code) *Error { return &Error{Code: c, Message: c.Message()} }

// Newf returns an Error with a formatted message.
func Newf(c Code, format string, args ...any) *Error {
	return &Error{Code: c, Message: fmt.Sprintf(format, args...)}
}

// WithDetail sets the detail object and returns e.
func (e *Error) WithDetail(d any) *Error { e.Detail = d; return e }

// WithStatus overrides the HTTP status and returns e.
func (e *Error) WithStatus(s int) *Error { e.Status = s; return e }

// WithRetryAfter sets the Retry-After delay and returns e.
func (e *Error) WithRetryAfter(d time.Duration) *Error { e.RetryAfter = d; return e }

// Wrap records the cause and returns e.
func (e *Error) Wrap(err error) *Error { e.Err = err; return e }

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// HTTPStatus is the status to answer with.
func (e *Error) HTTPStatus() int {
	if e.Status != 0 {
		return e.Status
	}
	return e.Code.Status()
}

// Is reports whether err carries code c anywhere in its chain.
func Is(err error, c Code) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == c
}

// From returns the *Error in err's chain, or nil.
func From(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return nil
}

// Body is the JSON error body of the specification.
type Body struct {
	Errors []*Error `json:"errors"`
}

// ServeJSON writes err as the spec's error body with its HTTP status. An
// error that carries no code is reported as UNKNOWN with a generic message so
// that internal details (paths, driver errors) never reach the client.
func ServeJSON(w http.ResponseWriter, err error) int {
	e := From(err)
	if e == nil {
		e = New(Unknown)
	}
	status := e.HTTPStatus()
	if e.RetryAfter > 0 {
		// Whole seconds, rounded up: "Retry-After: 0" would invite a
		// client to retry at once.
		w.Header().Set("Retry-After", strconv.FormatInt(int64((e.RetryAfter+time.Second-1)/time.Second), 10))
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Del("Content-Length")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(Body{Errors: []*Error{e}})
	return status
}
