package gc

import (
	"testing"
	"time"
)

func TestWindow(t *testing.T) {
	at := func(h, m int) time.Time { return time.Date(2026, 3, 10, h, m, 0, 0, time.UTC) }
	for _, c := range []struct {
		spec string
		t    time.Time
		in   bool
		next time.Time
	}{
		{"01:00-05:00", at(0, 59), false, at(1, 0)},
		{"01:00-05:00", at(1, 0), true, at(1, 0)},
		{"01:00-05:00", at(4, 59), true, at(4, 59)},
		{"01:00-05:00", at(5, 0), false, at(1, 0).AddDate(0, 0, 1)},
		{"22:00-04:30", at(23, 0), true, at(23, 0)},
		{"22:00-04:30", at(3, 0), true, at(3, 0)},
		{"22:00-04:30", at(12, 0), false, at(22, 0)},
		{"22:00-04:30", at(4, 30), false, at(22, 0)},
		{"00:00-00:00", at(12, 0), true, at(12, 0)},
		{"9:30-10:00", at(9, 45), true, at(9, 45)},
	} {
		w, err := ParseWindow(c.spec)
		if err != nil {
			t.Fatalf("%s: %v", c.spec, err)
		}
		w = w.In(time.UTC)
		if got := w.Contains(c.t); got != c.in {
			t.Errorf("%s contains %s: %v, want %v", c.spec, c.t.Format("15:04"), got, c.in)
		}
		if got := w.Next(c.t); !got.Equal(c.next) {
			t.Errorf("%s next after %s: %s, want %s", c.spec, c.t.Format("15:04"), got, c.next)
		}
	}
	if w, err := ParseWindow(""); w != nil || err != nil {
		t.Errorf("empty window: %v %v", w, err)
	}
	for _, bad := range []string{"22:00", "25:00-01:00", "1-2", "10:00-10:7", "ab:cd-01:00"} {
		if _, err := ParseWindow(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}
