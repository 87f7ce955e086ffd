package localsrv

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFreeAddr(t *testing.T) {
	a, err := FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(a, "127.0.0.1:") {
		t.Fatalf("address %q is not on loopback", a)
	}
	l, err := net.Listen("tcp", a)
	if err != nil {
		t.Fatalf("cannot listen on the free address: %v", err)
	}
	l.Close()
}

func TestTail(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, content string
		n             int
		want          string
	}{
		{"fewer lines than n", "a\nb\n", 5, "a\nb"},
		{"last n lines", "1\n2\n3\n4\n", 2, "3\n4"},
		{"no trailing newline", "1\n2\n3", 1, "3"},
		{"empty file", "", 3, ""},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, string(rune('a'+i)))
			if err := os.WriteFile(p, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			if got := Tail(p, tc.n); got != tc.want {
				t.Errorf("Tail = %q, want %q", got, tc.want)
			}
		})
	}
	if got := Tail(filepath.Join(dir, "missing"), 3); !strings.HasPrefix(got, "(no log: ") {
		t.Errorf("Tail of a missing file = %q", got)
	}
}
