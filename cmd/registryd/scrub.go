package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/registryd/registryd/config"
	"github.com/registryd/registryd/storage"
)

const scrubAbout = `Checks the integrity of the whole storage: re-hashes every blob, reads
every layer, revision, tag and referrer link (empty or torn link files
are a known way crashes damage a registry), and checks that every
manifest's config, layers and child manifests can be pulled from its
repository. Each damaged blob, link, tag and image is named on stdout, one
line each, images with the tags that reach them.

With --repair, a blob whose bytes do not match its digest is quarantined
(moved to _registryd/quarantine/, never deleted), so pulls get 404 rather
than wrong bytes until it is pushed again; a torn link whose content is
whole is written again from its path; links and tags that name nothing
are removed. Damaged images stay damaged until what they lack is pushed.

It may run while registries serve the storage. Exit status: 0 nothing
damaged, 1 damage found (also when repaired), 2 the check could not be
made or finished (usage, configuration, storage failure).`

func scrubFlags(fs *flag.FlagSet) runFunc {
	var repair, quiet bool
	var rate string
	fs.BoolVar(&repair, "repair", false, "quarantine damaged blobs, rewrite torn links, remove links and tags that name nothing")
	fs.BoolVar(&quiet, "quiet", false, "print the damage only, no summary")
	fs.BoolVar(&quiet, "q", false, shortPrefix+"quiet")
	fs.StringVar(&rate, "ratelimit", "", "read blobs at most this fast (bytes per second: 50MiB, 100MB/s); default: as fast as the storage allows")
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
		var bps int64
		if rate != "" {
			var err error
			if bps, err = config.ParseBytes(rate); err != nil {
				fmt.Fprintf(stderr, "registryd scrub: --ratelimit: %v\n", err)
				return 2
			}
		}
		return runScrub(ctx, args, repair, quiet, bps, stdout, stderr)
	}
}

func runScrub(ctx context.Context, args []string, repair, quiet bool, bps int64, stdout, stderr io.Writer) int {
	cfg, ok := loadConfig("scrub", args, stderr)
	if !ok {
		return 2
	}
	d, err := newDriver(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "registryd scrub: storage: %v\n", err)
		return 2
	}
	if d.Name() == "inmemory" {
		fmt.Fprintln(stderr, "registryd scrub: warning: the inmemory driver starts empty in every process; there is nothing to check")
	}
	reg := storage.New(d, storage.Options{NoDirWatch: true, ManifestCacheBytes: -1})
	start := time.Now()
	rep, err := reg.Scrub(ctx, storage.ScrubOptions{
		Repair:         repair,
		BytesPerSecond: bps,
		OnDamage:       func(dmg storage.Damage) { fmt.Fprintln(stdout, dmg) },
	})
	if !quiet {
		fmt.Fprintln(stdout, scrubSummary(rep, repair, time.Since(start)))
	}
	if err != nil {
		fmt.Fprintf(stderr, "registryd scrub: the check did not finish: %v\n", err)
		return 2
	}
	if rep.Damaged() {
		return 1
	}
	return 0
}

// scrubSummary is the last line of a scrub's output.
func scrubSummary(rep *storage.ScrubReport, repair bool, took time.Duration) string {
	s := fmt.Sprintf("scrub: %d blobs (%s) re-hashed, %d repositories, %d manifests, %d tags, %d links checked in %s",
		rep.Blobs, humanBytes(rep.BlobBytes), rep.Repositories, rep.Manifests, rep.Tags, rep.Links, took.Round(time.Millisecond))
	if rep.Unverifiable > 0 {
		s += fmt.Sprintf(" (%d blobs of digest algorithms registryd cannot compute left unchecked)", rep.Unverifiable)
	}
	if rep.Leftovers > 0 {
		// Not damage: no client sees them (tags/list leaves them out).
		s += fmt.Sprintf(" (%d empty tag directories of interrupted pushes %s)", rep.Leftovers, map[bool]string{false: "left for --repair", true: "removed"}[repair])
	}
	if !rep.Damaged() {
		return s + ": nothing damaged"
	}
	s += fmt.Sprintf(": DAMAGE FOUND: %d blobs, %d images, %d tags, %d links",
		rep.Count(storage.DamageBlob), rep.Count(storage.DamageImage), rep.Count(storage.DamageTag), rep.Count(storage.DamageLink))
	if repair {
		s += fmt.Sprintf("; repaired: %d blobs quarantined, %d links rewritten, %d links and tags removed", rep.Quarantined, rep.Rewritten, rep.Removed)
	} else {
		s += " (run with --repair to quarantine damaged blobs and fix links)"
	}
	return s
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
