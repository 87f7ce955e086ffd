// Command regbench is registryd's load generator: it starts registryd, the
// reference registry (Debian's docker-registry, distribution 2.8),
// distribution v3 and, when its binary is there, zot (-zot), each on its
// own loopback port with its own temporary config (filesystem storage,
// deletes enabled, log level error; zot gets its JSON equivalent) and
// storage, runs the same workloads against all of them, interleaved and
// repeated, and prints one table: the median per server, registryd over the
// best reference, the machine's physical limit where there is one, and the
// target, with a row saying what each server makes durable; the s3
// workload adds a second table (the servers on their S3 drivers over one
// MinIO that regbench starts). -extra adds builds of registryd as columns
// outside the ratio (A/B runs); -disk-load runs the pushes against
// competing disk writers.
//
//	go run ./cmd/regbench [flags]      (make bench builds and runs it)
//
// Workloads (-only takes a comma-separated subset):
//
//	push      1 GiB blob streamed from a PRNG: monolithic PUT and 8 MiB
//	          PATCH chunks (MB/s), then a pull verified by digest (MB/s),
//	          the server's peak RSS during the pushes (VmHWM) and the
//	          processor time it spent per GiB pushed
//	small     16 clients pushing small images (config, 2×4 KiB layers,
//	          manifest, tag): images/s, server processor time per image
//	manifest  64 clients alternating HEAD and GET of a manifest by tag:
//	          requests/s, p50, p99
//	pulltimes registryd alone, pull-time tracking on (flushed every second)
//	          and off, 64 clients GETting a manifest by tag: requests/s, p50,
//	          p99 in a separate table (on / off)
//	catalog   10,000 repositories and a repository with 10,000 tags written
//	          on disk: catalog walk n=100, one n=10000 call, tags walk n=100
//	          and whole
//	ui        the web UI's pages over the catalog fixture, registryd only:
//	          front page, namespace, a page in the middle, search, the
//	          repository of 10,000 tags by name and by push time, an image
//	          (median of 15 fetches each, ms; target under 100 ms)
//	gc        a store of 2,000 images, half deleted: garbage-collect time,
//	          peak RSS, blobs reclaimed; live images checked afterwards
//	limits    sha256 on one core, disk write+fsync, loopback sendfile, an
//	          ideal push handler (hash, write, fsync, rename)
//	onlinegc  registryd's online garbage collection against itself:
//	          manifest p99 and small-image pushes while it sweeps 2,000
//	          deleted images, against the collector off; an online
//	          collection of 100,000 images against garbage-collect (time,
//	          peak RSS); a table of its own (onlinegc.go)
//	s3        the push workload with a smaller blob (-s3-size) against
//	          each server's S3 driver over one MinIO on loopback, and
//	          registryd on the filesystem for comparison: a separate table
//	proxy     each server as a pull-through cache (proxy.remoteurl) of a
//	          registryd upstream: a cold pull (-proxy-size) through it
//	          against the same pull direct, its time to first byte, 32
//	          concurrent cold pulls (-proxy-conc-size): wall time and bytes
//	          the upstream sent, a warm pull against registryd hosted: a
//	          separate table (proxy.go)
//
// zot runs push, small and manifest: it keeps images as OCI layouts, not in
// the distribution layout the catalog and gc fixtures are written in, has
// no offline collector, and is not set up on S3.
package main

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/registryd/registryd/internal/localsrv"
)

// byteSize is a flag value like 1GiB, 256MiB, 8M or 1048576.
type byteSize int64

func (b *byteSize) String() string { return fmtBytes(int64(*b)) }

func (b *byteSize) Set(s string) error {
	v, err := parseSize(s)
	*b = byteSize(v)
	return err
}

func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suf string
		m   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}, {"B", 1}} {
		if strings.HasSuffix(s, u.suf) {
			s, mult = strings.TrimSuffix(s, u.suf), u.m
			break
		}
	}
	v, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return v * mult, nil
}

const subject = "registryd"

