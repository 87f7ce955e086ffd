// Package minio starts a throwaway MinIO server on loopback for the S3
// tests and regbench's s3 workload: it finds the binary, runs
// `minio server DIR/data --address 127.0.0.1:P --console-address 127.0.0.1:P2`
// with a root user and password, waits for /minio/health/live, makes and
// removes buckets with minio-go, and kills the process.
package minio

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/registryd/registryd/internal/localsrv"
)

// RepoRoot is the nearest directory at or above the working directory
// that holds a go.mod, or "" if there is none.
func RepoRoot() string {
	wd, err := os.Getwd()
	if err != nil {
		return ""
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			return ""
		}
	}
}

// Find returns the minio binary, or "" if there is none:
//
//	$REGISTRYD_MINIO      a relative path is taken from the repository root
//	                      (RepoRoot), else from the working directory;
//	                      "" if it names no file
//	toolsBin/minio        toolsBin "" means RepoRoot()/.cache/bin, where
//	                      scripts/install-deps.sh installs it
//	$(go env GOPATH)/bin/minio
//	minio on $PATH
func Find(toolsBin string) string {
	root := RepoRoot()
	if p := os.Getenv("REGISTRYD_MINIO"); p != "" {
		if !filepath.IsAbs(p) && root != "" {
			if r := filepath.Join(root, p); isFile(r) {
				return r
			}
		}
		if isFile(p) {
			return p
		}
		return ""
	}
	var cands []string
	if toolsBin == "" && root != "" {
		toolsBin = filepath.Join(root, ".cache", "bin")
	}
	if toolsBin != "" {
		cands = append(cands, filepath.Join(toolsBin, "minio"))
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		for _, gp := range filepath.SplitList(strings.TrimSpace(string(out))) {
			cands = append(cands, filepath.Join(gp, "bin", "minio"))
		}
	}
	for _, c := range cands {
		if fi, err := os.Stat(c); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return c
		}
	}
	if p, err := exec.LookPath("minio"); err == nil {
		return p
	}
	return ""
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir()
}

// Options says how to start a server.
type Options struct {
	Bin      string // the minio binary
	Dir      string // scratch directory: data in Dir/data, log in Dir/minio.log
	User     string // MINIO_ROOT_USER
	Password string // MINIO_ROOT_PASSWORD
	// Env is the server's environment before the MINIO_* settings;
	// nil means os.Environ().
	Env []string
}

// Server is a running MinIO.
type Server struct {
	Endpoint string // http://127.0.0.1:PORT
	Addr     string // 127.0.0.1:PORT
	Dir      string
	LogPath  string
	User     string
	Password string
	Client   *minio.Client

	cmd     *exec.Cmd
	exited  chan struct{}
	buckets atomic.Int64
}

// Start starts a single-drive MinIO over o.Dir on loopback and waits until
// it is live, trying three times (a port picked free may be taken before
// MinIO binds it). The process gets SIGKILL when its parent dies, so it
// never outlives the test binary or regbench, even when they die without
// calling Stop.
func Start(o Options) (*Server, error) {
	if err := os.MkdirAll(filepath.Join(o.Dir, "data"), 0o755); err != nil {
		return nil, err
	}
	env := o.Env
	if env == nil {
		env = os.Environ()
	}
	logPath := filepath.Join(o.Dir, "minio.log")
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		addr, err := localsrv.FreeAddr()
		if err != nil {
			return nil, err
		}
		console, err := localsrv.FreeAddr()
		if err != nil {
			return nil, err
		}
		lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, err
		}
		cmd := exec.Command(o.Bin, "server", filepath.Join(o.Dir, "data"), "--quiet", "--address", addr, "--console-address", console)
		cmd.Env = append(append([]string(nil), env...), "MINIO_ROOT_USER="+o.User, "MINIO_ROOT_PASSWORD="+o.Password,
			"MINIO_BROWSER=off", "MINIO_UPDATE=off")
		cmd.Stdout, cmd.Stderr = lf, lf
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			lf.Close()
			return nil, err
		}
		lf.Close()
		s := &Server{Endpoint: "http://" + addr, Addr: addr, Dir: o.Dir, LogPath: logPath, User: o.User, Password: o.Password,
			cmd: cmd, exited: make(chan struct{})}
		go func() { cmd.Wait(); close(s.exited) }()
		if lastErr = s.waitLive(60 * time.Second); lastErr == nil {
			s.Client, err = minio.New(addr, &minio.Options{Creds: credentials.NewStaticV4(o.User, o.Password, "")})
			if err != nil {
				s.Stop()
				return nil, err
			}
			return s, nil
		}
		s.Stop()
	}
	return nil, fmt.Errorf("minio did not start: %v\n%s", lastErr, localsrv.Tail(logPath, 40))
}

func (s *Server) waitLive(timeout time.Duration) error {
	c := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			return fmt.Errorf("minio exited")
		default:
		}
		resp, err := c.Get(s.Endpoint + "/minio/health/live")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("not live within %s", timeout)
}

// MakeBucket creates a bucket.
func (s *Server) MakeBucket(name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return s.Client.MakeBucket(ctx, name, minio.MakeBucketOptions{})
}

// NewBucket creates a bucket named prefix-PID-N, N counting this server's
// new buckets from 1, and returns its name.
func (s *Server) NewBucket(prefix string) (string, error) {
	name := fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), s.buckets.Add(1))
	return name, s.MakeBucket(name)
}

// RemoveBucket deletes a bucket with everything in it (MinIO's force
// delete: objects and incomplete multipart uploads).
func (s *Server) RemoveBucket(name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	return s.Client.RemoveBucketWithOptions(ctx, name, minio.RemoveBucketOptions{ForceDelete: true})
}

// Stop kills MinIO and waits for it to exit; its data is scratch, left
// in Dir for the caller to remove. Stop on a stopped server does nothing.
func (s *Server) Stop() {
	if s == nil || s.cmd == nil || s.cmd.Process == nil {
		return
	}
	s.cmd.Process.Kill()
	<-s.exited
}
