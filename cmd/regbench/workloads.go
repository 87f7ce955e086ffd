package main

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/opencontainers/go-digest"
)

// bigBlob is one deterministic big blob and its digest.
type bigBlob struct {
	Seed uint64
	Size int64
	D    digest.Digest
}

// bigPush is what runBigPush measures: MB/s, MiB, and the server's
// processor seconds per GiB pushed.
type bigPush struct {
	Mono, Chunked, Pull, RSS float64
	MonoCPU, ChunkedCPU      float64
}

// runBigPush pushes blob a monolithically, blob b in chunks, reads the
// server's peak RSS, then pulls a.
func runBigPush(s *server, a, b bigBlob, chunk int64, rep int) (r bigPush, err error) {
	base := s.URL("")
	s.ResetHWM()
	// Profiles (-pprof) cover the first second of each push.
	wait := profile(s, fmt.Sprintf("push-rep%d", rep), time.Second)
	cpu := s.CPU()
	start := time.Now()
	if err = pushMonolithic(base, "big/mono", newPRNG(a.Seed, a.Size), a.Size, a.D); err != nil {
		return
	}
	r.Mono = mbps(a.Size, time.Since(start))
	r.MonoCPU = (s.CPU() - cpu) / (float64(a.Size) / (1 << 30))
	wait()
	wait = profile(s, fmt.Sprintf("chunked-rep%d", rep), time.Second)
	cpu = s.CPU()
	start = time.Now()
	if err = pushChunked(base, "big/chunked", newPRNG(b.Seed, b.Size), b.Size, chunk, b.D); err != nil {
		return
	}
	r.Chunked = mbps(b.Size, time.Since(start))
	r.ChunkedCPU = (s.CPU() - cpu) / (float64(b.Size) / (1 << 30))
	wait()
	r.RSS = mib(s.HWM())
	start = time.Now()
	if err = pullBlob(base, "big/mono", a.D, a.Size); err != nil {
		return
	}
	r.Pull = mbps(a.Size, time.Since(start))
	return
}

// runSmall has clients push small images (config + two 4 KiB layers +
// manifest + tag) for d: images/s, and the server's processor time per
// image in ms.
func runSmall(s *server, clients int, d time.Duration, seed uint64) (ips, cpuMS float64, err error) {
	base := s.URL("")
	cpu := s.CPU()
	var n atomic.Int64
	el, err := untilDeadline(clients, d, func(c, i int) error {
		if err := pushSmallImage(base, fmt.Sprintf("small/c%02d", c), fmt.Sprintf("i%d", i), seed+uint64(c)<<20, i); err != nil {
			return err
		}
		n.Add(1)
		return nil
	})
	if n.Load() > 0 {
		cpuMS = (s.CPU() - cpu) * 1000 / float64(n.Load())
	}
	return float64(n.Load()) / el.Seconds(), cpuMS, err
}

// untilDeadline runs clients goroutines, each calling fn(c, i) for its
// client number c and i = 0, 1, ... until d has passed or fn fails, and
// returns the time they took and the first error.
func untilDeadline(clients int, d time.Duration, fn func(c, i int) error) (time.Duration, error) {
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for c := 0; c < clients; c++ {
		wg.Go(func() {
			for i := 0; time.Now().Before(deadline); i++ {
				if err := fn(c, i); err != nil {
					once.Do(func() { firstErr = err })
					return
				}
			}
		})
	}
	wg.Wait()
	return time.Since(start), firstErr
}

// runManifest pushes one image and has clients alternate HEAD and GET of
// its manifest by tag for d: requests/s, p50 and p99 in ms.
func runManifest(s *server, clients int, d time.Duration) (rps, p50, p99 float64, err error) {
	return runManifestMethods(s, clients, d, "HEAD", "GET")
}

