//go:build !linux

package filesystem

import "os"

// behind does nothing where sync_file_range does not exist; Commit's
// fsync then writes the whole file.
type behind struct{}

func startBehind(f *os.File, from int64) *behind { return nil }
func (b *behind) request(end int64)              {}
func (b *behind) close()                         {}
