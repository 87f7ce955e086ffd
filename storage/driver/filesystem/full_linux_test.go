package filesystem

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/registryd/registryd/storage/driver"
)

// On a full disk, PutContent fails with a full-storage fault and leaves
// no directory it made (an empty tag directory would be listed though it
// names nothing); directories others made stay. Needs root for the tmpfs.
func TestPutContentFullDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("!!! SKIPPING: mounting a tmpfs to fill needs root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "registryd-full", dir).CombinedOutput(); err != nil {
		t.Skipf("!!! SKIPPING: cannot mount a tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	d, err := New(filepath.Join(dir, "root"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx := context.Background()
	if err := d.PutContent(ctx, "/kept/x", []byte("x")); err != nil {
		t.Fatal(err)
	}
	// Fill what is left.
	f, err := os.Create(filepath.Join(dir, "ballast"))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			break
		}
	}
	f.Close()
	err = d.PutContent(ctx, "/kept/new/deeper/link", []byte(strings.Repeat("sha256:", 4096)))
	if fault, _ := driver.FaultOf(err); fault != driver.FaultFull {
		t.Fatalf("PutContent on a full disk: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "root", "kept", "new")); !os.IsNotExist(err) {
		t.Errorf("a failed PutContent left the directory it made: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "root", "kept", "x")); err != nil {
		t.Errorf("what was there is gone: %v", err)
	}
	// Space freed: it works again, no operator.
	os.Remove(filepath.Join(dir, "ballast"))
	if err := d.PutContent(ctx, "/kept/new/deeper/link", []byte("sha256:x")); err != nil {
		t.Fatalf("after space was freed: %v", err)
	}
}
