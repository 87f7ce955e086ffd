package main

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// metric is one line of the result table: samples per server (one per
// repetition), reported as the median.
type metric struct {
	Name   string
	Unit   string
	Higher bool                 // higher is better (throughput), else lower (time, latency, memory)
	Vals   map[string][]float64 // server name -> samples
	Limit  float64              // physical limit in Unit, 0 when none
	// Target, when set, is met when ratio (registryd / best reference, the
	// best being the highest or lowest) is at least (Higher) or at most
	// (!Higher) TargetRatio, or, with TargetAbs set, when registryd's own
	// figure is at most TargetAbs.
	TargetRatio float64
	TargetAbs   float64
	// LimitRatio, when set, is a target against the limit instead: met
	// when registryd's figure is at least LimitRatio times Limit.
	LimitRatio float64
	Note       string
	// Unlike holds the servers whose figure measures something else (a
	// "walk" answered in one page, ignoring n), with why: they are shown,
	// marked, and left out of the best reference.
	Unlike map[string]string
	// Text, when set, makes the row one of words per server (what each
	// figure buys), without ratio or target.
	Text map[string]string
}

// unlike marks server's figures as not comparable, for why.
func (m *metric) unlike(server, why string) {
	if m.Unlike == nil {
		m.Unlike = map[string]string{}
	}
	m.Unlike[server] = why
}

