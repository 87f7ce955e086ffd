package auth_test

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/registryd/registryd/auth"
)

// htpasswdRegistry serves the API with Basic auth for alice (who may do
// anything on team-a), bob (pull only on team-a), root (everything) and
// anonymous pulls of public/**.
func htpasswdRegistry(t *testing.T) *testRegistry {
	t.Helper()
	dir := t.TempDir()
	return newRegistry(t, auth.Config{
		Htpasswd: &auth.HtpasswdConfig{Realm: "test-realm", Path: writeHtpasswd(t, dir, map[string]string{
			"alice": "alice-pw", "bob": "bob-pw", "root": "root-pw",
		})},
		Access: &auth.AccessConfig{
			Groups: map[string][]string{"admins": {"root"}},
			Rules: []auth.Rule{
				{Repositories: []string{"team-a/**"}, Users: []string{"alice"}, Actions: []string{"*"}},
				{Repositories: []string{"team-a/**"}, Users: []string{"bob"}, Actions: []string{"pull"}},
				{Repositories: []string{"**"}, Groups: []string{"admins"}, Actions: []string{"pull", "push", "delete"}},
			},
			Anonymous: []auth.AnonymousRule{{Repositories: []string{"public/**"}, Actions: []string{"pull"}}},
		},
	})
}

const basicChallenge = `Basic realm="test-realm"`

func TestBasicBaseEndpoint(t *testing.T) {
	tr := htpasswdRegistry(t)
	tests := []struct {
		name    string
		headers []string
		status  int
	}{
		{"no credentials", nil, http.StatusUnauthorized},
		{"good credentials", []string{"Authorization", basic("alice", "alice-pw")}, http.StatusOK},
		{"wrong password", []string{"Authorization", basic("alice", "nope")}, http.StatusUnauthorized},
		{"unknown user", []string{"Authorization", basic("mallory", "alice-pw")}, http.StatusUnauthorized},
		{"another user's password", []string{"Authorization", basic("bob", "alice-pw")}, http.StatusUnauthorized},
		{"bad base64", []string{"Authorization", "Basic %%%"}, http.StatusUnauthorized},
		{"no colon", []string{"Authorization", "Basic " + base64.StdEncoding.EncodeToString([]byte("alice"))}, http.StatusUnauthorized},
		{"empty user", []string{"Authorization", basic("", "alice-pw")}, http.StatusUnauthorized},
		{"scheme only", []string{"Authorization", "Basic"}, http.StatusUnauthorized},
		{"oversized", []string{"Authorization", basic("alice", strings.Repeat("x", 9<<10))}, http.StatusUnauthorized},
		{"two headers", []string{"Authorization", basic("alice", "alice-pw"), "Authorization", basic("bob", "bob-pw")}, http.StatusUnauthorized},
		{"bearer to a basic registry", []string{"Authorization", "Bearer a.b.c"}, http.StatusUnauthorized},
		{"binary junk", []string{"Authorization", "Basic " + base64.StdEncoding.EncodeToString([]byte{0xff, 0, ':', 1})}, http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, method := range []string{http.MethodGet, http.MethodHead} {
				r := tr.do(method, "/v2/", nil, tt.headers...)
				if r.status != tt.status {
					t.Fatalf("%s /v2/: %v, want %d", method, r, tt.status)
				}
				if tt.status == http.StatusUnauthorized {
					if got := r.header.Get("WWW-Authenticate"); got != basicChallenge {
						t.Errorf("challenge %q, want %q", got, basicChallenge)
					}
					if method == http.MethodGet && r.errCode() != "UNAUTHORIZED" {
						t.Errorf("body %s, want UNAUTHORIZED", r.body)
					}
				}
			}
		})
	}
}

