package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/registryd/registryd/storage"
)

const reindexAbout = `Rebuilds the catalog's index of repository names from the layout, on
object stores (storage.s3), where _catalog lists pages of the index
(_registryd/catalog/ in the bucket) instead of walking the bucket.
registryd keeps the index itself and builds it when it is missing; run
this after other software changed repositories in the bucket: the
reference registry pushing to it, repositories copied in or removed by
hand. Safe while registries serve the bucket. On other drivers it does
nothing.`

// reindexFlags defines reindex's flags and returns what runs it.
func reindexFlags(fs *flag.FlagSet) runFunc {
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
		cfg, ok := loadConfig("reindex", args, stderr)
		if !ok {
			return 1
		}
		d, err := newDriver(cfg)
		if err != nil {
			fmt.Fprintf(stderr, "registryd reindex: storage: %v\n", err)
			return 1
		}
		reg := storage.New(d, storage.Options{NoDirWatch: true})
		start := time.Now()
		n, err := reg.RebuildCatalogIndex(ctx)
		if err != nil {
			fmt.Fprintf(stderr, "registryd reindex: %v\n", err)
			return 1
		}
		if n < 0 {
			fmt.Fprintf(stdout, "the %s driver has no catalog index: nothing to do\n", d.Name())
			return 0
		}
		fmt.Fprintf(stdout, "catalog index rebuilt: %d repositories in %s\n", n, time.Since(start).Round(time.Millisecond))
		return 0
	}
}
