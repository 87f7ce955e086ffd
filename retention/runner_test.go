package retention

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/registryd/registryd/storage"
)

// harbor#8717 on real storage: the sibling tag on the same manifest stays,
// and the manifest still pulls through it.
func TestRunnerSiblingTagSurvives(t *testing.T) {
	s := newStore(t)
	at := time.Now()
	img := s.image("app", "", "L1")
	s.tag("app", "build-41", img.Digest, at.Add(-30*day), time.Time{})
	s.tag("app", "stable", img.Digest, at.Add(-30*day), time.Time{})
	s.tag("app", "build-42", s.image("app", "", "L2").Digest, at.Add(-time.Hour), time.Time{})
	e := engine(t, policy("**", KeepRule{Patterns: []string{"^stable$"}}, KeepRule{PushedWithin: day}))
	rep, err := s.runner(e, at).Run(context.Background(), false)
	if err != nil || rep.DeletedTags != 1 {
		t.Fatalf("%v %+v", err, rep)
	}
	m, err := s.repo("app").GetManifest(context.Background(), "stable")
	if err != nil || m.Digest != img.Digest {
		t.Fatalf("stable: %v %v", m, err)
	}
	if _, err := s.repo("app").GetManifest(context.Background(), "build-41"); !storage.ErrNotFound(err) {
		t.Fatalf("build-41: %v", err)
	}
}

