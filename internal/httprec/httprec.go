// Package httprec records what a handler answered (status, body bytes)
// for access logs and metrics, without hiding the interfaces net/http uses:
// ReadFrom is forwarded so blob downloads keep sendfile, Flush and Unwrap
// so http.ResponseController still reaches the connection.
package httprec

import (
	"io"
	"net/http"
)

// Recorder wraps a ResponseWriter.
type Recorder struct {
	http.ResponseWriter
	Status int   // first status written; 0 until then
	Bytes  int64 // body bytes written
	// Err is the error a handler answered with, for the access log.
	Err error
}

// New wraps w.
func New(w http.ResponseWriter) *Recorder { return &Recorder{ResponseWriter: w} }

// Code is the status sent, 200 if the handler wrote none.
func (r *Recorder) Code() int {
	if r.Status == 0 {
		return http.StatusOK
	}
	return r.Status
}

func (r *Recorder) WriteHeader(code int) {
	if r.Status == 0 {
		r.Status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *Recorder) Write(b []byte) (int, error) {
	if r.Status == 0 {
		r.Status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.Bytes += int64(n)
	return n, err
}

// ReadFrom forwards to the wrapped writer so that an *os.File source is
// sent with sendfile.
func (r *Recorder) ReadFrom(src io.Reader) (int64, error) {
	if r.Status == 0 {
		r.Status = http.StatusOK
	}
	var n int64
	var err error
	if rf, ok := r.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(src)
	} else {
		n, err = io.Copy(struct{ io.Writer }{r.ResponseWriter}, src)
	}
	r.Bytes += n
	return n, err
}

func (r *Recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (r *Recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// Find returns every Recorder in w's chain of wrappers (following Unwrap),
// so a handler's error reaches the access log whatever wraps it.
func Find(w http.ResponseWriter) []*Recorder {
	var out []*Recorder
	for w != nil {
		if r, ok := w.(*Recorder); ok {
			out = append(out, r)
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			break
		}
		w = u.Unwrap()
	}
	return out
}
