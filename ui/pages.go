package ui

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

//go:embed templates
var templateFS embed.FS

// pageSet holds one parsed template per page, each with the layout and
// the shared partials.
type pageSet struct {
	pages map[string]*template.Template
}

// pageNames are the templates/<name>.html files that are whole pages.
var pageNames = []string{"catalog", "repository", "manifest", "login", "error", "confirm", "maintenance", "repodelete", "storage"}

func loadPages(funcs template.FuncMap) (*pageSet, error) {
	ps := &pageSet{pages: map[string]*template.Template{}}
	for _, name := range pageNames {
		t, err := template.New(name).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/partials.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("ui: template %s: %w", name, err)
		}
		ps.pages[name] = t
	}
	return ps, nil
}

// layout is what every page's template gets.
type layout struct {
	Base     string
	User     string
	AuthOn   bool
	CanLogin bool
	Version  string
	Title    string
	Nav      string
	Notice   string
	Admin    bool // may see maintenance
	Page     any
}

// render writes a page. Pages are rendered into a buffer first so that a
// template error becomes a clean 500, not half a page.
func (u *UI) render(w http.ResponseWriter, r *http.Request, v *viewer, status int, name string, page any) {
	t := u.pages.pages[name]
	l := &layout{Base: u.base, Version: u.opts.Version, Page: page, Notice: notice(r)}
	if v != nil {
		l.User, l.AuthOn = v.user, v.authOn
		l.CanLogin = v.authOn && u.users != nil
		l.Admin = !v.mustLogin && v.can(adminAccess)
	}
	if tp, ok := page.(interface{ title() string }); ok {
		l.Title = tp.title()
	}
	if np, ok := page.(interface{ nav() string }); ok {
		l.Nav = np.nav()
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", l); err != nil {
		u.log.WithError(err).WithField("page", name).Error("rendering a page")
		http.Error(w, "internal error rendering the page", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	// Pages show what this caller may see: never kept by shared caches,
	// and not shown from the back/forward cache after logging out.
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(buf.Bytes())
	}
}

type errorPage struct {
	Status  int
	Text    string
	Message string
	Login   bool
}

func (p *errorPage) title() string { return http.StatusText(p.Status) }

func (u *UI) errorPage(w http.ResponseWriter, r *http.Request, v *viewer, status int, msg string) {
	p := &errorPage{Status: status, Text: http.StatusText(status), Message: msg}
	if v != nil && v.authOn && v.user == "" && u.users != nil {
		p.Login = true
	}
	u.render(w, r, v, status, "error", p)
}

// notFound is the answer for what does not exist and for what the viewer
// may not see: the two must look the same.
func (u *UI) notFound(w http.ResponseWriter, r *http.Request, v *viewer) {
	u.errorPage(w, r, v, http.StatusNotFound, "There is nothing here, or you may not see it.")
}

// notice turns the ?done= code of a redirect after a change into the
// message shown on the next page. Codes, not text: a link cannot make
// this origin say whatever it likes.
func notice(r *http.Request) string {
	q := r.URL.Query()
	switch q.Get("done") {
	case "tags":
		n, _ := strconv.Atoi(q.Get("n"))
		if n == 1 {
			return "Deleted 1 tag."
		}
		return fmt.Sprintf("Deleted %d tags.", n)
	case "manifest":
		return "Deleted the manifest " + clipDigest(q.Get("digest")) + " and the tags that pointed at it."
	case "repository":
		return "Deleted the repository " + clipName(q.Get("name")) + "."
	case "repository-started":
		return "Deleting the repository " + clipName(q.Get("name")) + ": it is gone from the catalog; the rest of its data goes in the background."
	}
	return ""
}

func clipDigest(s string) string {
	if len(s) > 80 {
		s = s[:80]
	}
	return s
}

func clipName(s string) string {
	if len(s) > 256 {
		s = s[:256]
	}
	return s
}

func (u *UI) funcs() template.FuncMap {
	return template.FuncMap{
		"asset": func(name string) (string, error) { return u.assets.url(name) },
		"repoURL": func(name string) string {
			return u.base + "r/" + name
		},
		"tagURL": func(name, tag string) string {
			return u.base + "r/" + name + "/-/t/" + tag
		},
		"manifestURL": func(name, d string) string {
			return u.base + "r/" + name + "/-/m/" + d
		},
		"nsURL": func(ns string) string {
			if ns == "" {
				return u.base
			}
			return u.base + "?" + url.Values{"ns": {ns}}.Encode()
		},
		"short":   shortDigest,
		"bytes":   humanBytes,
		"time":    formatTime,
		"ago":     ago,
		"join":    strings.Join,
		"add":     func(a, b int) int { return a + b },
		"plural":  plural,
		"percent": func(part, whole int64) string { return fmt.Sprintf("%.1f", 100*float64(part)/float64(max(whole, 1))) },
	}
}

// shortDigest is "sha256:0123456789ab" for display; the full digest is
// always in a title attribute or a copy button beside it.
func shortDigest(d string) string {
	alg, hex, ok := strings.Cut(d, ":")
	if !ok || len(hex) <= 12 {
		return d
	}
	return alg + ":" + hex[:12]
}

func humanBytes(n int64) string {
	if n < 1024 {
		return strconv.FormatInt(n, 10) + " B"
	}
	units := []string{"KiB", "MiB", "GiB", "TiB", "PiB"}
	f := float64(n)
	i := -1
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	if f < 10 {
		return strconv.FormatFloat(f, 'f', 1, 64) + " " + units[i]
	}
	return strconv.FormatFloat(f, 'f', 0, 64) + " " + units[i]
}

func formatTime(t any) string {
	switch t := t.(type) {
	case time.Time:
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04 UTC")
	case *time.Time:
		if t == nil || t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04 UTC")
	}
	return ""
}

func ago(t any) string {
	var tt time.Time
	switch t := t.(type) {
	case time.Time:
		tt = t
	case *time.Time:
		if t != nil {
			tt = *t
		}
	}
	if tt.IsZero() {
		return ""
	}
	d := time.Since(tt)
	switch {
	case d < 0:
		return "in the future"
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return plural(int(d/time.Minute), "minute") + " ago"
	case d < 48*time.Hour:
		return plural(int(d/time.Hour), "hour") + " ago"
	case d < 60*24*time.Hour:
		return plural(int(d/(24*time.Hour)), "day") + " ago"
	case d < 2*365*24*time.Hour:
		return plural(int(d/(30*24*time.Hour)), "month") + " ago"
	}
	return plural(int(d/(365*24*time.Hour)), "year") + " ago"
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	if strings.HasSuffix(word, "y") && !strings.HasSuffix(word, "ey") {
		return strconv.Itoa(n) + " " + word[:len(word)-1] + "ies"
	}
	return strconv.Itoa(n) + " " + word + "s"
}
