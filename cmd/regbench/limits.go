package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// Physical limits of this machine, measured in the same run: what no
// registry can beat.

// limitSHA256 is single-core sha256 throughput in MB/s.
func limitSHA256(size int64) float64 {
	buf := make([]byte, 1<<20)
	io.ReadFull(newPRNG(1, int64(len(buf))), buf)
	h := sha256.New()
	n := min(size, 1<<30)
	start := time.Now()
	for done := int64(0); done < n; done += int64(len(buf)) {
		h.Write(buf)
	}
	h.Sum(nil)
	return mbps(n, time.Since(start))
}

// limitDisk writes size bytes to a file in dir and fsyncs it: MB/s. The
// file is left for limitLoopback.
func limitDisk(dir string, size int64) (float64, string, error) {
	p := filepath.Join(dir, "limit-disk")
	buf := make([]byte, 1<<20)
	io.ReadFull(newPRNG(2, int64(len(buf))), buf)
	start := time.Now()
	f, err := os.Create(p)
	if err != nil {
		return 0, "", err
	}
	for done := int64(0); done < size; done += int64(len(buf)) {
		if _, err := f.Write(buf[:min(int64(len(buf)), size-done)]); err != nil {
			f.Close()
			return 0, "", err
		}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return 0, "", err
	}
	f.Close()
	return mbps(size, time.Since(start)), p, nil
}

// limitLoopback serves file with http.ServeContent (sendfile) from a trivial
// Go server on loopback and reads it with the benchmark's client: MB/s.
func limitLoopback(file string) (float64, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, err := os.Open(file)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		defer f.Close()
		fi, _ := f.Stat()
		http.ServeContent(w, r, "", fi.ModTime(), f)
	})}
	go srv.Serve(l)
	defer srv.Close()
	start := time.Now()
	resp, err := httpClient.Get("http://" + l.Addr().String() + "/")
	if err != nil {
		return 0, err
	}
	n, err := io.CopyBuffer(io.Discard, resp.Body, make([]byte, 1<<20))
	resp.Body.Close()
	if err != nil {
		return 0, err
	}
	return mbps(n, time.Since(start)), nil
}

// hashWrite copies r to w in 1 MiB buffers, hashing each on another
// goroutine while it is written and the next one read.
func hashWrite(h hash.Hash, w io.Writer, r io.Reader) error {
	bufs := [2][]byte{make([]byte, 1<<20), make([]byte, 1<<20)}
	hashed := make(chan struct{}, 1)
	hashed <- struct{}{}
	defer func() { <-hashed }()
	for i := 0; ; i ^= 1 {
		k, rerr := io.ReadFull(r, bufs[i])
		if k > 0 {
			<-hashed
			go func(p []byte) { h.Write(p); hashed <- struct{}{} }(bufs[i][:k])
			if _, err := w.Write(bufs[i][:k]); err != nil {
				return err
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

// limitIdealPush runs a handler that only hashes what it receives (on a
// second core, overlapping the writes), writes it to a temporary file,
// fsyncs and renames it, and pushes size bytes of the PRNG stream to it
// with one PUT: MB/s.
func limitIdealPush(dir string, size int64) (float64, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, err := os.CreateTemp(dir, "ideal-")
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		h := sha256.New()
		err = hashWrite(h, f, r.Body)
		if err == nil {
			err = f.Sync()
		}
		f.Close()
		if err == nil {
			err = os.Rename(f.Name(), filepath.Join(dir, "ideal-"+hex.EncodeToString(h.Sum(nil))))
		}
		if err != nil {
			os.Remove(f.Name())
			http.Error(w, err.Error(), 500)
			return
		}
		w.WriteHeader(http.StatusCreated)
	})}
	go srv.Serve(l)
	defer srv.Close()
	start := time.Now()
	req, _ := http.NewRequest("PUT", "http://"+l.Addr().String()+"/", newPRNG(3, size))
	req.ContentLength = size
	resp, err := do(req, http.StatusCreated)
	if err != nil {
		return 0, err
	}
	drain(resp)
	el := time.Since(start)
	files, _ := filepath.Glob(filepath.Join(dir, "ideal-*"))
	for _, f := range files {
		os.Remove(f)
	}
	return mbps(size, el), nil
}

func mbps(n int64, d time.Duration) float64 { return float64(n) / 1e6 / d.Seconds() }

func mib(n int64) float64 { return float64(n) / (1 << 20) }

func fmtBytes(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d B", n)
}
