package filesystem

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/registryd/registryd/storage/driver"
)

// Batch implements driver.Batcher; PutContent and Move are batches of one.
// The steps, and the flushes each needs (the package comment says why):
//
//  1. Directories: every missing directory of a target is created; the
//     parents of those it creates are flushed in step 3, not one by one.
//  2. Contents: each Put's content is written to a temporary file in its
//     target's directory.
//  3. The first flush, all at once: the temporary files, the sources of
//     moves (their Writer may have closed them without Commit), and the
//     parents of the directories step 1 created or found still young (see
//     flusher). After it, every content and every directory that a name
//     will appear in is durable.
//  4. For each part between barriers, in order: the renames that publish
//     its objects, in the order given, then the flush of every directory
//     a name appeared in (or that a Keep names), shared with concurrent
//     batches (flusher). The next part starts only after it.
//
// So a batch costs two rounds of flushes plus one per barrier, however
// many objects and new directories it has, where the same operations one
// at a time cost one round per file and per directory level created. Below
// the scratch root (driver.WithScratch) nothing is flushed.
func (d *Driver) Batch(ctx context.Context, ops ...driver.BatchOp) error {
	return d.batch(ctx, true, ops...)
}

// batch runs ops; syncMoves says whether a move syncs its source's content
// (Batch's contract) or leaves that to the Writer's Commit (Move's).
func (d *Driver) batch(ctx context.Context, syncMoves bool, ops ...driver.BatchOp) error {
	b := &batch{d: d, scratch: d.scratchRoot(ctx), syncMoves: syncMoves}
	err := b.prepare(ops)
	if err == nil {
		err = b.run(ctx)
	}
	b.cleanup(err != nil)
	return err
}

// bop is a prepared batch operation.
type bop struct {
	driver.BatchOp
	full    string // target file path
	dir     string // its directory
	src     string // OpMove: source file path
	durable bool   // target not below the scratch root
	syncSrc bool   // OpMove: sync the source's content before the rename
	tmp     *os.File
}

type batch struct {
	d         *Driver
	scratch   string
	syncMoves bool
	parts     [][]*bop
	made      []string // directories created, in order
	created   []string // those outside scratch, not yet settled (flusher.young)
	tmps      []*bop   // Put operations whose temporary file is not renamed yet
}

// prepare checks every path before anything is touched.
func (b *batch) prepare(ops []driver.BatchOp) error {
	var part []*bop
	paths := map[string]bool{} // of the part, which must be distinct
	for _, op := range ops {
		if op.Kind == driver.OpBarrier {
			if len(part) > 0 {
				b.parts = append(b.parts, part)
				part = nil
				clear(paths)
			}
			continue
		}
		if paths[op.Path] {
			return fmt.Errorf("filesystem: %s twice in one part of a batch", op.Path)
		}
		paths[op.Path] = true
		full, err := b.d.fullObject(op.Path)
		if err != nil {
			return err
		}
		o := &bop{BatchOp: op, full: full, dir: filepath.Dir(full), durable: !below(full, b.scratch)}
		switch op.Kind {
		case driver.OpPut, driver.OpKeep:
		case driver.OpMove:
			if o.src, err = b.d.fullObject(op.Src); err != nil {
				return err
			}
			o.syncSrc = o.durable && b.syncMoves
		default:
			return errors.New("filesystem: unknown batch operation")
		}
		part = append(part, o)
	}
	if len(part) > 0 {
		b.parts = append(b.parts, part)
	}
	return nil
}

func (b *batch) run(ctx context.Context) error {
	f := b.d.flush
	var files []*os.File
	var dirs []string // flushed in the first round
	for _, part := range b.parts {
		for _, o := range part {
			if err := ctx.Err(); err != nil {
				return err
			}
			switch o.Kind {
			case driver.OpKeep:
				// Nothing is created for a Keep; its directory may still
				// be one a concurrent batch of this process created.
				dirs = f.youngParents(o.dir, dirs)
				continue
			case driver.OpMove:
				if _, err := os.Lstat(o.src); err != nil {
					return b.d.mapReadErr(o.Src, err)
				}
			}
			var err error
			if dirs, err = b.mkdirs(o.dir, dirs); err != nil {
				return err
			}
			switch o.Kind {
			case driver.OpPut:
				if o.tmp, err = createTemp(o.dir, filepath.Base(o.full)); err != nil {
					return err
				}
				b.tmps = append(b.tmps, o)
				if _, err := o.tmp.Write(o.Content); err != nil {
					return err
				}
				if o.durable {
					files = append(files, o.tmp)
				}
			case driver.OpMove:
				if o.syncSrc {
					sf, err := os.Open(o.src)
					if err != nil {
						return b.d.mapReadErr(o.Src, err)
					}
					defer sf.Close()
					files = append(files, sf)
				}
			}
		}
	}
	if batchHook != nil {
		batchHook("prepared")
	}
	// The first round: contents and new directories.
	dirs = dedupe(dirs)
	if err := parallel(len(files)+len(dirs), func(i int) error {
		if i < len(files) {
			return syncFile(files[i])
		}
		return f.flushDir(dirs[i-len(files)])
	}); err != nil {
		return err
	}
	b.settle()
	for _, o := range b.tmps {
		if err := o.tmp.Close(); err != nil {
			return err
		}
	}
	// Then each part: renames, and the flush of the directories they
	// changed.
	for _, part := range b.parts {
		var flush []string
		keepOnly := map[string]bool{} // directories only Keeps name
		for _, o := range part {
			if err := b.publish(ctx, o); err != nil {
				return err
			}
			if !o.durable {
				continue
			}
			if _, seen := keepOnly[o.dir]; !seen {
				flush = append(flush, o.dir)
				keepOnly[o.dir] = true
			}
			if o.Kind != driver.OpKeep {
				keepOnly[o.dir] = false
			}
		}
		if err := parallel(len(flush), func(i int) error {
			err := f.flushDir(flush[i])
			if err != nil && keepOnly[flush[i]] && errors.Is(err, fs.ErrNotExist) {
				return nil // nothing there to keep
			}
			return err
		}); err != nil {
			return err
		}
	}
	return nil
}

