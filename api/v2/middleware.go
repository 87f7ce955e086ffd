package v2

import (
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/http"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/registryd/registryd/errcode"
)

// recorder wraps a ResponseWriter to learn the status and bytes for the
// access log. It forwards ReadFrom so that blob downloads keep sendfile.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
	err    error
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

func (r *recorder) ReadFrom(src io.Reader) (int64, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	var n int64
	var err error
	if rf, ok := r.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(src)
	} else {
		n, err = io.Copy(struct{ io.Writer }{r.ResponseWriter}, src)
	}
	r.bytes += n
	return n, err
}

func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// RequestIDHeader carries the id of each request in both directions.
const RequestIDHeader = "X-Request-Id"

// Middleware wraps h with request ids, one access log line per request and
// recovery from panics (logged with the request id, answered 500 UNKNOWN).
func Middleware(h http.Handler, log logrus.FieldLogger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get(RequestIDHeader)
		if !validRequestID(id) {
			var b [12]byte
			_, _ = rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		w.Header().Set(RequestIDHeader, id)
		rec := &recorder{ResponseWriter: w}
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				if log != nil {
					log.WithFields(logrus.Fields{"request_id": id, "panic": p}).Error("panic serving request")
				}
				if rec.status == 0 {
					errcode.ServeJSON(rec, errcode.New(errcode.Unknown))
				}
			}
			if log == nil {
				return
			}
			status := rec.status
			if status == 0 {
				status = http.StatusOK
			}
			f := logrus.Fields{
				"request_id": id,
				"method":     r.Method,
				"path":       r.URL.Path,
				"status":     status,
				"bytes_out":  rec.bytes,
				"duration":   time.Since(start).String(),
				"remote":     r.RemoteAddr,
			}
			if r.ContentLength > 0 {
				f["bytes_in"] = r.ContentLength
			}
			entry := log.WithFields(f)
			if rec.err != nil {
				if e := errcode.From(rec.err); e != nil {
					entry = entry.WithField("code", e.Code)
				}
				if status >= 500 {
					entry.WithError(rec.err).Error("request failed")
					return
				}
				entry = entry.WithField("error", rec.err.Error())
			}
			entry.Info("request")
		}()
		h.ServeHTTP(rec, r)
	})
}

// validRequestID accepts an incoming id only if it is short and plain, so a
// client cannot inject into logs through it.
func validRequestID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}
