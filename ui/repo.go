package ui

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/registryd/registryd/storage"
)

// maxConfigBytes bounds the image config read for a page.
const maxConfigBytes = 4 << 20

// repoRoute serves everything under r/NAME: the repository page, and after
// "/-/" (no repository name component can be "-") its manifests, tags and
// actions.
func (u *UI) repoRoute(w http.ResponseWriter, r *http.Request, v *viewer, rest string) {
	name, sub, _ := strings.Cut(rest, "/-/")
	repo, err := u.reg.Repository(name)
	if err != nil {
		u.notFound(w, r, v)
		return
	}
	if v.mustLogin {
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			u.redirectLogin(w, r)
		} else {
			u.errorPage(w, r, v, http.StatusUnauthorized, "Your session has ended: log in again.")
		}
		return
	}
	if !v.canPull(name) {
		u.notFound(w, r, v)
		return
	}
	switch {
	case sub == "":
		u.get(w, r, v, func(w http.ResponseWriter, r *http.Request, v *viewer) { u.repository(w, r, v, repo) })
	case strings.HasPrefix(sub, "t/"):
		tag := sub[2:]
		u.get(w, r, v, func(w http.ResponseWriter, r *http.Request, v *viewer) { u.manifest(w, r, v, repo, tag) })
	case strings.HasPrefix(sub, "m/"):
		ref, action, _ := strings.Cut(sub[2:], "/")
		d, err := digest.Parse(ref)
		if err != nil {
			u.notFound(w, r, v)
			return
		}
		switch action {
		case "":
			u.get(w, r, v, func(w http.ResponseWriter, r *http.Request, v *viewer) { u.manifest(w, r, v, repo, d.String()) })
		case "delete":
			u.deleteManifest(w, r, v, repo, d)
		default:
			u.notFound(w, r, v)
		}
	case sub == "tags/delete":
		u.deleteTags(w, r, v, repo)
	default:
		u.notFound(w, r, v)
	}
}

type repoPage struct {
	Name      string
	Crumbs    []crumb
	Tags      []*tagRow
	Sort      string // "name" or "pushed"
	ByName    string // URLs of the two orders
	ByPushed  string
	Next      string
	First     string
	CanDelete bool
	Refusal   string
	Empty     bool
	PullTimes bool
}

func (p *repoPage) title() string { return p.Name }
func (p *repoPage) nav() string   { return "catalog" }

// tagRow is one tag as the repository page lists it.
type tagRow struct {
	Name       string
	Digest     string
	MediaType  string
	Kind       Kind
	Platforms  []string
	Pushed     time.Time
	LastPulled time.Time
	// Subject is the digest a cosign-named tag (sha256-….sig) is about.
	Subject string
	Err     string
}

// repository lists a page of the repository's tags, by name or newest
// push first, with what each points at (kind, platforms) and when it was
// pushed and last pulled (storage.TagInfo: the registry's own records).
func (u *UI) repository(w http.ResponseWriter, r *http.Request, v *viewer, repo *storage.Repository) {
	ctx, cancel := pageCtx(r)
	defer cancel()
	n := pageSize(r)
	q := r.URL.Query()
	last := q.Get("last")
	if last != "" && !storage.ValidTag(last) {
		last = ""
	}
	p := &repoPage{Name: repo.Name(), Crumbs: crumbsOf(repo.Name()), Sort: "name", PullTimes: u.reg.PullTimesEnabled()}
	if q.Get("sort") == "pushed" {
		p.Sort = "pushed"
	}
	var infos []storage.TagInfo
	var more bool
	var err error
	if p.Sort == "pushed" {
		infos, more, err = tagsByPush(ctx, repo, last, n)
	} else {
		infos, more, err = repo.TagInfosPage(ctx, last, n)
	}
	if err != nil {
		u.storageError(w, r, v, err)
		return
	}
	p.Refusal = v.deleteRefusal(repo.Name())
	p.CanDelete = p.Refusal == ""
	for _, ti := range infos {
		row := u.describeTag(ctx, repo, ti.Name, ti.Digest)
		row.Pushed, row.LastPulled = ti.Pushed, ti.LastPulled
		p.Tags = append(p.Tags, row)
	}
	p.Empty = len(infos) == 0 && last == ""
	base := u.base + "r/" + repo.Name()
	pageURL := func(sort, last string) string {
		vals := url.Values{}
		if sort == "pushed" {
			vals.Set("sort", "pushed")
		}
		if last != "" {
			vals.Set("last", last)
		}
		if n != defaultPageSize {
			vals.Set("n", strconv.Itoa(n))
		}
		if len(vals) == 0 {
			return base
		}
		return base + "?" + vals.Encode()
	}
	p.ByName, p.ByPushed = pageURL("name", ""), pageURL("pushed", "")
	if more && len(infos) > 0 {
		p.Next = pageURL(p.Sort, infos[len(infos)-1].Name)
	}
	if last != "" {
		p.First = pageURL(p.Sort, "")
	}
	u.render(w, r, v, http.StatusOK, "repository", p)
}