// A tag pushed again between the decision and the delete stays, and so
// does an untagged manifest tagged meanwhile.
func TestRunnerKeepsWhatChangedMeanwhile(t *testing.T) {
	s := newStore(t)
	at := time.Now().Add(3 * day)
	old, other, loose := s.image("app", "", "L1"), s.image("app", "", "L2"), s.image("app", "", "L3")
	s.tag("app", "v1", old.Digest, at.Add(-30*day), time.Time{})
	s.tag("app", "v2", other.Digest, at.Add(-30*day), time.Time{})
	s.tag("app", "latest", other.Digest, at.Add(-time.Hour), time.Time{})
	st := engine(t, policy("**", KeepRule{PushedWithin: day}))
	st.settings.Policies[0].DeleteUntagged = true
	st.policies[0].deleteUntagged = true
	r := s.runner(st, at)
	// The source answers, then someone pushes: v1 moves, loose gets a tag.
	s.tag("app", "again", old.Digest, at.Add(-30*day), time.Time{})
	first := true
	r.opts.Tags = func(ctx context.Context, repo *storage.Repository) ([]Tag, error) {
		tags, err := s.source(ctx, repo)
		if first {
			s.tag("app", "v1", other.Digest, at, time.Time{})
			s.tag("app", "fresh", loose.Digest, at, time.Time{})
			s.tag("app", "again", old.Digest, at, time.Time{}) // the same manifest, pushed again
			first = false
		}
		return tags, err
	}
	rep, err := r.Run(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	moved := map[string]bool{}
	for _, d := range rep.Decisions {
		if d.Rule == RuleMoved {
			moved[d.Tag+"@"+d.Digest.String()] = true
		}
	}
	if !moved["v1@"+old.Digest.String()] || !moved["again@"+old.Digest.String()] || !moved["@"+loose.Digest.String()] {
		t.Errorf("moved: %v", moved)
	}
	after := s.state()["app"]
	if after.tags["v1"] != other.Digest || after.tags["again"] != old.Digest || after.tags["fresh"] != loose.Digest || !after.revs[loose.Digest] {
		t.Errorf("%+v", after)
	}
	// v2 went (its manifest is latest's). old's manifest, untagged by the
	// push, waits for a later run: this run saw it tagged.
	if _, ok := after.tags["v2"]; ok || !after.revs[old.Digest] {
		t.Errorf("%+v", after)
	}
}

func TestRunnerReportAndMetrics(t *testing.T) {
	s := newStore(t)
	at := time.Now()
	for i, name := range []string{"a", "b", "c", "d"} {
		s.tag("wipe/me", name, s.image("wipe/me", "", name).Digest, at.Add(-time.Duration(10+i)*day), time.Time{})
		s.tag("team/app", name, s.image("team/app", "", name).Digest, at.Add(-time.Duration(10+i)*day), time.Time{})
	}
	s.tag("team/app", "new", s.image("team/app", "", "new").Digest, at, time.Time{})
	s.tag("team/app", "new2", s.image("team/app", "", "new2").Digest, at, time.Time{})
	s.tag("untouched", "old", s.image("untouched", "", "x").Digest, at.Add(-100*day), time.Time{})
	st := Settings{MaxShare: 0.7, MaxDeletionsPerRun: 3, Delay: day, Policies: []Policy{
		{Repositories: []string{"wipe/*"}, KeepTags: []KeepRule{{PushedWithin: day}}},
		{Repositories: []string{"team/**"}, KeepTags: []KeepRule{{PushedWithin: day}}},
	}}
	e, err := Compile(st)
	if err != nil {
		t.Fatal(err)
	}
	m := NewMetrics()
	r := s.runner(e, at)
	r.opts.Metrics = m
	r.opts.MaxKeptInReport = 1
	rep, err := r.Run(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	// wipe/me would lose all 4 tags: refused. team/app loses 4 of 6 (67%),
	// 3 now (the cap), 1 next run. untouched matches no policy.
	if rep.Result != ResultRefused || len(rep.Refused) != 1 || rep.Refused[0] != "wipe/me" || !strings.Contains(rep.Error, "wipe/me") {
		t.Errorf("%s", summary(rep))
	}
	if rep.Repositories != 3 || rep.Matched != 2 || rep.DeletedTags != 3 || rep.Deferred != 1 || rep.KeptNotListed != 1 {
		t.Errorf("%+v", rep)
	}
	if !rep.SizesKnown || rep.BytesFreed != 0 { // tags deleted, their manifests stay: nothing freed yet
		t.Errorf("sizes: %v %d", rep.SizesKnown, rep.BytesFreed)
	}
	for _, tc := range []struct {
		got, want float64
	}{
		{value(m.deletedTags.WithLabelValues("team/**")), 3},
		{value(m.refusals.WithLabelValues("wipe/*")), 1},
		{value(m.deferred), 1},
		{value(m.runs.WithLabelValues("refused", "false")), 1},
	} {
		if tc.got != tc.want {
			t.Errorf("metric %v, want %v", tc.got, tc.want)
		}
	}
	// A dry run counts no deletion and no refusal.
	if _, err := r.Run(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	if value(m.refusals.WithLabelValues("wipe/*")) != 1 || value(m.runs.WithLabelValues("refused", "true")) != 1 {
		t.Error("dry run metrics")
	}
}

// A repository that cannot be read is reported; the others are processed.
func TestRunnerRepositoryErrorDoesNotStopTheRun(t *testing.T) {
	s := newStore(t)
	at := time.Now()
	s.tag("a", "old", s.image("a", "", "1").Digest, at.Add(-9*day), time.Time{})
	s.tag("a", "new", s.image("a", "", "2").Digest, at, time.Time{})
	s.tag("b", "old", s.image("b", "", "3").Digest, at.Add(-9*day), time.Time{})
	s.tag("b", "new", s.image("b", "", "4").Digest, at, time.Time{})
	r := s.runner(engine(t, policy("**", KeepRule{PushedWithin: day})), at)
	boom := errors.New("boom")
	r.opts.Tags = func(ctx context.Context, repo *storage.Repository) ([]Tag, error) {
		if repo.Name() == "a" {
			return nil, boom
		}
		return s.source(ctx, repo)
	}
	rep, err := r.Run(context.Background(), false)
	if err == nil || rep.Result != ResultFailed || !strings.Contains(rep.Error, "a: reading tags: boom") || rep.DeletedTags != 1 {
		t.Errorf("%v %s", err, summary(rep))
	}
	if _, ok := s.state()["b"].tags["old"]; ok {
		t.Error("b was not processed")
	}
}

// value reads a counter or gauge.
func value(m prometheus.Metric) float64 {
	var out dto.Metric
	if err := m.Write(&out); err != nil {
		panic(err)
	}
	if c := out.GetCounter(); c != nil {
		return c.GetValue()
	}
	return out.GetGauge().GetValue()
}

// The times the registry records itself (storage.TagInfos): push times at
// each tag write, pulls noted in memory and not yet flushed, all on one
// Registry as inside serve. A dry run over them writes nothing either.
func TestRunnerWithRecordedTimes(t *testing.T) {
	s := newStore(t)
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s.reg = storage.New(s.count, storage.Options{TrackPulls: true, Now: func() time.Time { return clock }})
	push := func(tag string, at time.Time) digest.Digest {
		clock = at
		d := s.image("app", "", tag)
		c := s.content[d.Digest]
		if _, err := s.repo("app").PutManifest(s.ctx, tag, c.mediaType, c.b, nil); err != nil {
			t.Fatal(err)
		}
		return d.Digest
	}
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	old := push("old", now.Add(-40*day))
	push("mid", now.Add(-20*day))
	push("new", now.Add(-time.Hour))
	push("other", now.Add(-30*day))
	clock = now.Add(-day)
	s.repo("app").RecordPull(old) // pulled yesterday, still in memory
	e := engine(t, policy("**", KeepRule{PulledWithin: 7 * day}, KeepRule{PushedWithin: 7 * day}))
	r := NewRunner(s.reg, e, Options{Now: func() time.Time { return now }})
	w0 := s.count.writes.Load()
	dry, err := r.Run(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	if w := s.count.writes.Load() - w0; w != 0 {
		t.Fatalf("dry run wrote %d times (last %v)", w, s.count.last.Load())
	}
	got := map[string]string{}
	for _, d := range dry.Decisions {
		got[d.Tag] = fmt.Sprintf("%v %s", d.Delete, d.Rule)
	}
	want := map[string]string{"old": "false pulledwithin", "mid": "true nokeeprule", "new": "false pulledwithin", "other": "true nokeeprule"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v\nwant %v", got, want)
	}
	if rep, err := r.Run(context.Background(), false); err != nil || rep.DeletedTags != 2 {
		t.Fatalf("%v %s", err, summary(rep))
	}
	tags, _, err := s.repo("app").Tags(s.ctx, "", -1)
	if err != nil || !reflect.DeepEqual(tags, []string{"new", "old"}) {
		t.Errorf("%v %v", tags, err)
	}
}
