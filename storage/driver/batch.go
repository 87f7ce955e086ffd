package driver

import (
	"context"
	"fmt"
)

// OpKind says what a BatchOp does.
type OpKind uint8

const (
	// OpPut stores Content at Path, as PutContent.
	OpPut OpKind = iota + 1
	// OpMove renames Src to Path, as Move.
	OpMove
	// OpKeep changes nothing: what is at Path when Batch is called (an
	// object another writer stored and may not yet have made durable) is
	// durable when Batch returns. A missing Path is not an error.
	OpKeep
	// OpBarrier orders the batch: no operation after it takes effect
	// before every operation before it is durable.
	OpBarrier
)

// BatchOp is one operation of a Batch; build it with PutOp, MoveOp,
// KeepOp or Barrier.
type BatchOp struct {
	Kind    OpKind
	Path    string
	Src     string // OpMove
	Content []byte // OpPut
}

// PutOp stores content at p.
func PutOp(p string, content []byte) BatchOp { return BatchOp{Kind: OpPut, Path: p, Content: content} }

// MoveOp renames src to dst.
func MoveOp(src, dst string) BatchOp { return BatchOp{Kind: OpMove, Path: dst, Src: src} }

// KeepOp makes what is already at p durable.
func KeepOp(p string) BatchOp { return BatchOp{Kind: OpKeep, Path: p} }

// Barrier separates the operations that must be durable before any of the
// next takes effect.
var Barrier = BatchOp{Kind: OpBarrier}

func (op BatchOp) String() string {
	switch op.Kind {
	case OpPut:
		return fmt.Sprintf("put %s (%d bytes)", op.Path, len(op.Content))
	case OpMove:
		return fmt.Sprintf("move %s to %s", op.Src, op.Path)
	case OpKeep:
		return "keep " + op.Path
	case OpBarrier:
		return "barrier"
	}
	return fmt.Sprintf("op %d", op.Kind)
}

// Batcher is an optional extension of StorageDriver, for drivers whose
// durability costs a flush per file and per directory (the filesystem): a
// batch makes several PutContent and Move operations durable together,
// its flushes running at once instead of one after the other, and shared
// with those of concurrent batches. One storage request (a blob commit
// and its repository link, a manifest and its tags) is one batch.
//
// Every Put and Move is atomic, as PutContent and Move are. When Batch
// returns nil:
//   - every operation's outcome is durable;
//   - a moved object's content is durable even if the Writer that wrote
//     it was closed without Commit;
//   - what was at a Keep's path when Batch was called is durable.
//
// Between barriers the operations take effect in no particular order as
// far as a crash is concerned: a crash before Batch returns may leave any
// subset of them done, each whole or not at all. Operations between two
// barriers must name distinct paths. On an error some operations may have
// taken effect, as with a sequence of calls that stops at a failure.
type Batcher interface {
	Batch(ctx context.Context, ops ...BatchOp) error
}

// Batch runs ops with d's Batcher when d (or a driver it wraps) has one,
// else one at a time in order with PutContent and Move, whose results are
// durable when they return: then Keep and Barrier cost nothing, and a
// moved object is durable because such drivers' Writer Close stores what
// it was given as durably as Commit does.
func Batch(ctx context.Context, d StorageDriver, ops ...BatchOp) error {
	if b, ok := As[Batcher](d); ok {
		return b.Batch(ctx, ops...)
	}
	return BatchEach(ctx, d, ops...)
}

// BatchEach runs ops one at a time on d, in order (Batch without a
// Batcher).
func BatchEach(ctx context.Context, d StorageDriver, ops ...BatchOp) error {
	for _, op := range ops {
		var err error
		switch op.Kind {
		case OpPut:
			err = d.PutContent(ctx, op.Path, op.Content)
		case OpMove:
			err = d.Move(ctx, op.Src, op.Path)
		case OpKeep, OpBarrier:
		default:
			err = fmt.Errorf("%s: unknown batch operation %d", d.Name(), op.Kind)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
