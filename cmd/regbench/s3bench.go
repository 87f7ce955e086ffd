package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	miniogo "github.com/minio/minio-go/v7"
	"github.com/opencontainers/go-digest"

	"github.com/registryd/registryd/internal/localsrv"
)

// s3Bench is the s3 workload: registryd, the references (and registryd
// on the filesystem, and the -extra builds of registryd) each on
// their S3 driver over one MinIO, interleaved, and MinIO's own rates as
// the limits, measured in the same run.
type s3Bench struct {
	b       *bench
	mio     *minioServer
	subject string
	refs    []string
	runs    []target // in the order of the first repetition
	fsName  string   // registryd on the filesystem
	extras  []string // the -extra builds of registryd, their own columns
	direct  string   // the limits' column name
	na      map[string]string

	big, bigB, dock bigBlob // the 256 MiB blobs (dock: docker's push, a blob of its own)
	huge            bigBlob // the 1 GiB blob of the RSS row (Size 0: no such row)
	chunk           int64

	push, chunked, docker, pull, redirect, rss, hugePush, hugeRSS *metric

	cat *s3Catalog // the catalog rows; nil without them
}

const s3DirectName = "MinIO direct"

func newS3Bench(b *bench, mio *minioServer, targets []target, size, hugeSize, chunk int64) *s3Bench {
	s := &s3Bench{b: b, mio: mio, subject: targets[0].Name, fsName: targets[0].Name + " filesystem",
		direct: s3DirectName, na: map[string]string{}, chunk: chunk}
	s.runs = []target{targets[0], {s.fsName, targets[0].Bin, kindRegistryd}}
	for _, t := range targets[1:] {
		switch {
		case t.Kind == kindRegistryd:
			s.extras = append(s.extras, t.Name)
		case t.Kind.supports("s3"):
			s.refs = append(s.refs, t.Name)
		default:
			continue
		}
		s.runs = append(s.runs, t)
	}
	s.big = bigBlob{Seed: 2001, Size: size}
	s.bigB = bigBlob{Seed: 2002, Size: size}
	s.dock = bigBlob{Seed: 2004, Size: size}
	for _, a := range []*bigBlob{&s.big, &s.bigB, &s.dock} {
		a.D = prngDigest(a.Seed, a.Size)
	}
	if hugeSize > 0 {
		s.huge = bigBlob{Seed: 2003, Size: hugeSize}
		s.huge.D = prngDigest(s.huge.Seed, s.huge.Size)
	}
	sz := fmtBytes(size)
	s.push = &metric{Name: "push " + sz + " monolithic (POST, PUT)", Unit: "MB/s", Higher: true, LimitRatio: 0.8}
	s.chunked = &metric{Name: "push " + sz + " chunked " + fmtBytes(chunk), Unit: "MB/s", Higher: true, TargetRatio: 1.5}
	s.docker = &metric{Name: "push " + sz + " docker (POST, PATCH, PUT)", Unit: "MB/s", Higher: true, TargetRatio: 1.5}
	s.pull = &metric{Name: "pull " + sz + ", digest checked", Unit: "MB/s", Higher: true}
	s.redirect = &metric{Name: "pull " + sz + " by 307 to a presigned URL", Unit: "MB/s", Higher: true}
	s.rss = &metric{Name: "peak RSS during " + sz + " pushes", Unit: "MiB"}
	if hugeSize > 0 {
		hs := fmtBytes(hugeSize)
		s.hugePush = &metric{Name: "push " + hs + " monolithic", Unit: "MB/s", Higher: true}
		s.hugeRSS = &metric{Name: "peak RSS during the " + hs + " push", Unit: "MiB", TargetAbs: 64}
	}
	return s
}

// metrics are the table's rows, in order.
func (s *s3Bench) metrics() []*metric {
	ms := []*metric{s.push, s.chunked, s.docker, s.pull, s.redirect, s.rss}
	if s.hugePush != nil {
		ms = append(ms, s.hugePush, s.hugeRSS)
	}
	if s.cat != nil {
		ms = append(ms, s.cat.metrics()...)
	}
	return ms
}

// fail records why reference t has no figures (registryd failing ends
// the run).
func (s *s3Bench) fail(t target, rep int, srv *server, err error) {
	if srv != nil {
		err = fmt.Errorf("%v\nserver log:\n%s", err, localsrv.Tail(srv.logPath, 20))
	}
	if t.Kind == kindRegistryd {
		if srv != nil {
			srv.Stop()
		}
		fatalf("%s (s3 workload): %v", t.Name, err)
	}
	log, _ := os.ReadFile(filepath.Join(s.b.work, t.Name+".log"))
	s.na[t.Name] = failReason(err, string(log))
	logf("rep %d %-20s s3: n/a: %v", rep+1, t.Name, err)
}

