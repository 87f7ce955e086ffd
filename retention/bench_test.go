package retention

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkDecide is the engine alone on one repository of 10000 tags
// (100 manifests, so siblings abound) with every kind of rule.
func BenchmarkDecide(b *testing.B) {
	e, err := Compile(Settings{Delay: day, MaxDeletionsPerRun: 1 << 30, MaxShare: 1, Policies: []Policy{{
		Repositories: []string{"**"}, DeleteUntagged: true,
		KeepTags: []KeepRule{{Patterns: []string{"^v[0-9]"}}, {MostRecentlyPushedCount: 50},
			{MostRecentlyPulledCount: 50}, {PushedWithin: 30 * day}, {Patterns: []string{"^pr-"}, PulledWithin: 7 * day}},
	}}})
	if err != nil {
		b.Fatal(err)
	}
	repo := Repository{Name: "r"}
	for i := 0; i < 100; i++ {
		repo.Manifests = append(repo.Manifests, Manifest{Digest: dg(fmt.Sprint(i)), Since: ago(time.Duration(i) * day)})
	}
	for i := 0; i < 10000; i++ {
		name := []string{"v", "pr-", "build-", "x"}[i%4] + fmt.Sprint(i)
		repo.Tags = append(repo.Tags, tag(name, fmt.Sprint(i%100), time.Duration(i)*time.Hour, time.Duration(i%500)*time.Hour))
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e.Decide(repo, now)
	}
}

// BenchmarkRunDryRun is a whole dry run over the in-memory driver: 100
// repositories of 20 tags, times read through the runner's tag source.
func BenchmarkRunDryRun(b *testing.B) {
	s := newStore(b)
	at := time.Now()
	for r := 0; r < 100; r++ {
		repo := fmt.Sprintf("team/app-%d", r)
		for i := 0; i < 20; i++ {
			s.tag(repo, fmt.Sprintf("build-%d", i), s.image(repo, "", "L1").Digest, at.Add(-time.Duration(i)*day), time.Time{})
		}
	}
	e, err := Compile(Settings{Delay: day, MaxDeletionsPerRun: 1 << 30, MaxShare: 1, Policies: []Policy{{
		Repositories: []string{"**"}, DeleteUntagged: true, KeepTags: []KeepRule{{MostRecentlyPushedCount: 5}},
	}}})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rep, err := s.runner(e, at).Run(context.Background(), true)
		if err != nil || rep.DeletedTags != 1500 {
			b.Fatalf("%v %s", err, summary(rep))
		}
	}
}
