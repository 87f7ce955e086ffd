package retention

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/registryd/registryd/storage"
)

func TestService(t *testing.T) {
	s := newStore(t)
	at := time.Now()
	s.tag("app", "old", s.image("app", "", "1").Digest, at.Add(-9*day), time.Time{})
	s.tag("app", "new", s.image("app", "", "2").Digest, at, time.Time{})
	r := s.runner(engine(t, policy("**", KeepRule{PushedWithin: day})), at)
	// The first run blocks in its tag source until released.
	release := make(chan struct{})
	r.opts.Tags = func(ctx context.Context, repo *storage.Repository) ([]Tag, error) {
		<-release
		return s.source(ctx, repo)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var after []Report
	svc := NewService(ctx, r, ServiceOptions{KeepReports: 2, AfterRun: func(rep Report) { after = append(after, rep) }})
	if !svc.Enabled() {
		t.Fatal("not enabled")
	}
	id, err := svc.Start(true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Start(false); !errors.Is(err, ErrBusy) {
		t.Fatalf("second start: %v", err)
	}
	st := svc.Status()
	if !st.Running || len(st.Runs) != 1 || st.Runs[0].ID != id || st.Runs[0].Result != ResultRunning || !st.Runs[0].DryRun {
		t.Fatalf("%+v", st)
	}
	close(release)
	rep, err := svc.Wait(context.Background(), id)
	if err != nil || rep.ID != id || rep.DeletedTags != 1 || !rep.DryRun {
		t.Fatalf("%v %s", err, summary(rep))
	}
	if len(after) != 0 {
		t.Error("AfterRun after a dry run")
	}
	// A real run, then another: only two reports are kept.
	for i := 0; i < 2; i++ {
		id, err = svc.Start(false)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := svc.Wait(context.Background(), id); err != nil {
			t.Fatal(err)
		}
	}
	st = svc.Status()
	if st.Running || len(st.Runs) != 2 || st.Runs[0].ID != id || st.Runs[1].DeletedTags != 1 || st.Runs[0].DeletedTags != 0 {
		t.Fatalf("%+v", st)
	}
	if len(after) != 1 || after[0].DeletedTags != 1 {
		t.Errorf("AfterRun: %+v", after)
	}
	if _, err := svc.Wait(context.Background(), "nope"); !errors.Is(err, ErrUnknownRun) {
		t.Error(err)
	}

	// Read-only: a dry run only.
	ro := NewService(ctx, r, ServiceOptions{ReadOnly: true})
	if _, err := ro.Start(false); !errors.Is(err, ErrReadOnly) {
		t.Errorf("%v", err)
	}
	if id, err := ro.Start(true); err != nil {
		t.Error(err)
	} else if _, err := ro.Wait(context.Background(), id); err != nil {
		t.Error(err)
	}
}

func TestServiceSchedule(t *testing.T) {
	s := newStore(t)
	at := time.Now()
	s.tag("app", "old", s.image("app", "", "1").Digest, at.Add(-9*day), time.Time{})
	s.tag("app", "new", s.image("app", "", "2").Digest, at, time.Time{})
	r := s.runner(engine(t, policy("**", KeepRule{PushedWithin: day})), at)
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan Report, 10)
	svc := NewService(ctx, r, ServiceOptions{Interval: time.Millisecond, AfterRun: func(rep Report) { ran <- rep }})
	done := make(chan struct{})
	go func() { svc.Schedule(); close(done) }()
	select {
	case rep := <-ran:
		if rep.DeletedTags != 1 {
			t.Errorf("%s", summary(rep))
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no scheduled run")
	}
	// It keeps running (nothing left to delete) until the context ends.
	for len(svc.Status().Runs) < 3 {
		time.Sleep(time.Millisecond)
	}
	if svc.Status().Next.IsZero() {
		t.Error("no next run")
	}
	cancel()
	<-done
	// Without an interval, policies, or in read-only mode, there is no schedule.
	for _, o := range []ServiceOptions{{}, {Interval: time.Millisecond, ReadOnly: true}} {
		NewService(context.Background(), r, o).Schedule() // returns at once
	}
	empty, _ := Compile(Settings{Delay: day, MaxDeletionsPerRun: 1, MaxShare: 1})
	NewService(context.Background(), s.runner(empty, at), ServiceOptions{Interval: time.Millisecond}).Schedule()
}