// rep runs repetition rep: each server in turn, starting with a different
// one each time, then MinIO's own rates.
func (s *s3Bench) rep(rep int) {
	for k := range s.runs {
		t := s.runs[(k+rep)%len(s.runs)]
		if s.na[t.Name] != "" {
			continue
		}
		s.runServer(t, rep)
		if s.cat != nil && t.Name != s.fsName && s.na[t.Name] == "" {
			s.cat.run(t, rep)
		}
	}
	syscall.Sync()
	put, get, cp, err := s.mio.directRates(bucketName("direct", rep+1), s.big)
	check(err)
	s.push.add(s.direct, put)
	s.pull.add(s.direct, get)
	s.redirect.add(s.direct, get)
	// A push whose digest comes at its end is written, then copied.
	floor := 1 / (1/put + 1/cp)
	s.chunked.add(s.direct, floor)
	s.docker.add(s.direct, floor)
	logf("rep %d %-20s put %.0f, get %.0f, server-side copy %.0f MB/s (put then copy: %.0f)", rep+1, s.direct, put, get, cp, floor)
}

// runServer runs the pushes and the pull against t, on its S3 driver over
// a new bucket (removed afterwards), or on the filesystem for fsName. A
// reference that fails gets a reason in na instead of figures; registryd
// failing ends the run.
func (s *s3Bench) runServer(t target, rep int) {
	b := s.b
	fs := t.Name == s.fsName
	fail := func(srv *server, err error) { s.fail(t, rep, srv, err) }
	var srv *server
	var err error
	var params s3Params
	if fs {
		srv = b.start(t, fmt.Sprintf("%s-rep%d", slug(t.Name), rep), "")
	} else {
		bucket := bucketName(t.Name, rep+1)
		if err = s.mio.MakeBucket(bucket); err != nil {
			fatalf("minio: make bucket %s: %v", bucket, err)
		}
		defer func() {
			if err := s.mio.RemoveBucket(bucket); err != nil {
				logf("minio: remove bucket %s: %v", bucket, err)
			}
		}()
		params = s3Params{Endpoint: s.mio.Endpoint, Bucket: bucket, AccessKey: minioUser, SecretKey: minioPassword, RootDir: "/registry"}
		if srv, err = startServerWith(t, "", b.work, false, s3Storage(flavorOfTarget(t), params)); err != nil {
			fail(nil, err)
			return
		}
	}
	defer b.stop(srv)
	syscall.Sync()
	base := srv.URL("")
	var mono, ch, dk, pl, rd, rss, hp, hrss float64
	err = func() error {
		srv.ResetHWM()
		start := time.Now()
		if err := pushMonolithic(base, "big/mono", newPRNG(s.big.Seed, s.big.Size), s.big.Size, s.big.D); err != nil {
			return err
		}
		mono = mbps(s.big.Size, time.Since(start))
		start = time.Now()
		if err := pushChunked(base, "big/chunked", newPRNG(s.bigB.Seed, s.bigB.Size), s.bigB.Size, s.chunk, s.bigB.D); err != nil {
			return err
		}
		ch = mbps(s.bigB.Size, time.Since(start))
		start = time.Now()
		if err := pushDocker(base, "big/docker", newPRNG(s.dock.Seed, s.dock.Size), s.dock.D); err != nil {
			return err
		}
		dk = mbps(s.dock.Size, time.Since(start))
		rss = mib(srv.HWM())
		start = time.Now()
		if err := pullBlob(base, "big/mono", s.big.D, s.big.Size); err != nil {
			return err
		}
		pl = mbps(s.big.Size, time.Since(start))
		if !fs {
			// The same pull answered with a redirect to the bucket: the
			// client reads from MinIO itself.
			var err error
			if rd, err = s.pullRedirected(srv, t, params); err != nil {
				if t.Kind == kindRegistryd {
					return err
				}
				logf("rep %d %-20s pull by redirect: %v", rep+1, t.Name, err)
			}
		}
		if s.huge.Size > 0 && !fs {
			// A fresh process, as in the main table's RSS row: the peak
			// is the push's, not what the earlier pushes left allocated.
			srv.Stop()
			if err := srv.start(); err != nil {
				return err
			}
			base = srv.URL("")
			srv.ResetHWM()
			start = time.Now()
			if err := pushMonolithic(base, "big/huge", newPRNG(s.huge.Seed, s.huge.Size), s.huge.Size, s.huge.D); err != nil {
				return err
			}
			hp = mbps(s.huge.Size, time.Since(start))
			hrss = mib(srv.HWM())
		}
		return nil
	}()
	if err != nil {
		fail(srv, err)
		return
	}
	s.push.add(t.Name, mono)
	s.chunked.add(t.Name, ch)
	s.docker.add(t.Name, dk)
	s.pull.add(t.Name, pl)
	if rd > 0 {
		s.redirect.add(t.Name, rd)
	}
	s.rss.add(t.Name, rss)
	where := "s3"
	if fs {
		where = "fs"
	}
	extra := ""
	if hp > 0 {
		s.hugePush.add(t.Name, hp)
		s.hugeRSS.add(t.Name, hrss)
		extra = fmt.Sprintf("; %s push %.0f MB/s, peak RSS %.1f MiB", fmtBytes(s.huge.Size), hp, hrss)
	}
	logf("rep %d %-20s %s push %.0f, chunked %.0f, docker %.0f, pull %.0f MB/s, peak RSS %.1f MiB%s", rep+1, t.Name, where, mono, ch, dk, pl, rss, extra)
}