func main() {
	if len(os.Args) > 2 && os.Args[1] == execRusageArg {
		execRusage(os.Args[2:])
	}
	size := byteSize(1 << 30)
	chunk := byteSize(8 << 20)
	flag.Var(&size, "size", "big blob size for the push and pull workloads")
	flag.Var(&chunk, "chunk", "PATCH chunk size for the chunked push")
	reps := flag.Int("reps", 3, "repetitions (the table shows medians)")
	only := flag.String("only", "push,small,manifest,pulltimes,catalog,ui,gc,onlinegc,limits,s3,proxy", "workloads to run, comma-separated")
	dur := flag.Duration("dur", 10*time.Second, "duration of the manifest HEAD/GET workload")
	smallDur := flag.Duration("small-dur", 5*time.Second, "duration of the small-image push workload")
	clients := flag.Int("clients", 64, "clients of the manifest workload")
	smallClients := flag.Int("small-clients", 16, "clients of the small-image workload")
	repos := flag.Int("repos", 10000, "repositories in the catalog fixture")
	tags := flag.Int("tags", 10000, "tags in the tags/list fixture")
	gcImages := flag.Int("gc-images", 2000, "images in the GC fixture (half are deleted)")
	onlineSweep := flag.Int("onlinegc-sweep", 2000, "deleted images the online collector sweeps while the manifest and small workloads run")
	onlineImages := flag.Int("onlinegc-images", 100000, "images (half deleted) of the online-against-offline collection")
	regBin := flag.String("registryd", "bin/registryd", "registryd binary")
	refBin := flag.String("reference", "/usr/bin/docker-registry", "reference registry (distribution 2.8)")
	v3Bin := flag.String("v3", envOr("REGBENCH_V3", ".cache/bin/registry-v3"), "distribution v3 registry binary (env REGBENCH_V3); skipped when missing")
	zotBin := flag.String("zot", envOr("REGBENCH_ZOT", ".cache/bin/zot"), "zot binary (env REGBENCH_ZOT; make tools-zot); skipped when missing")
	diskLoadN := flag.Int("disk-load", 0, "writers competing for the disk during the push workload (each writes, fsyncs and removes 64 MiB files): a busy disk, reproducibly; 0 for none")
	extra := flag.String("extra", "", "more registryd builds as columns of their own, outside the ratio (A/B runs): NAME=PATH[,NAME=PATH...]")
	workDir := flag.String("work", "", "work directory (default: a new temporary directory, removed at the end)")
	keep := flag.Bool("keep", false, "keep the work directory")
	debug := flag.Bool("debug", false, "start registryd with a debug listener (pprof) and print its address")
	s3Size := byteSize(256 << 20)
	flag.Var(&s3Size, "s3-size", "blob size of the s3 workload")
	s3Huge := byteSize(1 << 30)
	flag.Var(&s3Huge, "s3-rss-size", "blob size of the s3 workload's peak RSS push")
	s3Repos := flag.Int("s3-repos", 10000, "repositories in the s3 workload's catalog fixture (0: no catalog rows)")
	s3Tags := flag.Int("s3-tags", 10000, "tags in the s3 workload's tags/list fixture")
	s3ReposBig := flag.Int("s3-repos-big", 0, "repositories in a second s3 catalog fixture, for the page cost at scale (0: none)")
	minioBin := flag.String("minio", envOr("REGBENCH_MINIO", ".cache/bin/minio"), "MinIO server binary for the s3 workload (env REGBENCH_MINIO)")
	proxySize := byteSize(256 << 20)
	flag.Var(&proxySize, "proxy-size", "blob size of the proxy workload's single pulls")
	proxyConcSize := byteSize(64 << 20)
	flag.Var(&proxyConcSize, "proxy-conc-size", "blob size of the proxy workload's concurrent pulls")
	proxyClients := flag.Int("proxy-clients", 32, "clients of the proxy workload's concurrent cold pull")
	flag.StringVar(&pprofDir, "pprof", "", "save CPU profiles of registryd taken during the workloads in this directory (implies -debug)")
	flag.Parse()
	if pprofDir != "" {
		*debug = true
	}
	onlySet := false
	flag.Visit(func(f *flag.Flag) { onlySet = onlySet || f.Name == "only" })

	want := map[string]bool{}
	for _, w := range strings.Split(*only, ",") {
		switch w = strings.TrimSpace(w); w {
		case "push", "small", "manifest", "pulltimes", "catalog", "ui", "gc", "onlinegc", "limits", "s3", "proxy":
			want[w] = true
		case "":
		default:
			fatalf("unknown workload %q in -only (push, small, manifest, pulltimes, catalog, ui, gc, onlinegc, limits, s3, proxy)", w)
		}
	}

	targets := []target{{subject, abs(*regBin), kindRegistryd}, {"docker-registry 2.8", *refBin, kindDistribution}}
	if fi, err := os.Stat(*v3Bin); err == nil && !fi.IsDir() {
		targets = append(targets, target{"distribution v3", abs(*v3Bin), kindDistribution})
	} else {
		fmt.Fprintf(os.Stderr, "regbench: distribution v3 not found at %s (make tools-distribution, or -v3/REGBENCH_V3): skipped\n", *v3Bin)
	}
	if fi, err := os.Stat(*zotBin); err == nil && !fi.IsDir() {
		targets = append(targets, target{"zot", abs(*zotBin), kindZot})
	} else {
		fmt.Fprintf(os.Stderr, "regbench: zot not found at %s (make tools-zot, or -zot/REGBENCH_ZOT): skipped\n", *zotBin)
	}
	var refs, extras []string
	for _, t := range targets[1:] {
		refs = append(refs, t.Name)
	}
	ab, err := parseExtra(*extra)
	if err != nil {
		fatalf("%v", err)
	}
	for _, t := range ab {
		targets = append(targets, t)
		extras = append(extras, t.Name)
	}
	for _, t := range targets {
		if _, err := os.Stat(t.Bin); err != nil {
			fatalf("%s: %v", t.Name, err)
		}
	}

	work := *workDir
	if work == "" {
		var err error
		if work, err = os.MkdirTemp("", "regbench-"); err != nil {
			fatalf("%v", err)
		}
	}
	work = abs(work)
	if err := os.MkdirAll(work, 0o755); err != nil {
		fatalf("%v", err)
	}
	if !*keep {
		defer os.RemoveAll(work)
		// Interrupted: the servers die with regbench (Pdeathsig); the
		// work directory, gigabytes, goes too.
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
		go func() {
			<-sigs
			os.RemoveAll(work)
			os.Exit(130)
		}()
	}
	b := &bench{work: work, targets: targets, debug: *debug}
	runStart := time.Now()

	// Metrics, in table order.
	sz := fmtBytes(int64(size))
	mPush := &metric{Name: "push " + sz + " monolithic", Unit: "MB/s", Higher: true, TargetRatio: 1.3}
	mChunk := &metric{Name: "push " + sz + " chunked " + fmtBytes(int64(chunk)), Unit: "MB/s", Higher: true, TargetRatio: 1.3}
	mPull := &metric{Name: "pull " + sz + ", digest checked", Unit: "MB/s", Higher: true, TargetRatio: 1}
	mRSS := &metric{Name: "peak RSS during pushes", Unit: "MiB", TargetAbs: 32}
	mPushCPU := &metric{Name: "server CPU, monolithic push", Unit: "s/GiB"}
	mChunkCPU := &metric{Name: "server CPU, chunked push", Unit: "s/GiB"}
	mSmall := &metric{Name: fmt.Sprintf("small images, %d pushers", *smallClients), Unit: "images/s", Higher: true, TargetRatio: 1.5}
	mSmallCPU := &metric{Name: "server CPU per small image", Unit: "ms"}
	mRPS := &metric{Name: fmt.Sprintf("manifest HEAD+GET, %d clients", *clients), Unit: "req/s", Higher: true, TargetRatio: 2}
	mP50 := &metric{Name: "manifest p50", Unit: "ms"}
	mP99 := &metric{Name: "manifest p99", Unit: "ms", TargetRatio: 0.5}
	mCatCold := &metric{Name: "catalog walk, first after start", Unit: "s"}
	mCatWalk := &metric{Name: fmt.Sprintf("catalog walk n=100, %d repos", *repos), Unit: "s", TargetRatio: 0.1}
	mCatOne := &metric{Name: fmt.Sprintf("catalog n=%d, one call", *repos), Unit: "s", TargetRatio: 0.1}
	mCatPage := &metric{Name: "catalog first page n=100", Unit: "ms"}
	mTagWalk := &metric{Name: fmt.Sprintf("tags walk n=100, %d tags", *tags), Unit: "s", TargetRatio: 0.1}
	mTagOne := &metric{Name: "tags list whole, one call", Unit: "s", TargetRatio: 0.1}
	mGC := &metric{Name: fmt.Sprintf("GC %d images, half deleted", *gcImages), Unit: "s", TargetRatio: 0.2}
	mGCRSS := &metric{Name: "GC peak RSS", Unit: "MiB"}
	mGCBlobs := &metric{Name: "GC blobs reclaimed", Unit: "blobs", Higher: true}
	// What each column's figures buy: the durability row.
	mDurable := &metric{Name: "durability (filesystem)", Text: map[string]string{}}
	for _, t := range targets {
		if t.Kind == kindDistribution {
			mDurable.Text[t.Name] = distributionDurability(t.Name)
		} else {
			mDurable.Text[t.Name] = t.Kind.durability()
		}
	}
	var metrics []*metric
	if want["push"] || want["small"] || want["manifest"] {
		metrics = append(metrics, mDurable)
	}
	if want["push"] {
		metrics = append(metrics, mPush, mChunk, mPull, mRSS, mPushCPU, mChunkCPU)
	}
	if want["small"] {
		metrics = append(metrics, mSmall, mSmallCPU)
	}
	if want["manifest"] {
		metrics = append(metrics, mRPS, mP50, mP99)
	}
	if want["catalog"] {
		metrics = append(metrics, mCatCold, mCatWalk, mCatOne, mCatPage, mTagWalk, mTagOne)
	}
	uiRows := uiPages(*repos, *tags)
	if want["ui"] {
		for _, p := range uiRows {
			metrics = append(metrics, p.metric)
		}
	}
	if want["gc"] {
		metrics = append(metrics, mGC, mGCRSS, mGCBlobs)
	}
	ptRPS := &metric{Name: fmt.Sprintf("manifest GET, %d clients", *clients), Unit: "req/s", Higher: true}
	ptP50 := &metric{Name: "manifest GET p50", Unit: "ms"}
	ptP99 := &metric{Name: "manifest GET p99", Unit: "ms"}
	lSHA := &metric{Name: "sha256, one core", Unit: "MB/s", Higher: true}
	lDisk := &metric{Name: "disk write " + sz + " + fsync", Unit: "MB/s", Higher: true}
	lLoop := &metric{Name: "loopback HTTP, sendfile " + sz, Unit: "MB/s", Higher: true}
	lIdeal := &metric{Name: "ideal push " + sz + " (hash, write, fsync, rename)", Unit: "MB/s", Higher: true}
	limits := []*metric{lSHA, lDisk, lLoop, lIdeal}

	var a, bb bigBlob
	if want["push"] || want["limits"] {
		a = bigBlob{Seed: 1001, Size: int64(size)}
		bb = bigBlob{Seed: 1002, Size: int64(size)}
		logf("computing the digests of two %s PRNG streams", sz)
		done := make(chan struct{})
		go func() { bb.D = prngDigest(bb.Seed, bb.Size); close(done) }()
		a.D = prngDigest(a.Seed, a.Size)
		<-done
		logf("digests %s, %s", a.D, bb.D)
	}
	if want["s3"] && !onlySet {
		// By default the s3 workload runs when MinIO is there, as v3 does.
		if fi, err := os.Stat(*minioBin); err != nil || fi.IsDir() {
			fmt.Fprintf(os.Stderr, "regbench: minio not found at %s (make deps, or -minio/REGBENCH_MINIO): s3 workload skipped\n", *minioBin)
			delete(want, "s3")
		}
	}
	// The s3 workload: registryd and each reference on the S3 driver, one
	// bucket per server and repetition, and registryd on the filesystem.
	var s3b *s3Bench
	if want["s3"] {
		mio, err := startMinio(abs(*minioBin), filepath.Join(work, "minio"))
		if err != nil {
			fatalf("s3 workload: %v (-minio PATH; scripts/install-deps.sh installs .cache/bin/minio)", err)
		}
		defer mio.Stop()
		logf("minio at %s", mio.Endpoint)
		s3b = newS3Bench(b, mio, targets, int64(s3Size), int64(s3Huge), int64(chunk))
		if *s3Repos > 0 {
			s3b.cat = newS3Catalog(s3b, *s3Repos, *s3Tags, *s3ReposBig, work)
		}
	}
	onlineM := newOnlineGCMetrics(*clients, *smallClients, *onlineSweep, *onlineImages)
	var catFixture string
	var gcWantBlobs int
	var gcFloor []float64 // removalFloor per repetition
	if want["catalog"] || want["ui"] {
		catFixture = filepath.Join(work, "fixture-catalog")
		defer os.RemoveAll(catFixture)
		t0 := time.Now()
		if err := catalogFixture(catFixture, *repos, *tags); err != nil {
			fatalf("catalog fixture: %v", err)
		}
		logf("catalog fixture: %d repositories, %d tags in %.1fs", *repos, *tags, time.Since(t0).Seconds())
	}
	if want["gc"] {
		gcWantBlobs = 4 * (*gcImages / 2)
	}
	var pm *proxyMetrics
	if want["proxy"] {
		pm = newProxyMetrics(int64(proxySize), int64(proxyConcSize), *proxyClients)
	}

	for rep := 0; rep < *reps; rep++ {
		if want["limits"] {
			syscall.Sync()
			sha := limitSHA256(int64(size))
			lSHA.add(subject, sha)
			disk, file, err := limitDisk(work, int64(size))
			check(err)
			lDisk.add(subject, disk)
			loop, err := limitLoopback(file)
			check(err)
			lLoop.add(subject, loop)
			os.Remove(file)
			syscall.Sync()
			ideal, err := limitIdealPush(work, int64(size))
			check(err)
			lIdeal.add(subject, ideal)
			logf("rep %d limits: sha256 %.0f, disk %.0f, loopback %.0f, ideal push %.0f MB/s", rep+1, sha, disk, loop, ideal)
		}
		// Interleaved: every repetition runs each server in turn, starting
		// with a different one.
		for k := range targets {
			t := targets[(k+rep)%len(targets)]
			if want["push"] || want["small"] || want["manifest"] { // every kind runs these
				s := b.start(t, fmt.Sprintf("%s-rep%d", slug(t.Name), rep), "")
				if want["push"] {
					// Start from a clean page cache: neither server pays for
					// the writeback of the previous one's gigabytes.
					syscall.Sync()
					load := startDiskLoad(work, *diskLoadN)
					r, err := runBigPush(s, a, bb, int64(chunk), rep+1)
					if rate := load.Stop(); *diskLoadN > 0 {
						logf("rep %d %-20s disk load: %d writers wrote %.0f MB/s meanwhile", rep+1, t.Name, *diskLoadN, rate)
					}
					b.check(s, err)
					mPush.add(t.Name, r.Mono)
					mChunk.add(t.Name, r.Chunked)
					mPull.add(t.Name, r.Pull)
					mRSS.add(t.Name, r.RSS)
					mPushCPU.add(t.Name, r.MonoCPU)
					mChunkCPU.add(t.Name, r.ChunkedCPU)
					logf("rep %d %-20s push %.0f, chunked %.0f, pull %.0f MB/s, peak RSS %.1f MiB, CPU %.2f/%.2f s/GiB", rep+1, t.Name, r.Mono, r.Chunked, r.Pull, r.RSS, r.MonoCPU, r.ChunkedCPU)
				}
				if want["small"] {
					wait := profile(s, fmt.Sprintf("small-rep%d", rep+1), *smallDur-time.Second)
					ips, cpuMS, err := runSmall(s, *smallClients, *smallDur, uint64(rep+1)<<40)
					wait()
					b.check(s, err)
					mSmall.add(t.Name, ips)
					mSmallCPU.add(t.Name, cpuMS)
					logf("rep %d %-20s small images %.0f/s, CPU %.2f ms/image", rep+1, t.Name, ips, cpuMS)
				}
				if want["manifest"] {
					wait := profile(s, fmt.Sprintf("manifest-rep%d", rep+1), *dur-time.Second)
					rps, p50, p99, err := runManifest(s, *clients, *dur)
					wait()
					b.check(s, err)
					mRPS.add(t.Name, rps)
					mP50.add(t.Name, p50)
					mP99.add(t.Name, p99)
					logf("rep %d %-20s manifest %.0f req/s, p50 %.2f ms, p99 %.2f ms", rep+1, t.Name, rps, p50, p99)
				}
				b.stop(s)
			}
			if want["catalog"] && t.Kind.supports("catalog") {
				// Listing does not change the store: each server gets its
				// own copy once and keeps it for every repetition.
				catRoot := filepath.Join(work, slug(t.Name)+"-catalog")
				if rep == 0 {
					check(copyTree(catFixture, catRoot))
				}
				s, err := startServer(t, catRoot, work, false)
				check(err)
				// The first walk after the start is timed apart: registryd
				// fills its caches then (the references have none), and
				// every later request sees the steady state.
				citems, _, cel, err := walk(s, "/v2/_catalog?n=100", "repositories")
				b.check(s, err)
				mCatCold.add(t.Name, cel.Seconds())
				warnCount(t.Name, "first catalog walk", citems, *repos+1)
				items, pages, el, err := walk(s, "/v2/_catalog?n=100", "repositories")
				b.check(s, err)
				mCatWalk.add(t.Name, el.Seconds())
				warnCount(t.Name, "catalog walk", items, *repos+1)
				if pages == 1 && items > 100 {
					mCatWalk.unlike(t.Name, "answers the walk in one page, ignoring n")
				}
				_, _, first, err := walk1(s, "/v2/_catalog?n=100", "repositories")
				b.check(s, err)
				mCatPage.add(t.Name, first.Seconds()*1000)
				items1, _, el1, err := walk1(s, fmt.Sprintf("/v2/_catalog?n=%d", *repos), "repositories")
				b.check(s, err)
				mCatOne.add(t.Name, el1.Seconds())
				warnCount(t.Name, "catalog one call", items1, *repos)
				titems, tpages, tel, err := walk(s, "/v2/tags/many/tags/list?n=100", "tags")
				b.check(s, err)
				mTagWalk.add(t.Name, tel.Seconds())
				warnCount(t.Name, "tags walk", titems, *tags)
				if tpages == 1 && titems > 100 {
					// docker-registry 2.8 ignores n on tags/list: a
					// walk of 100 pages is compared with one response.
					mTagWalk.unlike(t.Name, "answers the walk in one page, ignoring n")
				}
				titems1, _, tel1, err := walk1(s, "/v2/tags/many/tags/list", "tags")
				b.check(s, err)
				mTagOne.add(t.Name, tel1.Seconds())
				warnCount(t.Name, "tags list", titems1, *tags)
				logf("rep %d %-20s catalog walk %.2fs (%d pages), one call %.3fs, first page %.1f ms; tags walk %.2fs (%d pages), whole %.3fs",
					rep+1, t.Name, el.Seconds(), pages, el1.Seconds(), first.Seconds()*1000, tel.Seconds(), tpages, tel1.Seconds())
				s.Stop()
				if rep == *reps-1 {
					os.RemoveAll(catRoot)
				}
			}
			if want["ui"] && t.Kind == kindRegistryd {
				// The UI is registryd's own: its rows have no reference
				// (-extra builds run them too, for A/B runs).
				uiRoot := filepath.Join(work, slug(t.Name)+"-ui-catalog")
				if rep == 0 {
					check(copyTree(catFixture, uiRoot))
				}
				s, err := startServer(t, uiRoot, work, false)
				check(err)
				b.check(s, runUI(s, t.Name, uiRows))
				var parts []string
				for _, p := range uiRows {
					parts = append(parts, fmt.Sprintf("%.1f", p.metric.Vals[t.Name][len(p.metric.Vals[t.Name])-1]))
				}
				logf("rep %d %-20s UI pages (ms): %s", rep+1, t.Name, strings.Join(parts, ", "))
				s.Stop()
				if rep == *reps-1 {
					os.RemoveAll(uiRoot)
				}
			}
			if want["gc"] && t.Kind.supports("gc") {
				// The same deterministic store, written afresh (faster than
				// copying tens of thousands of small files).
				root := filepath.Join(work, slug(t.Name)+"-gc")
				check(os.RemoveAll(root))
				if _, _, err := gcFixture(root, *gcImages); err != nil {
					fatalf("gc fixture: %v", err)
				}
				cfg := filepath.Join(work, slug(t.Name)+"-gc.yml")
				check(writeConfig(cfg, root, "127.0.0.1:0", ""))
				n0, s0, err := countBlobs(root)
				check(err)
				// The fixture's writeback must not be charged to the
				// collector (as with the big pushes).
				syscall.Sync()
				secs, rss, err := runGC(t.Bin, cfg)
				check(err)
				n1, s1, err := countBlobs(root)
				check(err)
				live, err := verifyLive(root)
				if err != nil {
					fatalf("%s garbage-collect lost live data: %v", t.Name, err)
				}
				if live != *gcImages-*gcImages/2 {
					fatalf("%s: %d live tags after garbage-collect, want %d", t.Name, live, *gcImages-*gcImages/2)
				}
				mGC.add(t.Name, secs)
				mGCRSS.add(t.Name, rss)
				mGCBlobs.add(t.Name, float64(n0-n1))
				if n0-n1 != gcWantBlobs {
					logf("note: %s reclaimed %d blobs, %d were unreferenced", t.Name, n0-n1, gcWantBlobs)
				}
				logf("rep %d %-20s gc %.2fs, peak RSS %.1f MiB, reclaimed %d blobs / %d bytes, %d live images intact",
					rep+1, t.Name, secs, rss, n0-n1, s0-s1, live)
				os.RemoveAll(root)
			}
		}
		if want["onlinegc"] {
			runOnlineGCSweeping(b, targets[0], onlineM, rep, *onlineSweep, *clients, *smallClients)
			runOnlineGCCollect(b, targets[0], onlineM, rep, *onlineImages)
		}
		if want["gc"] {
			secs, err := removalFloor(work, *gcImages)
			check(err)
			gcFloor = append(gcFloor, secs)
			logf("rep %d gc floor: the same garbage removed with an unlink and an rmdir each, %.2fs", rep+1, secs)
		}
		if want["proxy"] {
			syscall.Sync()
			runProxyRep(b, rep, int64(proxySize), int64(proxyConcSize), *proxyClients, pm)
		}
		if want["pulltimes"] {
			runPullTimes(b, targets[0], rep, *clients, *dur, ptRPS, ptP50, ptP99)
		}
		if s3b != nil {
			s3b.rep(rep)
		}
	}

	if want["limits"] {
		// Limits of the table's rows.
		lim := func(ms ...*metric) float64 {
			v := 0.0
			for _, m := range ms {
				x := median(m.Vals[subject])
				if v == 0 || x < v {
					v = x
				}
			}
			return v
		}
		mPush.Limit = lim(lIdeal)
		mChunk.Limit = lim(lIdeal)
		mPull.Limit = lim(lLoop, lSHA)
	}
	if len(gcFloor) > 0 {
		// Nothing can collect faster than it can remove the garbage.
		mGC.Limit = median(gcFloor)
	}
	fmt.Printf("\nregbench: %d repetitions, medians; ratio = registryd / best reference (for s, ms and MiB lower is better). %s total.\n",
		*reps, time.Since(runStart).Round(time.Second))
	if *diskLoadN > 0 && want["push"] {
		fmt.Printf("Push rows on a busy disk: %d competing writers (-disk-load).\n", *diskLoadN)
	}
	fmt.Println()
	if len(metrics) > 0 {
		fmt.Print(formatTable(metrics, subject, refs, extras))
	}
	if want["limits"] {
		fmt.Println("\nphysical limits (medians):")
		for _, m := range limits {
			fmt.Printf("  %-50s %8s %s\n", m.Name, num(median(m.Vals[subject])), m.Unit)
		}
	}
	if want["onlinegc"] {
		fmt.Print(formatOnlineGC(onlineM))
	}
	if want["proxy"] {
		fmt.Printf("\nPull-through cache (proxy.remoteurl) of a registryd upstream on loopback; ratio = registryd / best reference:\n\n")
		var proxyRefs []string
		for _, t := range targets[1:] {
			if t.Kind != kindRegistryd && t.Kind.supports("proxy") {
				proxyRefs = append(proxyRefs, t.Name)
			}
		}
		fmt.Print(formatCompare(pm.all(), subject, proxyRefs, append(append([]string{}, extras...), directCol), nil))
	}
	if want["pulltimes"] {
		fmt.Printf("\nPull-time tracking (registryd alone, %d clients GET one manifest by tag); ratio = on / off:\n\n", *clients)
		fmt.Print(formatCompare([]*metric{ptRPS, ptP50, ptP99}, pullTimesOn, []string{pullTimesOff}, nil, nil))
	}
	if s3b != nil {
		fmt.Printf("\nS3 driver, one MinIO on loopback; ratio = registryd on S3 / best reference on S3; limit = MinIO direct, measured in the same run:\n\n")
		fmt.Print(s3b.table())
	}
}

