package gc

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/registryd/registryd/storage/driver/inmemory"
)

// TestScheduler: scheduled runs happen every interval and when kicked;
// a run asked for while one is under way is busy; Status lists the runs
// from the store and says when one is under way.
func TestScheduler(t *testing.T) {
	d := inmemory.New()
	h := &Hooks{}
	col, err := NewCollector(d, OnlineOptions{Delay: MinDelay(testRmax, testSkew), StateMaxAge: testRmax, ClockSkew: testSkew,
		LeaseHeartbeat: time.Second, Hooks: h}, 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := NewScheduler(ctx, col, SchedulerOptions{Scheduled: true, Interval: time.Hour, FirstDelay: time.Hour})
	go s.Schedule()
	// Kicked: a run now, not in an hour.
	g := newGate()
	h.AfterMark = func(context.Context) { g.pause() }
	s.Kick(TriggerRetention)
	g.reached(t)
	st, err := s.Status(ctx)
	if err != nil || !st.Enabled || !st.Running || len(st.Runs) != 1 || st.Runs[0].Result != ResultRunning {
		t.Fatalf("status during a run: %+v, %v", st, err)
	}
	if _, err := s.Start(ctx, false); !errors.Is(err, ErrBusy) {
		t.Fatalf("start during a run: %v, want ErrBusy", err)
	}
	g.open()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err = s.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !st.Running && len(st.Runs) == 1 && st.Runs[0].Result == ResultOK && st.Runs[0].Trigger == TriggerRetention {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the kicked run did not end: %+v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st.Next.IsZero() || time.Until(st.Next) < 50*time.Minute {
		t.Fatalf("next run %s, want about an hour from now", st.Next)
	}
	// On demand: its own trigger, waited for by id.
	id, err := s.Start(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := s.Wait(ctx, id)
	if err != nil || rep.Trigger != TriggerDemand || !rep.DryRun || rep.Result != ResultOK {
		t.Fatalf("on demand: %+v, %v", rep, err)
	}
	if _, err := s.Wait(ctx, "no-such-run"); !errors.Is(err, ErrUnknownRun) {
		t.Fatalf("wait for an unknown run: %v", err)
	}
}
