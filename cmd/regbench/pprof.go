package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// pprofDir, when set (-pprof), receives CPU profiles of registryd taken
// during the workloads from its debug listener.
var pprofDir string

// profile starts a CPU profile of s lasting d and returns a function that
// waits for it and saves it as pprofDir/name.pprof. It does nothing unless
// -pprof is set and s has a debug listener.
func profile(s *server, name string, d time.Duration) (wait func()) {
	if pprofDir == "" || s.Debug == "" {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		secs := max(1, int(d.Seconds()))
		c := &http.Client{Timeout: d + 30*time.Second}
		resp, err := c.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", s.Debug, secs))
		if err != nil {
			logf("pprof %s: %v", name, err)
			return
		}
		defer resp.Body.Close()
		os.MkdirAll(pprofDir, 0o755)
		f, err := os.Create(filepath.Join(pprofDir, name+".pprof"))
		if err != nil {
			logf("pprof %s: %v", name, err)
			return
		}
		io.Copy(f, resp.Body)
		f.Close()
	}()
	return func() { <-done }
}
