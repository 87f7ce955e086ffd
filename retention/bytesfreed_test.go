package retention

import (
	"context"
	"testing"
	"time"

	"github.com/registryd/registryd/gc"
	"github.com/registryd/registryd/storage"
)

// The bytes a run reports freed are the bytes the collector then frees:
// shared layers once, a layer another repository holds not at all, and
// nothing while deleted tags' manifests stay (untagged collection off).
func TestRunnerBytesFreedMatchesCollector(t *testing.T) {
	for _, untagged := range []bool{false, true} {
		t.Run(map[bool]string{false: "revisions-kept", true: "deleteuntagged"}[untagged], func(t *testing.T) {
			s := newStore(t)
			at := time.Now()
			old := at.Add(-10 * day)
			s.tag("team/app", "old1", s.image("team/app", "", "shared layer", "only old1's").Digest, old, time.Time{})
			s.tag("team/app", "old2", s.image("team/app", "", "shared layer", "old2's, also in base").Digest, old, time.Time{})
			s.tag("team/app", "new", s.image("team/app", "", "new's").Digest, at, time.Time{})
			s.tag("base", "v1", s.image("base", "", "old2's, also in base").Digest, old, time.Time{})
			e, err := Compile(Settings{MaxShare: 1, MaxDeletionsPerRun: 100, Policies: []Policy{{Repositories: []string{"team/**"}, KeepTags: []KeepRule{{PushedWithin: day}}}}})
			if err != nil {
				t.Fatal(err)
			}
			reg := storage.New(s.count, storage.Options{SizesDeleteUntagged: untagged})
			r := NewRunner(reg, e, Options{Tags: s.source, Now: func() time.Time { return at }})
			dry, err := r.Run(context.Background(), true)
			if err != nil {
				t.Fatal(err)
			}
			rep, err := r.Run(context.Background(), false)
			if err != nil {
				t.Fatal(err)
			}
			if rep.DeletedTags != 2 || !rep.SizesKnown || !dry.SizesKnown || dry.BytesFreed != rep.BytesFreed {
				t.Fatalf("dry run %+v, run %+v", dry, rep)
			}
			col, err := gc.Run(context.Background(), storage.New(s.base, storage.Options{}), gc.Options{DeleteUntagged: untagged})
			if err != nil {
				t.Fatal(err)
			}
			if rep.BytesFreed != col.BytesReclaimed {
				t.Errorf("retention said %d bytes freed, the collector freed %d", rep.BytesFreed, col.BytesReclaimed)
			}
			if untagged == (col.BytesReclaimed == 0) {
				t.Errorf("the collector freed %d bytes", col.BytesReclaimed)
			}
		})
	}
}
