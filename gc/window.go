package gc

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Window is a daily time window, "HH:MM-HH:MM" in the local time zone of
// the registry (TZ; UTC in the official container image). A window whose
// end is before its start spans midnight ("22:00-04:00"); equal ends are
// the whole day.
type Window struct {
	start, end int // minutes after midnight
	loc        *time.Location
}

// ParseWindow parses "HH:MM-HH:MM"; "" is no window (nil).
func ParseWindow(s string) (*Window, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return nil, fmt.Errorf("window %q: want HH:MM-HH:MM", s)
	}
	start, err := parseClock(a)
	if err != nil {
		return nil, fmt.Errorf("window %q: %v", s, err)
	}
	end, err := parseClock(b)
	if err != nil {
		return nil, fmt.Errorf("window %q: %v", s, err)
	}
	return &Window{start: start, end: end, loc: time.Local}, nil
}

func parseClock(s string) (int, error) {
	h, m, ok := strings.Cut(strings.TrimSpace(s), ":")
	if !ok || len(h) == 0 || len(h) > 2 || len(m) != 2 {
		return 0, fmt.Errorf("%q is not HH:MM", s)
	}
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if err1 != nil || err2 != nil || hh < 0 || hh > 23 || mm < 0 || mm > 59 {
		return 0, fmt.Errorf("%q is not HH:MM", s)
	}
	return hh*60 + mm, nil
}

// In returns the window in another time zone (tests).
func (w *Window) In(loc *time.Location) *Window {
	c := *w
	c.loc = loc
	return &c
}

func (w *Window) minute(t time.Time) int {
	t = t.In(w.loc)
	return t.Hour()*60 + t.Minute()
}

// Contains reports whether t is inside the window.
func (w *Window) Contains(t time.Time) bool {
	if w == nil || w.start == w.end {
		return true
	}
	m := w.minute(t)
	if w.start < w.end {
		return m >= w.start && m < w.end
	}
	return m >= w.start || m < w.end
}

// Next returns t if it is inside the window, else when the window next
// opens.
func (w *Window) Next(t time.Time) time.Time {
	if w.Contains(t) {
		return t
	}
	lt := t.In(w.loc)
	open := time.Date(lt.Year(), lt.Month(), lt.Day(), w.start/60, w.start%60, 0, 0, w.loc)
	if !open.After(t) {
		open = open.AddDate(0, 0, 1)
	}
	return open
}

func (w *Window) String() string {
	if w == nil {
		return ""
	}
	return fmt.Sprintf("%02d:%02d-%02d:%02d", w.start/60, w.start%60, w.end/60, w.end%60)
}
