package gc

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/registryd/registryd/storage/driver"
	"github.com/registryd/registryd/storage/driver/inmemory"
)

// ignoresConditions is a store that accepts conditional writes but does not
// check the condition (an S3-compatible service that ignores If-Match).
type ignoresConditions struct{ *inmemory.Driver }

func (d ignoresConditions) PutContentIf(ctx context.Context, p string, b []byte, v string) (string, error) {
	if err := d.Driver.PutContent(ctx, p, b); err != nil {
		return "", err
	}
	return driver.ContentVersion(b), nil
}

// staleReads answers reads of an object written moments ago with its
// previous content (a store with eventual consistency, a cache in front).
type staleReads struct {
	*inmemory.Driver
	mu   sync.Mutex
	prev map[string][]byte
}

func (d *staleReads) PutContent(ctx context.Context, p string, b []byte) error {
	old, _ := d.Driver.GetContent(ctx, p)
	d.mu.Lock()
	d.prev[p] = old
	d.mu.Unlock()
	return d.Driver.PutContent(ctx, p, b)
}

func (d *staleReads) GetContent(ctx context.Context, p string) ([]byte, error) {
	d.mu.Lock()
	old, ok := d.prev[p]
	d.mu.Unlock()
	if ok && old != nil {
		return old, nil
	}
	return d.Driver.GetContent(ctx, p)
}

// TestCheckStoreRefuses: online collection refuses a store that ignores
// conditional writes or answers stale reads, says why in its report, and
// deletes nothing; a consistent store passes.
func TestCheckStoreRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		d    driver.StorageDriver
		want string
	}{
		{"ignores conditions", ignoresConditions{inmemory.New()}, "was not refused"},
		{"stale reads", &staleReads{Driver: inmemory.New(), prev: map[string][]byte{}}, "just overwritten"},
		{"consistent", inmemory.New(), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			col, err := NewCollector(tc.d, OnlineOptions{Delay: MinDelay(testRmax, testSkew), StateMaxAge: testRmax, ClockSkew: testSkew}, 0)
			if err != nil {
				t.Fatal(err)
			}
			rep, err := col.RunOnce(context.Background())
			if tc.want == "" {
				if err != nil || rep.Result != ResultOK {
					t.Fatalf("consistent store: %+v, %v", rep, err)
				}
				return
			}
			if err == nil || rep.Result != ResultRefused || !strings.Contains(rep.Error, tc.want) ||
				!strings.Contains(rep.Error, "not consistent enough for online garbage collection") {
				t.Fatalf("run on a store that %s: %+v, %v", tc.name, rep, err)
			}
		})
	}
}