// runManifestMethods is runManifest with each client cycling through
// methods.
func runManifestMethods(s *server, clients int, d time.Duration, methods ...string) (rps, p50, p99 float64, err error) {
	base := s.URL("")
	if err = pushSmallImage(base, "hot/app", "latest", 5, 0); err != nil {
		return
	}
	u := base + "/v2/hot/app/manifests/latest"
	lat := make([][]time.Duration, clients) // each client appends to its own
	el, firstErr := untilDeadline(clients, d, func(c, i int) error {
		method := methods[i%len(methods)]
		t0 := time.Now()
		req, _ := http.NewRequest(method, u, nil)
		req.Header.Set("Accept", manifestType)
		resp, err := do(req, http.StatusOK)
		if err != nil {
			return err
		}
		drain(resp)
		lat[c] = append(lat[c], time.Since(t0))
		return nil
	})
	var all []time.Duration
	for _, ls := range lat {
		all = append(all, ls...)
	}
	if len(all) == 0 {
		return 0, 0, 0, firstErr
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	pct := func(p float64) float64 {
		return float64(all[min(len(all)-1, int(p*float64(len(all))))]) / 1e6
	}
	return float64(len(all)) / el.Seconds(), pct(0.50), pct(0.99), firstErr
}

// walk GETs path and follows Link rel="next" headers, returning the items
// (repositories or tags), the pages fetched and the time taken.
func walk(s *server, path, field string) (items, pages int, el time.Duration, err error) {
	next := s.URL(path)
	start := time.Now()
	for next != "" {
		req, _ := http.NewRequest("GET", next, nil)
		var resp *http.Response
		if resp, err = do(req, http.StatusOK); err != nil {
			return
		}
		var n int
		if n, err = readList(resp, field); err != nil {
			return
		}
		items += n
		pages++
		next = nextLink(s.URL(""), resp.Header.Get("Link"))
	}
	return items, pages, time.Since(start), nil
}

// nextLink resolves a Link: <url>; rel="next" header against base.
func nextLink(base, h string) string {
	if h == "" || !strings.Contains(h, `rel="next"`) {
		return ""
	}
	i, j := strings.Index(h, "<"), strings.Index(h, ">")
	if i < 0 || j < i {
		return ""
	}
	b, _ := url.Parse(base)
	l, err := url.Parse(h[i+1 : j])
	if err != nil {
		return ""
	}
	return b.ResolveReference(l).String()
}

// runGC runs BIN garbage-collect config: seconds, peak RSS in MiB, and the
// command's output when it fails.
//
// The peak RSS comes from wait4's rusage, but not of a child of regbench
// itself: Linux carries a process's ru_maxrss across exec, and os/exec's
// vfork child shares (and so inherits the peak of) regbench's memory, tens
// of MiB. regbench re-executes itself as a small helper (execRusage) that
// starts the collector and reports its rusage; the helper's own small peak
// is the floor of the figure.
func runGC(bin, config string) (secs, rss float64, err error) {
	self, err := os.Executable()
	if err != nil {
		return 0, 0, err
	}
	cmd := exec.Command(self, execRusageArg, bin, "garbage-collect", config)
	cmd.Env = cleanEnv()
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	start := time.Now()
	err = cmd.Run()
	secs = time.Since(start).Seconds()
	if err != nil {
		return secs, 0, fmt.Errorf("%s garbage-collect: %v\n%s", bin, err, tailString(errOut.String(), 20))
	}
	kib, err := strconv.ParseInt(strings.TrimSpace(out.String()), 10, 64)
	if err != nil {
		return secs, 0, fmt.Errorf("%s garbage-collect: no rusage from the helper: %q", bin, out.String())
	}
	return secs, float64(kib) / 1024, nil
}

const execRusageArg = "__exec-rusage"

// execRusage runs args with stdout and stderr on regbench's stderr and
// prints the child's ru_maxrss (KiB) on stdout; it exits as the child did.
func execRusage(args []string) {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	err := cmd.Run()
	if cmd.ProcessState == nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		fmt.Println(ru.Maxrss)
	}
	os.Exit(cmd.ProcessState.ExitCode())
}

func tailString(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// copyTree copies a store fixture (cp -a keeps it simple and fast).
func copyTree(src, dst string) error {
	if err := os.RemoveAll(dst); err != nil {
		return err
	}
	out, err := exec.Command("cp", "-a", src, dst).CombinedOutput()
	if err != nil {
		return fmt.Errorf("cp -a %s %s: %v: %s", src, dst, err, out)
	}
	return nil
}
