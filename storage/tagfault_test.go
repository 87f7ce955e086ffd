package storage

import (
	"context"
	"errors"
	"io/fs"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/registryd/registryd/storage/driver"
	"github.com/registryd/registryd/storage/driver/inmemory"
)

// failingPuts fails PutContent on paths containing one of the strings.
type failingPuts struct {
	driver.StorageDriver
	fail []string
}

func (d *failingPuts) PutContent(ctx context.Context, p string, b []byte) error {
	for _, f := range d.fail {
		if strings.Contains(p, f) {
			return &fs.PathError{Op: "write", Path: p, Err: syscall.ENOSPC}
		}
	}
	return d.StorageDriver.PutContent(ctx, p, b)
}

// A manifest push that fails while tagging (the storage filled up) never
// leaves a tag that tags/list shows and a pull cannot serve: it fails
// before the tag exists, or leaves it whole.
func TestTagPushFailsWhole(t *testing.T) {
	for _, fail := range [][]string{{"/current/"}, {"/_pushed"}, {"/index/"}, {"/_pushed", "/index/"}} {
		t.Run(strings.Join(fail, ","), func(t *testing.T) {
			ctx := context.Background()
			d := &failingPuts{StorageDriver: inmemory.New()}
			reg := New(d, Options{})
			repo := mustRepo(t, reg, "a/b")
			cfg := []byte(`{}`)
			cd := digest.FromBytes(cfg)
			up, err := repo.NewUpload(ctx, "")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := up.Commit(ctx, strings.NewReader(string(cfg)), -1, cd); err != nil {
				t.Fatal(err)
			}
			m := `{"schemaVersion":2,"mediaType":"` + MediaTypeOCIManifest + `","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` + cd.String() + `","size":2},"layers":[]}`
			d.fail = fail
			_, err = repo.PutManifest(ctx, "v1", MediaTypeOCIManifest, []byte(m), nil)
			if fault, _ := driver.FaultOf(err); fault != driver.FaultFull {
				t.Fatalf("push while tagging fails: %v", err)
			}
			d.fail = nil
			tags, _, err := repo.Tags(ctx, "", -1)
			if err != nil && !errors.Is(err, driver.ErrPathNotFound) && !strings.Contains(err.Error(), "NAME_UNKNOWN") {
				t.Fatal(err)
			}
			_, gerr := repo.GetManifest(ctx, "v1")
			if slices.Contains(tags, "v1") != (gerr == nil) {
				t.Fatalf("tag listed %v, GET %v: half visible", slices.Contains(tags, "v1"), gerr)
			}
		})
	}
}