func warnCount(server, what string, got, want int) {
	if got != want {
		fatalf("%s: %s returned %d entries, expected %d: the figures would not compare", server, what, got, want)
	}
}

// walk1 is one GET (no Link following).
func walk1(s *server, path, field string) (items, pages int, el time.Duration, err error) {
	start := time.Now()
	req, _ := http.NewRequest("GET", s.URL(path), nil)
	resp, err := do(req, http.StatusOK)
	if err != nil {
		return 0, 0, 0, err
	}
	if items, err = readList(resp, field); err != nil {
		return
	}
	return items, 1, time.Since(start), nil
}

type bench struct {
	work    string
	targets []target
	debug   bool
}

// start starts t over a new storage root work/name (a copy of fixture when
// set).
func (b *bench) start(t target, name, fixture string) *server {
	root := filepath.Join(b.work, name)
	if fixture != "" {
		check(copyTree(fixture, root))
	}
	s, err := startServer(t, root, b.work, b.debug && t.Name == subject)
	check(err)
	if s.Debug != "" {
		logf("registryd pprof: http://%s/debug/pprof/", s.Debug)
	}
	return s
}

func (b *bench) stop(s *server) {
	s.Stop()
	os.RemoveAll(s.Root)
}

func (b *bench) check(s *server, err error) {
	if err != nil {
		s.Stop()
		fatalf("%s: %v\nserver log:\n%s", s.t.Name, err, localsrv.Tail(s.logPath, 20))
	}
}

func slug(s string) string {
	return strings.NewReplacer(" ", "-", ".", "").Replace(s)
}

func abs(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	return a
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func check(err error) {
	if err != nil {
		fatalf("%v", err)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "regbench: "+format+"\n", args...)
	os.Exit(1)
}
