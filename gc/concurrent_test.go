package gc

import (
	"bytes"
	"fmt"
	"math/rand"
	"reflect"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/registryd/registryd/storage/driver"
	"github.com/registryd/registryd/storage/driver/filesystem"
	"github.com/registryd/registryd/storage/driver/inmemory"
)

// randomStore builds the same random store on d for the same seed: the
// property test's operations, without collections, over more repositories
// so that workers overlap.
func randomStore(t *testing.T, d driver.StorageDriver, seed int64, ops int) *propEnv {
	p := &propEnv{
		env:   newEnvOn(t, d),
		m:     &model{manifests: map[digest.Digest]*mManifest{}, blobs: map[digest.Digest][]byte{}, repos: map[string]*mRepo{}},
		rnd:   rand.New(rand.NewSource(seed)),
		names: []string{"a", "a/b", "lib/x", "c", "d", "e/f", "g", "h", "i/j/k", "l"},
		tags:  []string{"v1", "v2", "latest"},
	}
	for i := 0; i < 8; i++ {
		p.layers = append(p.layers, bytes.Repeat([]byte{byte('a' + i)}, 100+37*i))
	}
	for i := 0; i < ops; i++ {
		p.step()
	}
	return p
}

// TestConcurrentMatchesSequential: on the same random store, a collection
// with many workers removes exactly what one with a single worker removes,
// in the same order, reports the same counters and leaves the same store;
// a dry run with many workers lists exactly that too.
func TestConcurrentMatchesSequential(t *testing.T) {
	newFS := func(t *testing.T) driver.StorageDriver {
		d, err := filesystem.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	newMem := func(*testing.T) driver.StorageDriver { return inmemory.New() }
	cases := []struct {
		name  string
		seeds int64
		ops   int
		new   func(*testing.T) driver.StorageDriver
	}{
		{"inmemory", 10, 150, newMem},
		{"filesystem", 1, 80, newFS},
	}
	for _, tc := range cases {
		for seed := int64(1); seed <= tc.seeds; seed++ {
			for _, untagged := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/seed=%d/untagged=%v", tc.name, seed, untagged), func(t *testing.T) {
					if testing.Short() && tc.name != "inmemory" {
						t.Skip("synced writes are slow")
					}
					seq := randomStore(t, tc.new(t), seed, tc.ops)
					par := randomStore(t, tc.new(t), seed, tc.ops)
					if diff := diffSnapshots(snapshot(t, seq.d), snapshot(t, par.d)); diff != "" {
						t.Fatalf("the two stores differ before collection:\n%s", diff)
					}
					dry := par.gc(Options{DryRun: true, DeleteUntagged: untagged, Workers: 8})
					want := seq.gc(Options{DeleteUntagged: untagged, ListRemoved: true, Workers: 1})
					got := par.gc(Options{DeleteUntagged: untagged, ListRemoved: true, Workers: 8})
					if len(want.Removed) == 0 {
						t.Fatal("nothing to remove: the store is not a test")
					}
					if !reflect.DeepEqual(want.Removed, got.Removed) {
						t.Fatalf("1 worker removed %d items, 8 removed %d:\n%v\n%v", len(want.Removed), len(got.Removed), want.Removed, got.Removed)
					}
					if !reflect.DeepEqual(want.Removed, dry.Removed) {
						t.Fatalf("dry run with 8 workers listed %d items, the run removed %d", len(dry.Removed), len(want.Removed))
					}
					want.Duration, got.Duration = 0, 0
					want.Removed, got.Removed = nil, nil
					if !reflect.DeepEqual(want, got) {
						t.Fatalf("reports differ:\n%+v\n%+v", want, got)
					}
					if diff := diffSnapshots(snapshot(t, seq.d), snapshot(t, par.d)); diff != "" {
						t.Fatalf("the stores differ after collection:\n%s", diff)
					}
				})
			}
		}
	}
}
