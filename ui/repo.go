package ui

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/registryd/registryd/api/admin"
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
	case sub == "delete":
		u.deleteRepository(w, r, v, repo)
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
	TagCount  int
	Size      *admin.Size // nil when unknown
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
	Size       int64 // the image's logical size; 0 unknown
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
	// The page from the admin API's service: digest, media and artifact
	// type, platforms, size, push and pull times (one implementation for
	// the UI, the API and the CLI).
	list, more, err := u.svc.Tags(ctx, repo.Name(), admin.TagQuery{N: n, Last: last, Sort: p.Sort})
	if err != nil {
		u.storageError(w, r, v, err)
		return
	}
	p.Refusal = v.deleteRefusal(repo.Name())
	p.CanDelete = p.Refusal == ""
	for _, tg := range list.Tags {
		row := &tagRow{Name: tg.Name, Digest: tg.Digest, MediaType: tg.MediaType, Platforms: tg.Platforms, Size: tg.Size,
			Kind: kindOfListed(tg.MediaType, tg.ArtifactType)}
		if k, subject, ok := tagKind(tg.Name); ok {
			row.Kind, row.Subject = k, subject
		}
		if tg.Pushed != nil {
			row.Pushed = *tg.Pushed
		}
		if tg.LastPulled != nil {
			row.LastPulled = *tg.LastPulled
		}
		p.Tags = append(p.Tags, row)
	}
	if rep, err := u.svc.Repository(ctx, repo.Name()); err == nil {
		p.TagCount, p.Size = rep.TagCount, rep.Size
	}
	p.Empty = len(list.Tags) == 0 && last == ""
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
	if more && len(list.Tags) > 0 {
		p.Next = pageURL(p.Sort, list.Tags[len(list.Tags)-1].Name)
	}
	if last != "" {
		p.First = pageURL(p.Sort, "")
	}
	u.render(w, r, v, http.StatusOK, "repository", p)
}

// kindOfListed tells a listed tag's kind from its media type and artifact
// type (for a manifest whose config is not an image's, the config's
// media type stands in for the artifact type).
func kindOfListed(mediaType, artifactType string) Kind {
	if isIndex(mediaType) {
		return kindOf(mediaType, artifactType, "")
	}
	if artifactType == "" {
		return kindImage
	}
	return kindOf(mediaType, artifactType, artifactType)
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
