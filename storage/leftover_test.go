package storage

import (
	"os"
	"path"
	"slices"
	"testing"
)

// A push interrupted between making a new tag's directories and renaming
// its links into them leaves empty directories: tags/list leaves them
// out, scrub counts them apart from damage and --repair removes them; a
// tag directory with a file but no current link stays damage.
func TestInterruptedTagLeftovers(t *testing.T) {
	f := newScrubFixture(t)
	if err := os.MkdirAll(f.file(path.Dir(tagCurrentPath("app", "half"))), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(f.file(path.Dir(tagIndexPath("app", "half", f.one))), 0o755); err != nil {
		t.Fatal(err)
	}
	tags, _, err := f.app.Tags(f.ctx, "", -1)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(tags, "half") || !slices.Contains(tags, "v1") {
		t.Fatalf("tags %v: want v1 and not the leftover", tags)
	}
	if page, _, _ := f.app.Tags(f.ctx, "", 2); slices.Contains(page, "half") || len(page) != 2 {
		t.Fatalf("a page of 2: %v", page)
	}
	rep, err := f.reg.Scrub(f.ctx, ScrubOptions{})
	if err != nil || rep.Damaged() || rep.Leftovers != 1 {
		t.Fatalf("scrub: %v, damage %v, leftovers %d", err, rep.Damage, rep.Leftovers)
	}
	if rep, err = f.reg.Scrub(f.ctx, ScrubOptions{Repair: true}); err != nil || rep.Leftovers != 1 {
		t.Fatalf("scrub --repair: %v %d", err, rep.Leftovers)
	}
	if _, err := os.Stat(f.file(tagDir("app", "half"))); !os.IsNotExist(err) {
		t.Fatalf("the leftover is still there after --repair: %v", err)
	}
	// A file in it (a push record) without current is damage, as before.
	if err := os.MkdirAll(f.file(path.Dir(tagIndexPath("app", "torn", f.one))), 0o755); err != nil {
		t.Fatal(err)
	}
	f.write(tagIndexPath("app", "torn", f.one), []byte(f.one.String()))
	if rep, err = f.reg.Scrub(f.ctx, ScrubOptions{}); err != nil || rep.Count(DamageTag) != 1 || rep.Leftovers != 0 {
		t.Fatalf("a torn tag: %v, damage %v, leftovers %d", err, rep.Damage, rep.Leftovers)
	}
}
