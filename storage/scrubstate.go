package storage

import (
	"context"
	"encoding/json"
	"time"
)

// ScrubState is what the storage remembers of the background scrub, so
// that the instances sharing it, and an instance that restarts, take
// turns instead of each checking everything every interval.
type ScrubState struct {
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished,omitzero"`
	Instance string    `json:"instance"`
	// What the last finished run checked and found.
	Blobs  int64  `json:"blobs,omitempty"`
	Bytes  int64  `json:"bytes,omitempty"`
	Damage int    `json:"damage,omitempty"`
	Failed string `json:"failed,omitempty"` // why it did not finish
}

// ScrubState returns the background scrub's state; ok is false when no
// scrub ever ran (or its state cannot be read: running one is harmless).
func (r *Registry) ScrubState(ctx context.Context) (st ScrubState, ok bool, err error) {
	b, err := r.driver.GetContent(ctx, scrubStatePath())
	if isNotFound(err) {
		return ScrubState{}, false, nil
	}
	if err != nil {
		return ScrubState{}, false, storageErr(err)
	}
	if json.Unmarshal(b, &st) != nil {
		return ScrubState{}, false, nil
	}
	return st, true, nil
}

// SetScrubState records the background scrub's state.
func (r *Registry) SetScrubState(ctx context.Context, st ScrubState) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return storageErr(r.driver.PutContent(ctx, scrubStatePath(), b))
}