func TestBasicRules(t *testing.T) {
	tr := htpasswdRegistry(t)
	root := basic("root", "root-pw")
	for _, repo := range []string{"team-a/app", "team-b/app", "public/base"} {
		if r := tr.push(repo, "v1", root); r.status != http.StatusCreated {
			t.Fatalf("seeding %s: %v", repo, r)
		}
	}
	alice, bob := basic("alice", "alice-pw"), basic("bob", "bob-pw")
	tests := []struct {
		name      string
		method    string
		path      string
		authz     string
		status    int
		code      string
		challenge bool
	}{
		{"alice pulls team-a", http.MethodGet, "/v2/team-a/app/manifests/v1", alice, 200, "", false},
		{"alice lists tags", http.MethodGet, "/v2/team-a/app/tags/list", alice, 200, "", false},
		{"alice cannot pull team-b", http.MethodGet, "/v2/team-b/app/manifests/v1", alice, 403, "DENIED", false},
		{"bob pulls team-a", http.MethodGet, "/v2/team-a/app/manifests/v1", bob, 200, "", false},
		{"bob cannot start a push", http.MethodPost, "/v2/team-a/app/blobs/uploads/", bob, 403, "DENIED", false},
		{"bob cannot put a manifest", http.MethodPut, "/v2/team-a/app/manifests/v2", bob, 403, "DENIED", false},
		{"bob cannot delete", http.MethodDelete, "/v2/team-a/app/manifests/v1", bob, 403, "DENIED", false},
		{"anonymous pulls public", http.MethodGet, "/v2/public/base/manifests/v1", "", 200, "", false},
		{"anonymous HEADs public", http.MethodHead, "/v2/public/base/manifests/v1", "", 200, "", false},
		{"anonymous cannot push public", http.MethodPost, "/v2/public/base/blobs/uploads/", "", 401, "UNAUTHORIZED", true},
		{"anonymous cannot delete public", http.MethodDelete, "/v2/public/base/manifests/v1", "", 401, "UNAUTHORIZED", true},
		{"anonymous cannot pull team-a", http.MethodGet, "/v2/team-a/app/manifests/v1", "", 401, "UNAUTHORIZED", true},
		{"bob pulls public too", http.MethodGet, "/v2/public/base/manifests/v1", bob, 200, "", false},
		{"wrong password is not anonymous", http.MethodGet, "/v2/public/base/manifests/v1", basic("bob", "x"), 401, "UNAUTHORIZED", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tr.do(tt.method, tt.path, nil, "Authorization", tt.authz)
			if r.status != tt.status {
				t.Fatalf("%v, want %d", r, tt.status)
			}
			if tt.method != http.MethodHead && r.errCode() != tt.code {
				t.Errorf("code %q, want %q", r.errCode(), tt.code)
			}
			if got := r.header.Get("WWW-Authenticate"); (got == basicChallenge) != tt.challenge {
				t.Errorf("WWW-Authenticate %q, challenge expected: %v", got, tt.challenge)
			}
		})
	}

	// Alice's own push and delete, through the whole upload flow.
	if r := tr.push("team-a/new", "v1", alice); r.status != http.StatusCreated {
		t.Fatalf("alice push: %v", r)
	}
	if r := tr.push("team-b/new", "v1", alice); r.status != http.StatusForbidden {
		t.Fatalf("alice push to team-b: %v", r)
	}
	if r := tr.do(http.MethodDelete, "/v2/team-a/new/manifests/v1", nil, "Authorization", alice); r.status != http.StatusAccepted {
		t.Fatalf("alice delete: %v", r)
	}
}

func TestBasicDeniedDetailNamesTheMissingAccess(t *testing.T) {
	tr := htpasswdRegistry(t)
	r := tr.do(http.MethodPost, "/v2/team-a/app/blobs/uploads/", nil, "Authorization", basic("bob", "bob-pw"))
	if r.status != http.StatusForbidden {
		t.Fatal(r)
	}
	want := `"detail":[{"Type":"repository","Name":"team-a/app","Action":"push"}]`
	if !strings.Contains(string(r.body), want) {
		t.Errorf("body %s lacks %s", r.body, want)
	}
}

func TestBasicWithoutRulesAllowsEveryAuthenticatedUser(t *testing.T) {
	dir := t.TempDir()
	tr := newRegistry(t, auth.Config{Htpasswd: &auth.HtpasswdConfig{Realm: "r", Path: writeHtpasswd(t, dir, map[string]string{"u": "p"})}})
	if r := tr.push("any/repo", "v1", basic("u", "p")); r.status != http.StatusCreated {
		t.Fatalf("push: %v", r)
	}
	if r := tr.do(http.MethodDelete, "/v2/any/repo/manifests/v1", nil, "Authorization", basic("u", "p")); r.status != http.StatusAccepted {
		t.Fatalf("delete: %v", r)
	}
	if r := tr.do(http.MethodGet, "/v2/any/repo/tags/list", nil); r.status != http.StatusUnauthorized || r.header.Get("WWW-Authenticate") != `Basic realm="r"` {
		t.Fatalf("anonymous: %v", r)
	}
	if r, repos := tr.catalog(basic("u", "p")); r.status != 200 || !slices.Equal(repos, []string{"any/repo"}) {
		t.Fatalf("catalog: %v %v", r, repos)
	}
}