func (m *metric) add(server string, v float64) {
	if m.Vals == nil {
		m.Vals = map[string][]float64{}
	}
	m.Vals[server] = append(m.Vals[server], v)
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// ratio is registryd's median over the best reference's median.
func (m *metric) ratio(subject string, refs []string) float64 {
	reg := median(m.Vals[subject])
	best := math.NaN()
	for _, r := range refs {
		v := median(m.Vals[r])
		if math.IsNaN(v) || m.Unlike[r] != "" {
			continue
		}
		if math.IsNaN(best) || (m.Higher && v > best) || (!m.Higher && v < best) {
			best = v
		}
	}
	if math.IsNaN(reg) || math.IsNaN(best) || best == 0 {
		return math.NaN()
	}
	return reg / best
}

// verdict is "pass", "FAIL" or "" (no target).
func (m *metric) verdict(subject string, refs []string) string {
	reg := median(m.Vals[subject])
	switch {
	case m.LimitRatio > 0:
		if math.IsNaN(reg) || m.Limit <= 0 {
			return "?"
		}
		if reg >= m.LimitRatio*m.Limit {
			return "pass"
		}
		return "FAIL"
	case m.TargetAbs > 0:
		if math.IsNaN(reg) {
			return "?"
		}
		if reg <= m.TargetAbs {
			return "pass"
		}
		return "FAIL"
	case m.TargetRatio > 0:
		r := m.ratio(subject, refs)
		if math.IsNaN(r) {
			return "?"
		}
		if (m.Higher && r >= m.TargetRatio) || (!m.Higher && r <= m.TargetRatio) {
			return "pass"
		}
		return "FAIL"
	}
	return ""
}

func (m *metric) target() string {
	switch {
	case m.LimitRatio > 0:
		return "≥ " + num(m.LimitRatio) + "× limit"
	case m.TargetAbs > 0:
		return "≤ " + num(m.TargetAbs) + " " + m.Unit
	case m.TargetRatio > 0 && m.Higher:
		return "≥ " + num(m.TargetRatio) + "×"
	case m.TargetRatio > 0:
		return "≤ " + num(m.TargetRatio) + "×"
	}
	return ""
}

// num formats a figure with about three significant digits.
func num(v float64) string {
	a := math.Abs(v)
	switch {
	case math.IsNaN(v):
		return "–"
	case a == 0:
		return "0"
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3g", v)
	}
}

// formatTable renders the metrics as a Markdown table: one column per server
// (medians), the ratio subject / best reference, the physical limit and the
// target with its verdict. extras are more columns (builds of the subject
// in an A/B run), after the references and outside the ratio.
func formatTable(ms []*metric, subject string, refs, extras []string) string {
	header := []string{"workload", "unit", subject}
	header = append(header, refs...)
	header = append(header, extras...)
	header = append(header, subject+" / best ref", "limit", "target")
	rows := [][]string{header}
	for _, m := range ms {
		if m.Text != nil {
			r := []string{m.Name, m.Unit, m.Text[subject]}
			for _, c := range append(append([]string{}, refs...), extras...) {
				r = append(r, m.Text[c])
			}
			rows = append(rows, append(r, "", "", ""))
			continue
		}
		r := []string{m.Name, m.Unit, num(median(m.Vals[subject]))}
		var notes []string
		for _, ref := range refs {
			cell := num(median(m.Vals[ref]))
			if why := m.Unlike[ref]; why != "" {
				cell += " *"
				notes = append(notes, "* "+ref+": "+why+", not in the ratio")
			}
			r = append(r, cell)
		}
		for _, e := range extras {
			r = append(r, num(median(m.Vals[e])))
		}
		ratio := m.ratio(subject, refs)
		rs := "–"
		if !math.IsNaN(ratio) {
			rs = num(ratio) + "×"
		}
		lim := ""
		if m.Limit > 0 {
			lim = num(m.Limit)
		}
		tg := m.target()
		if v := m.verdict(subject, refs); v != "" {
			tg += " " + v
		}
		if m.Note != "" {
			notes = append([]string{m.Note}, notes...)
		}
		if len(notes) > 0 {
			tg = strings.TrimSpace(tg + " (" + strings.Join(notes, "; ") + ")")
		}
		r = append(r, rs, lim, tg)
		rows = append(rows, r)
	}
	return renderTable(rows, 2, len(header)-1)
}

// formatCompare renders metrics as a Markdown table without limits and
// targets: one column per server in refs (medians; "n/a" for a server that
// has no samples and a reason in na), subject / best reference, then extra
// columns shown for comparison only (not part of the ratio).
func formatCompare(ms []*metric, subject string, refs, extras []string, na map[string]string) string {
	header := []string{"workload", "unit", subject}
	header = append(header, refs...)
	header = append(header, subject+" / best ref")
	header = append(header, extras...)
	cell := func(m *metric, server string) string {
		if len(m.Vals[server]) == 0 && na[server] != "" {
			return "n/a"
		}
		return num(median(m.Vals[server]))
	}
	rows := [][]string{header}
	for _, m := range ms {
		r := []string{m.Name, m.Unit, cell(m, subject)}
		for _, ref := range refs {
			r = append(r, cell(m, ref))
		}
		rs := "–"
		if ratio := m.ratio(subject, refs); !math.IsNaN(ratio) {
			rs = num(ratio) + "×"
		}
		r = append(r, rs)
		for _, e := range extras {
			r = append(r, cell(m, e))
		}
		rows = append(rows, r)
	}
	return renderTable(rows, 2, len(header))
}

// renderTable aligns rows (the first is the header) as Markdown, columns
// [right, end) right-aligned.
func renderTable(rows [][]string, right, end int) string {
	header := rows[0]
	widths := make([]int, len(header))
	for _, r := range rows {
		for i, c := range r {
			widths[i] = max(widths[i], len([]rune(c)))
		}
	}
	var b strings.Builder
	line := func(r []string) {
		b.WriteString("|")
		for i, c := range r {
			pad := widths[i] - len([]rune(c))
			if i >= right && i < end { // figures right-aligned
				b.WriteString(" " + strings.Repeat(" ", pad) + c + " |")
			} else {
				b.WriteString(" " + c + strings.Repeat(" ", pad) + " |")
			}
		}
		b.WriteString("\n")
	}
	line(rows[0])
	sep := make([]string, len(header))
	for i := range sep {
		sep[i] = strings.Repeat("-", widths[i])
		if i >= right && i < end {
			sep[i] = strings.Repeat("-", widths[i]-1) + ":"
		}
	}
	line(sep)
	for _, r := range rows[1:] {
		line(r)
	}
	return b.String()
}

// formatTableWith renders metrics as formatTable does, but with the limit
// taken from the samples of the column limit (a reference measured in the
// same run, such as the object store's own rate), the ratio of registryd
// to it, "n/a" for a server without samples and a reason in na, and extra
// columns shown for comparison only.
func formatTableWith(ms []*metric, subject string, refs []string, limit string, extras []string, na map[string]string) string {
	header := []string{"workload", "unit", subject}
	header = append(header, refs...)
	header = append(header, subject+" / best ref", limit, subject+" / limit", "target")
	header = append(header, extras...)
	cell := func(m *metric, server string) string {
		if len(m.Vals[server]) == 0 && na[server] != "" {
			return "n/a"
		}
		return num(median(m.Vals[server]))
	}
	rows := [][]string{header}
	for _, m := range ms {
		if v := median(m.Vals[limit]); !math.IsNaN(v) {
			m.Limit = v
		}
		r := []string{m.Name, m.Unit, cell(m, subject)}
		var notes []string
		for _, ref := range refs {
			c := cell(m, ref)
			if why := m.Unlike[ref]; why != "" {
				c += " *"
				notes = append(notes, "* "+ref+": "+why+", not in the ratio")
			}
			r = append(r, c)
		}
		rs := "–"
		if ratio := m.ratio(subject, refs); !math.IsNaN(ratio) {
			rs = num(ratio) + "×"
		}
		lim, lr := "", ""
		if m.Limit > 0 {
			lim = num(m.Limit)
			if reg := median(m.Vals[subject]); !math.IsNaN(reg) {
				lr = num(reg/m.Limit) + "×"
			}
		}
		tg := m.target()
		if v := m.verdict(subject, refs); v != "" {
			tg += " " + v
		}
		if m.Note != "" {
			notes = append([]string{m.Note}, notes...)
		}
		if len(notes) > 0 {
			tg = strings.TrimSpace(tg + " (" + strings.Join(notes, "; ") + ")")
		}
		r = append(r, rs, lim, lr, tg)
		for _, e := range extras {
			r = append(r, cell(m, e))
		}
		rows = append(rows, r)
	}
	return renderTable(rows, 2, len(header))
}
