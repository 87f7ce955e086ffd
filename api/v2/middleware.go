package v2

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/registryd/registryd/auth"
	"github.com/registryd/registryd/errcode"
	"github.com/registryd/registryd/internal/httprec"
	"github.com/registryd/registryd/storage/driver"
)

// RequestIDHeader carries the id of each request in both directions.
const RequestIDHeader = "X-Request-Id"

// Middleware wraps h with request ids, one access log line per request and
// recovery from panics (logged with the request id, answered 500 UNKNOWN).
func Middleware(h http.Handler, log logrus.FieldLogger) http.Handler {
	faults := newFaultLog(log)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get(RequestIDHeader)
		if !validRequestID(id) {
			var b [12]byte
			_, _ = rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		w.Header().Set(RequestIDHeader, id)
		// The authorizer records who the caller is here: the request it
		// returns, with the identity, is not the one this function holds.
		ctx, user := auth.TrackUser(r.Context())
		r = r.WithContext(ctx)
		rec := httprec.New(w)
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				if log != nil {
					log.WithFields(logrus.Fields{"request_id": id, "panic": p}).Error("panic serving request")
				}
				if rec.Status == 0 {
					errcode.ServeJSON(rec, errcode.New(errcode.Unknown))
				}
			}
			if log == nil {
				return
			}
			status := rec.Code()
			faults.observe(r, status, rec.Err)
			f := logrus.Fields{
				"request_id": id,
				"method":     r.Method,
				"path":       r.URL.Path,
				"status":     status,
				"bytes_out":  rec.Bytes,
				"duration":   time.Since(start).String(),
				"remote":     r.RemoteAddr,
			}
			if r.ContentLength > 0 {
				f["bytes_in"] = r.ContentLength
			}
			if u := user(); u != "" {
				f["user"] = u
			}
			entry := log.WithFields(f)
			if rec.Err != nil {
				if e := errcode.From(rec.Err); e != nil {
					entry = entry.WithField("code", e.Code)
				}
				if fault, _ := driver.FaultOf(rec.Err); fault != "" {
					entry = entry.WithField("storage_fault", string(fault))
				}
				if status >= 500 {
					entry.WithError(rec.Err).Error("request failed")
					return
				}
				entry = entry.WithField("error", rec.Err.Error())
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