func TestBasicCatalogFiltered(t *testing.T) {
	tr := htpasswdRegistry(t)
	root := basic("root", "root-pw")
	for _, repo := range []string{"team-a/app", "team-a/lib", "team-b/app", "public/base", "zzz"} {
		if r := tr.push(repo, "v1", root); r.status != http.StatusCreated {
			t.Fatalf("seeding %s: %v", repo, r)
		}
	}
	tests := []struct {
		name  string
		authz string
		want  []string
	}{
		{"root sees all", root, []string{"public/base", "team-a/app", "team-a/lib", "team-b/app", "zzz"}},
		{"alice", basic("alice", "alice-pw"), []string{"public/base", "team-a/app", "team-a/lib"}},
		{"bob", basic("bob", "bob-pw"), []string{"public/base", "team-a/app", "team-a/lib"}},
		{"anonymous", "", []string{"public/base"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, repos := tr.catalog(tt.authz)
			if r.status != http.StatusOK {
				t.Fatal(r)
			}
			if !slices.Equal(repos, tt.want) {
				t.Errorf("catalog %v, want %v", repos, tt.want)
			}
		})
	}
}

func TestUserInContext(t *testing.T) {
	dir := t.TempDir()
	a, _, err := auth.New(auth.Config{
		Htpasswd: &auth.HtpasswdConfig{Path: writeHtpasswd(t, dir, map[string]string{"alice": "pw"})},
		Access:   &auth.AccessConfig{Anonymous: []auth.AnonymousRule{{Repositories: []string{"**"}, Actions: []string{"pull"}}}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, authz, want string
		ok                bool
	}{
		{"authenticated", basic("alice", "pw"), "alice", true},
		{"anonymous", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var seen string
			var seenOK bool
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				r, err := a.Authorize(w, r, auth.Repository("x", auth.ActionPull))
				if err != nil {
					t.Fatal(err)
				}
				seen, seenOK = auth.UserFromContext(r.Context())
			})
			req := httptest.NewRequest(http.MethodGet, "/v2/x/tags/list", nil)
			if tt.authz != "" {
				req.Header.Set("Authorization", tt.authz)
			}
			// The access log's way: a slot put in before, read after.
			ctx, user := auth.TrackUser(context.Background())
			h.ServeHTTP(httptest.NewRecorder(), req.WithContext(ctx))
			if seen != tt.want || seenOK != tt.ok {
				t.Errorf("UserFromContext = %q, %v; want %q, %v", seen, seenOK, tt.want, tt.ok)
			}
			if got := user(); got != tt.want {
				t.Errorf("TrackUser saw %q, want %q", got, tt.want)
			}
		})
	}
}

// TestHtpasswdReloadWithoutRestart adds a user to the file of a running
// registry: the user can log in within the check interval (a second).
func TestHtpasswdReloadWithoutRestart(t *testing.T) {
	dir := t.TempDir()
	path := writeHtpasswd(t, dir, map[string]string{"alice": "a"})
	tr := newRegistry(t, auth.Config{Htpasswd: &auth.HtpasswdConfig{Path: path}})
	if r := tr.do(http.MethodGet, "/v2/", nil, "Authorization", basic("carol", "c")); r.status != http.StatusUnauthorized {
		t.Fatalf("carol before she exists: %v", r)
	}
	writeHtpasswd(t, dir, map[string]string{"alice": "a", "carol": "c"})
	deadline := time.Now().Add(5 * time.Second)
	for {
		r := tr.do(http.MethodGet, "/v2/", nil, "Authorization", basic("carol", "c"))
		if r.status == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("carol still refused 5s after being added: %v", r)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if r := tr.do(http.MethodGet, "/v2/", nil, "Authorization", basic("alice", "a")); r.status != http.StatusOK {
		t.Fatalf("alice after the reload: %v", r)
	}
}
