package main

import (
	"context"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/registryd/registryd/config"
	"github.com/registryd/registryd/gc"
	"github.com/registryd/registryd/metrics"
	"github.com/registryd/registryd/storage"
)

// scrubInBackground runs the integrity check of `registryd scrub` in the
// registry (storage.maintenance.scrub), paced by its rate limit. A run is
// due when the last one recorded in the storage started an interval ago
// or more, so instances sharing the storage take turns and a restart does
// not start over. Each damage is logged as a warning and counted; with
// repair (and not read-only) it is quarantined or fixed as by the command.
func scrubInBackground(ctx context.Context, reg *storage.Registry, sc config.Scrub, readOnly bool, instanceID string, obs *metrics.ScrubObserver, log logrus.FieldLogger) {
	log = log.WithField("component", "scrub")
	repair := sc.Repair && !readOnly
	if sc.Repair && readOnly {
		log.Warn("storage.maintenance.scrub.repair is ignored in read-only mode: damage is reported, not repaired")
	}
	// Not during startup's first requests; then often enough to notice
	// that a run is due, or that another instance's is over.
	t := time.NewTimer(min(sc.Interval, time.Minute))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		t.Reset(min(sc.Interval, 10*time.Minute))
		st, ok, err := reg.ScrubState(ctx)
		if err != nil {
			log.WithError(err).Warn("cannot read the scrub state; checking later")
			continue
		}
		if ok && time.Since(st.Started) < sc.Interval && !abandoned(ctx, reg, st) {
			continue
		}
		runBackgroundScrub(ctx, reg, sc.RateLimit, repair, instanceID, obs, log)
	}
}

func runBackgroundScrub(ctx context.Context, reg *storage.Registry, rate int64, repair bool, instanceID string, obs *metrics.ScrubObserver, log logrus.FieldLogger) {
	st := storage.ScrubState{Started: time.Now().UTC(), Instance: instanceID}
	if err := reg.SetScrubState(ctx, st); err != nil {
		log.WithError(err).Warn("cannot record the scrub's start; checking later")
		return
	}
	log.WithFields(logrus.Fields{"ratelimit_bytes_per_second": rate, "repair": repair}).Info("integrity check started")
	rep, err := reg.Scrub(ctx, storage.ScrubOptions{
		Repair:         repair,
		BytesPerSecond: rate,
		OnBytes:        obs.Hashed,
		OnDamage: func(d storage.Damage) {
			obs.Found(string(d.Kind))
			log.WithFields(logrus.Fields{"kind": d.Kind, "repository": d.Repository, "digest": d.Digest.String(), "tag": d.Tag, "repaired": d.Repaired}).
				Warn("integrity check: damage found: " + d.String())
		},
	})
	now := time.Now().UTC()
	st.Finished, st.Blobs, st.Bytes, st.Damage = now, rep.Blobs, rep.BlobBytes, len(rep.Damage)
	entry := log.WithFields(logrus.Fields{
		"blobs": rep.Blobs, "bytes": rep.BlobBytes, "repositories": rep.Repositories, "manifests": rep.Manifests,
		"tags": rep.Tags, "links": rep.Links, "damage": len(rep.Damage), "duration": now.Sub(st.Started).Round(time.Millisecond).String(),
	})
	switch {
	case err != nil:
		if ctx.Err() != nil {
			return // shutting down: the next start runs it again
		}
		st.Failed = err.Error()
		obs.Finished("failed", nil, now)
		entry.WithError(err).Warn("integrity check did not finish")
	case rep.Damaged():
		obs.Finished("damaged", damageByKind(rep), now)
		entry.Warn("integrity check finished: DAMAGE FOUND (registryd scrub names it; --repair quarantines it)")
	default:
		obs.Finished("clean", damageByKind(rep), now)
		entry.Info("integrity check finished: nothing damaged")
	}
	if err := reg.SetScrubState(context.WithoutCancel(ctx), st); err != nil {
		log.WithError(err).Warn("cannot record the scrub's end")
	}
}

func damageByKind(rep *storage.ScrubReport) map[string]int {
	out := map[string]int{}
	for _, d := range rep.Damage {
		out[string(d.Kind)]++
	}
	return out
}

// abandoned reports whether the run st records was started and never
// finished by an instance that is gone (stopped or crashed mid-run): it is
// started again now rather than an interval later. A run still going on
// in a live instance is left alone.
func abandoned(ctx context.Context, reg *storage.Registry, st storage.ScrubState) bool {
	if !st.Finished.Before(st.Started) {
		return false
	}
	live, err := reg.LiveInstances(ctx, time.Now(), gc.DefaultInstanceTTL)
	if err != nil {
		return false
	}
	for _, in := range live {
		if in.ID == st.Instance {
			return false
		}
	}
	return true
}
