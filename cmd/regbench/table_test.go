package main

import (
	"errors"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	if got := median([]float64{3, 1, 2}); got != 2 {
		t.Fatalf("median odd = %v", got)
	}
	if got := median([]float64{4, 1, 2, 3}); got != 2.5 {
		t.Fatalf("median even = %v", got)
	}
}

func TestFormatTable(t *testing.T) {
	push := &metric{Name: "push", Unit: "MB/s", Higher: true, Limit: 900, TargetRatio: 1.3}
	for _, v := range []float64{300, 310, 290} {
		push.add("registryd", v)
	}
	push.add("ref", 200)
	push.add("v3", 250)
	p99 := &metric{Name: "p99", Unit: "ms", TargetRatio: 0.5}
	p99.add("registryd", 2)
	p99.add("ref", 3)
	p99.add("v3", 5)
	rss := &metric{Name: "rss", Unit: "MiB", TargetAbs: 32}
	rss.add("registryd", 20)
	got := formatTable([]*metric{push, p99, rss}, "registryd", []string{"ref", "v3"}, nil)
	lines := strings.Split(strings.TrimSpace(got), "\n")
	if len(lines) != 5 {
		t.Fatalf("got %d lines:\n%s", len(lines), got)
	}
	for i, want := range [][]string{
		{"workload", "registryd / best ref", "limit", "target"},
		{"---"},
		{"| push ", " 300 ", " 200 ", " 250 ", " 1.20× ", " 900 ", "≥ 1.30× FAIL"},
		{"| p99 ", " 0.667× ", "≤ 0.5× FAIL"},
		{"| rss ", " 20.0 ", " – ", "≤ 32.0 MiB pass"},
	} {
		for _, w := range want {
			if !strings.Contains(lines[i], w) {
				t.Errorf("line %d %q lacks %q", i, lines[i], w)
			}
		}
	}
	// Columns line up.
	for _, l := range lines[1:] {
		if len([]rune(l)) != len([]rune(lines[0])) {
			t.Errorf("ragged table:\n%s", got)
			break
		}
	}
}

// TestUnlike: a server whose figure measures something else is shown
// marked, explained, and left out of the best reference.
func TestUnlike(t *testing.T) {
	walk := &metric{Name: "tags walk", Unit: "s", TargetRatio: 0.1}
	walk.add("registryd", 0.02)
	walk.add("ref", 0.008)
	walk.add("v3", 0.6)
	if r := walk.ratio("registryd", []string{"ref", "v3"}); math.Abs(r-2.5) > 1e-9 {
		t.Fatalf("ratio before marking %v, want 2.5 (against ref)", r)
	}
	walk.unlike("ref", "answers the walk in one page, ignoring n")
	if r := walk.ratio("registryd", []string{"ref", "v3"}); math.Abs(r-0.02/0.6) > 1e-9 {
		t.Errorf("ratio %v, want %v (against v3 alone)", r, 0.02/0.6)
	}
	if v := walk.verdict("registryd", []string{"ref", "v3"}); v != "pass" {
		t.Errorf("verdict %q, want pass", v)
	}
	got := formatTable([]*metric{walk}, "registryd", []string{"ref", "v3"}, nil)
	for _, w := range []string{" 0.008 * ", "0.0333×", "* ref: answers the walk in one page, ignoring n, not in the ratio"} {
		if !strings.Contains(got, w) {
			t.Errorf("table lacks %q:\n%s", w, got)
		}
	}
	// Everyone marked: no ratio, no verdict either way.
	walk.unlike("v3", "x")
	if v := walk.verdict("registryd", []string{"ref", "v3"}); v != "?" {
		t.Errorf("verdict with no comparable reference %q, want ?", v)
	}
}

// TestUntilDeadline: every client runs until the deadline, numbering its
// calls from 0; the first failure stops that client and is returned.
func TestUntilDeadline(t *testing.T) {
	var mu sync.Mutex
	calls := map[int][]int{}
	el, err := untilDeadline(3, 30*time.Millisecond, func(c, i int) error {
		mu.Lock()
		calls[c] = append(calls[c], i)
		mu.Unlock()
		time.Sleep(time.Millisecond)
		return nil
	})
	if err != nil || el < 30*time.Millisecond {
		t.Fatalf("took %v, error %v", el, err)
	}
	for c := range 3 {
		if len(calls[c]) == 0 || calls[c][0] != 0 || calls[c][len(calls[c])-1] != len(calls[c])-1 {
			t.Errorf("client %d calls %v", c, calls[c])
		}
	}
	boom := errors.New("boom")
	var after atomic.Int64
	_, err = untilDeadline(2, time.Hour, func(c, i int) error {
		if i == 2 {
			return boom
		}
		if i > 2 {
			after.Add(1)
		}
		return nil
	})
	if err != boom || after.Load() != 0 {
		t.Errorf("error %v, %d calls after the failure", err, after.Load())
	}
}