// publish renames o's temporary file or source into place. A target
// directory removed meanwhile (a concurrent delete of a tag, say) is
// created again and the operation done alone, as PutContent and Move
// would do after the delete.
func (b *batch) publish(ctx context.Context, o *bop) error {
	switch o.Kind {
	case driver.OpPut:
		err := os.Rename(o.tmp.Name(), o.full)
		if err == nil {
			if renameHook != nil {
				renameHook(o.tmp.Name(), o.full)
			}
			o.tmp = nil
			return nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return b.d.batch(ctx, b.syncMoves, driver.PutOp(o.Path, o.Content))
	case driver.OpMove:
		err := os.Rename(o.src, o.full)
		if err == nil && renameHook != nil {
			renameHook(o.src, o.full)
		}
		if err == nil || !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if _, serr := os.Lstat(o.src); errors.Is(serr, fs.ErrNotExist) {
			return b.d.notFound(o.Src) // removed meanwhile
		}
		return b.d.batch(ctx, b.syncMoves, o.BatchOp)
	}
	return nil
}

// mkdirs creates dir and its missing parents without flushing anything,
// and appends to out the directories whose flush makes them reachable
// after a crash: the parent of each one created, and the young parents
// (flusher.youngParents) of the first that existed. Directories created
// strictly below the scratch root need no flush.
func (b *batch) mkdirs(dir string, out []string) ([]string, error) {
	fi, err := os.Stat(dir)
	if err == nil {
		if !fi.IsDir() {
			return out, &fs.PathError{Op: "mkdir", Path: dir, Err: syscall.ENOTDIR}
		}
		return b.d.flush.youngParents(dir, out), nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return out, err
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if out, err = b.mkdirs(parent, out); err != nil {
			return out, err
		}
	}
	durable := !below(dir, b.scratch)
	if durable {
		// Young before it exists: whoever finds it, from the moment it
		// does, also finds that its parent must be flushed.
		b.d.flush.created(dir)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		if durable {
			b.d.flush.settled(dir)
		}
		// Someone else may have created it meanwhile (and may not have
		// made it durable yet); a file there is still an error.
		fi, serr := os.Stat(dir)
		if serr != nil || !fi.IsDir() {
			return out, err
		}
		return b.d.flush.youngParents(dir, out), nil
	}
	if mkdirHook != nil {
		mkdirHook(dir)
	}
	b.made = append(b.made, dir)
	if !durable {
		return out, nil
	}
	b.created = append(b.created, dir)
	return append(out, parent), nil
}

// settle tells the flusher that the directories this batch created are
// durable (their parents were flushed).
func (b *batch) settle() {
	for _, dir := range b.created {
		b.d.flush.settled(dir)
	}
	b.created = nil
}

// cleanup removes temporary files that were not renamed. After a failure
// it also removes the directories the batch made that are still empty
// (an empty tag directory would be listed though it names nothing; rmdir
// removes nothing another writer put there meanwhile), and makes the
// others durable if it can, so that they do not stay young.
func (b *batch) cleanup(failed bool) {
	for _, o := range b.tmps {
		if o.tmp != nil {
			_ = o.tmp.Close()
			_ = os.Remove(o.tmp.Name())
		}
	}
	if failed {
		gone := map[string]bool{}
		for i := len(b.made) - 1; i >= 0; i-- {
			if os.Remove(b.made[i]) == nil {
				gone[b.made[i]] = true
			}
		}
		kept := b.created[:0]
		for _, dir := range b.created {
			if gone[dir] {
				b.d.flush.settled(dir) // nothing left to make durable
			} else {
				kept = append(kept, dir)
			}
		}
		b.created = kept
	}
	if len(b.created) > 0 {
		var parents []string
		for _, dir := range b.created {
			parents = append(parents, filepath.Dir(dir))
		}
		if b.d.flush.flushDirs(dedupe(parents)) == nil {
			b.settle()
		}
		// Else they stay young: whoever uses them flushes their parents.
	}
}

// ensureDir creates dir and its missing parents, durably (except strictly
// below scratch): it returns after the flushes that make dir reachable
// after a crash.
func (d *Driver) ensureDir(dir, scratch string) error {
	b := &batch{d: d, scratch: scratch}
	dirs, err := b.mkdirs(dir, nil)
	if err == nil {
		err = d.flush.flushDirs(dedupe(dirs))
		if err == nil {
			b.settle()
		}
	}
	b.cleanup(false)
	return err
}

// Test hooks: batchHook sees a batch's stages ("prepared": directories
// made and temporary files written, before the first round of flushes);
// renameHook every rename that publishes an object, mkdirHook every
// directory created, once done.
var (
	batchHook  func(stage string)
	renameHook func(from, to string)
	mkdirHook  func(dir string)
)

// dedupe drops repeated strings, keeping the first of each.
func dedupe(s []string) []string {
	if len(s) < 2 {
		return s
	}
	seen := make(map[string]bool, len(s))
	out := s[:0]
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}