// table renders the S3 table: the limit is MinIO's own rate (for a push
// whose digest comes at its end, its put then a server-side copy), the
// extra columns registryd on the filesystem and the -ab binary.
func (s *s3Bench) table() string {
	extras := append([]string{s.fsName}, s.extras...)
	var b strings.Builder
	b.WriteString(formatTableWith(s.metrics(), s.subject, s.refs, s.direct, extras, s.na))
	for _, r := range s.refs {
		if s.na[r] != "" {
			fmt.Fprintf(&b, "\nn/a: %s: %s\n", r, s.na[r])
		}
	}
	return b.String()
}

// pushDocker uploads a blob as docker does: POST, one PATCH with the whole
// body (chunked transfer encoding, no Content-Range), an empty PUT with
// the digest. The digest is known only at the end.
func pushDocker(base, repo string, body io.Reader, d digest.Digest) error {
	u, err := startUpload(base, repo)
	if err != nil {
		return err
	}
	req, _ := http.NewRequest("PATCH", u.String(), io.NopCloser(body))
	req.ContentLength = -1
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := do(req, http.StatusAccepted)
	if err != nil {
		return err
	}
	drain(resp)
	if u, err = location(base, resp); err != nil {
		return err
	}
	req, _ = http.NewRequest("PUT", withDigest(u, d), nil)
	resp, err = do(req, http.StatusCreated)
	if err != nil {
		return err
	}
	drain(resp)
	return nil
}

// directRates is MinIO's own rate for the blob, the limits of the S3
// rows: a PutObject streamed in 10 MiB parts (the drivers' default chunk
// size), a GetObject with the digest checked, and a server-side copy of
// the object (UploadPartCopy of 32 MiB parts, 8 at a time, as registryd's
// commit copies), in MB/s, in a bucket of its own.
func (m *minioServer) directRates(bucket string, a bigBlob) (put, get, cp float64, err error) {
	if put, get, err = m.direct(bucket, a); err != nil {
		return
	}
	if err = m.MakeBucket(bucket); err != nil {
		return
	}
	defer m.RemoveBucket(bucket)
	ctx := context.Background()
	if _, err = m.Client.PutObject(ctx, bucket, "blob", newPRNG(a.Seed, a.Size), a.Size,
		miniogo.PutObjectOptions{PartSize: 10 << 20, ContentType: "application/octet-stream"}); err != nil {
		return
	}
	start := time.Now()
	if err = m.copyParallel(ctx, bucket, "blob", "copy", a.Size, 32<<20, 8); err != nil {
		return
	}
	cp = mbps(a.Size, time.Since(start))
	return
}

// copyParallel copies src to dst with UploadPartCopy parts of chunk bytes,
// conc at a time.
func (m *minioServer) copyParallel(ctx context.Context, bucket, src, dst string, size, chunk int64, conc int) error {
	core := miniogo.Core{Client: m.Client}
	id, err := core.NewMultipartUpload(ctx, bucket, dst, miniogo.PutObjectOptions{})
	if err != nil {
		return err
	}
	n := max(size/chunk, 1)
	parts := make([]miniogo.CompletePart, n)
	errs := make(chan error, n)
	sem := make(chan struct{}, conc)
	for i := range n {
		off := i * (size / n)
		length := size / n
		if i == n-1 {
			length = size - off
		}
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			p, err := core.CopyObjectPart(ctx, bucket, src, bucket, dst, id, int(i)+1, off, length, nil)
			parts[i] = miniogo.CompletePart{PartNumber: p.PartNumber, ETag: p.ETag}
			errs <- err
		}()
	}
	for range n {
		if e := <-errs; e != nil && err == nil {
			err = e
		}
	}
	if err != nil {
		return err
	}
	_, err = core.CompleteMultipartUpload(ctx, bucket, dst, id, parts, miniogo.PutObjectOptions{})
	return err
}

// redirected reports whether a GET of the blob answers 307 (not followed).
func redirected(base, repo string, d digest.Digest) bool {
	c := &http.Client{Transport: httpClient.Transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(base + "/v2/" + repo + "/blobs/" + d.String())
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusTemporaryRedirect
}

// pullRedirected restarts srv with redirects on and pulls the monolithic
// push's blob through the 307, in MB/s.
func (s *s3Bench) pullRedirected(srv *server, t target, params s3Params) (float64, error) {
	srv.Stop()
	if err := os.WriteFile(srv.Config, []byte(configYAML(s3StorageRedirect(flavorOfTarget(t), params), srv.Addr, "")), 0o644); err != nil {
		return 0, err
	}
	if err := srv.start(); err != nil {
		return 0, err
	}
	base := srv.URL("")
	if !redirected(base, "big/mono", s.big.D) {
		return 0, fmt.Errorf("with redirects on, the blob GET did not answer 307")
	}
	start := time.Now()
	if err := pullBlob(base, "big/mono", s.big.D, s.big.Size); err != nil {
		return 0, err
	}
	return mbps(s.big.Size, time.Since(start)), nil
}