// tagsByPush is a page of the tags newest push first (ties by name), after
// the tag last of the previous page. Ordering by time needs every tag's
// time: it costs the whole tag list, where the name order costs a page.
func tagsByPush(ctx context.Context, repo *storage.Repository, last string, n int) ([]storage.TagInfo, bool, error) {
	all, err := repo.TagInfos(ctx)
	if err != nil {
		return nil, false, err
	}
	sort.SliceStable(all, func(i, j int) bool {
		if !all[i].Pushed.Equal(all[j].Pushed) {
			return all[i].Pushed.After(all[j].Pushed)
		}
		return all[i].Name < all[j].Name
	})
	start := 0
	if last != "" {
		for i, ti := range all {
			if ti.Name == last {
				start = i + 1
				break
			}
		}
	}
	all = all[start:]
	if len(all) > n {
		return all[:n], true, nil
	}
	return all, false, nil
}

// describeTag reads what tag points at (d, from its TagInfo): kind and
// platforms.
func (u *UI) describeTag(ctx context.Context, repo *storage.Repository, tag string, d digest.Digest) *tagRow {
	row := &tagRow{Name: tag}
	if k, subject, ok := tagKind(tag); ok {
		row.Kind, row.Subject = k, subject
	}
	m, err := repo.GetManifest(ctx, d.String())
	if err != nil {
		row.Err = "points at a manifest that is not in the repository"
		return row
	}
	row.Digest, row.MediaType = m.Digest.String(), m.MediaType
	pm, err := parseManifest(m.Content, m.MediaType)
	if err != nil {
		row.Err = "unreadable manifest"
		return row
	}
	if row.Subject == "" {
		row.Kind = pm.kind()
	}
	if isIndex(pm.MediaType) {
		for _, d := range pm.Manifests {
			if isAttestationEntry(d) {
				continue
			}
			if s := platformString(d.Platform); s != "" {
				row.Platforms = append(row.Platforms, s)
			}
		}
		return row
	}
	if row.Kind == kindImage && pm.Config != nil {
		if cfg, _, err := u.readConfig(ctx, repo, pm.Config.Digest); err == nil {
			if s := platformString(&cfg.Platform); s != "" {
				row.Platforms = []string{s}
			}
		}
	}
	return row
}

// readConfig reads and parses an image config blob of repo; the raw bytes
// come along for the page's JSON view.
func (u *UI) readConfig(ctx context.Context, repo *storage.Repository, d digest.Digest) (*ocispec.Image, []byte, error) {
	rc, _, err := repo.OpenBlob(ctx, d, 0)
	if err != nil {
		return nil, nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxConfigBytes+1))
	if err != nil {
		return nil, nil, err
	}
	if len(b) > maxConfigBytes {
		return nil, nil, errTooLarge
	}
	var img ocispec.Image
	if err := json.Unmarshal(b, &img); err != nil {
		return nil, b, err
	}
	return &img, b, nil
}

type uiError string

func (e uiError) Error() string { return string(e) }

const errTooLarge = uiError("the config is larger than the UI reads")
