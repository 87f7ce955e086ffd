package auth_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"

	"github.com/registryd/registryd/auth"
)

const issuerRealm = "https://registry.test/auth/token"

// issuerRegistry is a registry with its own token server: htpasswd users,
// the rules of htpasswdRegistry, tokens signed with a key of kind.
func issuerRegistry(t *testing.T, kind string, withCert bool) (*testRegistry, *keyPair) {
	t.Helper()
	dir := t.TempDir()
	kp := newKeyPair(t, dir, "issuer", kind, nil, false, nil)
	ic := &auth.IssuerConfig{Key: kp.keyPath}
	if withCert {
		ic.Certificate = kp.certPath
	}
	tr := newRegistry(t, auth.Config{
		Htpasswd: &auth.HtpasswdConfig{Realm: "test-realm", Path: writeHtpasswd(t, dir, map[string]string{
			"alice": "alice-pw", "bob": "bob-pw", "root": "root-pw",
		})},
		Token:  &auth.TokenConfig{Realm: issuerRealm, Service: testService, Issuer: "registryd-test"},
		Issuer: ic,
		Access: &auth.AccessConfig{
			Groups: map[string][]string{"admins": {"root"}},
			Rules: []auth.Rule{
				{Repositories: []string{"team-a/**"}, Users: []string{"alice"}, Actions: []string{"*"}},
				{Repositories: []string{"team-a/**"}, Users: []string{"bob"}, Actions: []string{"pull"}},
				{Repositories: []string{"**"}, Groups: []string{"admins"}, Actions: []string{"*"}},
			},
			Anonymous: []auth.AnonymousRule{{Repositories: []string{"public/**"}, Actions: []string{"pull"}}},
		},
	})
	return tr, kp
}

type tokenBody struct {
	Token       string `json:"token"`
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	Scope       string `json:"scope"`
	ExpiresIn   int    `json:"expires_in"`
	IssuedAt    string `json:"issued_at"`
}

// getToken asks the token endpoint as Docker does: GET with the service,
// the scopes and Basic credentials (authz, may be "").
func (tr *testRegistry) getToken(authz string, scopes ...string) (response, tokenBody) {
	tr.t.Helper()
	q := url.Values{"service": {testService}, "client_id": {"docker"}, "offline_token": {"true"}}
	for _, s := range scopes {
		q.Add("scope", s)
	}
	r := tr.do(http.MethodGet, "/auth/token?"+q.Encode(), nil, "Authorization", authz)
	var tb tokenBody
	if r.status == http.StatusOK {
		if err := json.Unmarshal(r.body, &tb); err != nil {
			tr.t.Fatalf("token body %s: %v", r.body, err)
		}
	}
	return r, tb
}

// tokenClaims decodes a token's claims without verifying it.
func tokenClaims(t testing.TB, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", tok)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func tokenHeader(t testing.TB, tok string) map[string]any {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatal(err)
	}
	return h
}

// granted is a token's access claim as "type:name:actions" strings.
func granted(t testing.TB, tok string) []string {
	t.Helper()
	var out []string
	list, _ := tokenClaims(t, tok)["access"].([]any)
	for _, e := range list {
		m := e.(map[string]any)
		var acts []string
		for _, a := range m["actions"].([]any) {
			acts = append(acts, a.(string))
		}
		out = append(out, m["type"].(string)+":"+m["name"].(string)+":"+strings.Join(acts, ","))
	}
	return out
}

func TestIssuerLoginRoundTrip(t *testing.T) {
	for _, kind := range []string{"ec", "rsa"} {
		t.Run(kind, func(t *testing.T) {
			tr, kp := issuerRegistry(t, kind, kind == "rsa")
			// docker login: GET /v2/ learns the realm...
			r := tr.do(http.MethodGet, "/v2/", nil)
			want := `Bearer realm="` + issuerRealm + `",service="` + testService + `"`
			if r.status != http.StatusUnauthorized || r.header.Get("WWW-Authenticate") != want {
				t.Fatalf("GET /v2/: %v, want 401 with %s", r, want)
			}
			// ...gets a token with its credentials and no scope...
			before := time.Now().Add(-time.Second)
			r, tb := tr.getToken(basic("alice", "alice-pw"))
			if r.status != http.StatusOK {
				t.Fatalf("token: %v", r)
			}
			if tb.Token == "" || tb.Token != tb.AccessToken {
				t.Errorf("token %q and access_token %q must be the same, non-empty", tb.Token, tb.AccessToken)
			}
			if tb.ExpiresIn != 300 {
				t.Errorf("expires_in %d, want 300", tb.ExpiresIn)
			}
			if at, err := time.Parse(time.RFC3339, tb.IssuedAt); err != nil || at.Before(before.Truncate(time.Second)) || at.After(time.Now()) {
				t.Errorf("issued_at %q (%v)", tb.IssuedAt, err)
			}
			if cc := r.header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control %q, want no-store", cc)
			}
			c := tokenClaims(t, tb.Token)
			if c["sub"] != "alice" || c["iss"] != "registryd-test" || c["aud"] != testService {
				t.Errorf("claims %v", c)
			}
			if exp, iat := c["exp"].(float64), c["iat"].(float64); exp-iat != 300 {
				t.Errorf("exp - iat = %v, want 300", exp-iat)
			}
			h := tokenHeader(t, tb.Token)
			if h["kid"] != thumbprint(t, kp.key.Public()) {
				t.Errorf("kid %v, want the key's RFC 7638 thumbprint", h["kid"])
			}
			if _, hasX5c := h["x5c"]; hasX5c != (kind == "rsa") {
				t.Errorf("x5c present: %v, want only with a certificate", hasX5c)
			}
			wantAlg := map[string]string{"ec": "ES256", "rsa": "RS256"}[kind]
			if h["alg"] != wantAlg {
				t.Errorf("alg %v, want %s", h["alg"], wantAlg)
			}
			// ...and is logged in.
			if r := tr.do(http.MethodGet, "/v2/", nil, "Authorization", bearer(tb.Token)); r.status != http.StatusOK {
				t.Fatalf("GET /v2/ with the token: %v", r)
			}

			// Push and pull, each with a token for the scope the
			// registry's challenge names.
			_, push := tr.getToken(basic("alice", "alice-pw"), "repository:team-a/app:pull,push")
			if r := tr.push("team-a/app", "v1", bearer(push.Token)); r.status != http.StatusCreated {
				t.Fatalf("push with token: %v", r)
			}
			_, pull := tr.getToken(basic("bob", "bob-pw"), "repository:team-a/app:pull")
			if r := tr.do(http.MethodGet, "/v2/team-a/app/manifests/v1", nil, "Authorization", bearer(pull.Token)); r.status != http.StatusOK {
				t.Fatalf("pull with token: %v", r)
			}
		})
	}
}

func TestIssuerGrants(t *testing.T) {
	tr, _ := issuerRegistry(t, "ec", false)
	tests := []struct {
		name   string
		authz  string
		scopes []string
		want   []string
	}{
		{"alice gets what she asks on team-a", basic("alice", "alice-pw"), []string{"repository:team-a/app:pull,push"}, []string{"repository:team-a/app:pull,push"}},
		{"bob asking to push gets pull only", basic("bob", "bob-pw"), []string{"repository:team-a/app:pull,push"}, []string{"repository:team-a/app:pull"}},
		{"bob gets nothing on team-b", basic("bob", "bob-pw"), []string{"repository:team-b/app:pull"}, nil},
		{"star expands to what is allowed", basic("alice", "alice-pw"), []string{"repository:team-a/app:*"}, []string{"repository:team-a/app:pull,push,delete"}},
		{"several scopes, one param", basic("alice", "alice-pw"), []string{"repository:team-a/x:pull repository:public/y:pull"}, []string{"repository:team-a/x:pull", "repository:public/y:pull"}},
		{"several params", basic("bob", "bob-pw"), []string{"repository:team-a/x:pull", "repository:team-b/x:pull", "repository:public/y:pull,push"}, []string{"repository:team-a/x:pull", "repository:public/y:pull"}},
		{"duplicates merge", basic("alice", "alice-pw"), []string{"repository:team-a/x:pull", "repository:team-a/x:push,pull"}, []string{"repository:team-a/x:pull,push"}},
		{"catalog for users", basic("bob", "bob-pw"), []string{"registry:catalog:*"}, []string{"registry:catalog:*"}},
		{"resource class is accepted", basic("alice", "alice-pw"), []string{"repository(plugin):team-a/x:pull"}, []string{"repository:team-a/x:pull"}},
		{"unknown types grant nothing", basic("root", "root-pw"), []string{"other:thing:pull"}, nil},
		{"anonymous pulls public", "", []string{"repository:public/base:pull,push"}, []string{"repository:public/base:pull"}},
		{"anonymous gets nothing else", "", []string{"repository:team-a/app:pull"}, nil},
		{"anonymous may list (filtered)", "", []string{"registry:catalog:*"}, []string{"registry:catalog:*"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, tb := tr.getToken(tt.authz, tt.scopes...)
			if r.status != http.StatusOK {
				t.Fatalf("token: %v", r)
			}
			if got := granted(t, tb.Token); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("granted %q, want %q", got, tt.want)
			}
		})
	}
}

func TestIssuerRefusals(t *testing.T) {
	tr, _ := issuerRegistry(t, "ec", false)
	tests := []struct {
		name   string
		query  string
		authz  string
		status int
		basic  bool // a Basic challenge is expected
	}{
		{"wrong password", "service=" + testService, basic("alice", "nope"), 401, true},
		{"unknown user", "service=" + testService, basic("mallory", "alice-pw"), 401, true},
		{"malformed credentials", "service=" + testService, "Basic !!", 401, true},
		{"bearer instead of basic", "service=" + testService, "Bearer x.y.z", 401, true},
		{"another service", "service=other", basic("alice", "alice-pw"), 400, false},
		{"malformed scope", "service=" + testService + "&scope=repository:onlyname", basic("alice", "alice-pw"), 400, false},
		{"control character in scope", "service=" + testService + "&scope=" + url.QueryEscape("repository:a\x01:pull"), basic("alice", "alice-pw"), 400, false},
		{"too many scopes", "service=" + testService + strings.Repeat("&scope=repository:a:pull", 65), basic("alice", "alice-pw"), 400, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tr.do(http.MethodGet, "/auth/token?"+tt.query, nil, "Authorization", tt.authz)
			if r.status != tt.status {
				t.Fatalf("%v, want %d", r, tt.status)
			}
			if got := r.header.Get("WWW-Authenticate") == `Basic realm="test-realm"`; got != tt.basic {
				t.Errorf("WWW-Authenticate %q", r.header.Get("WWW-Authenticate"))
			}
		})
	}
	if r := tr.do(http.MethodPut, "/auth/token", nil); r.status != http.StatusMethodNotAllowed {
		t.Errorf("PUT: %v", r)
	}
}

func TestIssuerWithoutAnonymousRulesWantsCredentials(t *testing.T) {
	dir := t.TempDir()
	kp := newKeyPair(t, dir, "issuer", "ec", nil, false, nil)
	tr := newRegistry(t, auth.Config{
		Htpasswd: &auth.HtpasswdConfig{Realm: "r", Path: writeHtpasswd(t, dir, map[string]string{"u": "p"})},
		Token:    &auth.TokenConfig{Realm: issuerRealm, Service: testService, Issuer: "i"},
		Issuer:   &auth.IssuerConfig{Key: kp.keyPath, Expiration: time.Minute},
	})
	if r, _ := tr.getToken("", "repository:x:pull"); r.status != http.StatusUnauthorized || r.header.Get("WWW-Authenticate") != `Basic realm="r"` {
		t.Fatalf("anonymous token request: %v", r)
	}
	// No rules: an authenticated user gets everything asked, for the
	// configured lifetime.
	r, tb := tr.getToken(basic("u", "p"), "repository:x:pull,push,delete", "registry:catalog:*")
	if r.status != http.StatusOK || tb.ExpiresIn != 60 {
		t.Fatalf("%v, expires_in %d", r, tb.ExpiresIn)
	}
	if got := granted(t, tb.Token); !slices.Equal(got, []string{"repository:x:pull,push,delete", "registry:catalog:*"}) {
		t.Errorf("granted %v", got)
	}
}

func TestIssuerOAuthPost(t *testing.T) {
	tr, _ := issuerRegistry(t, "ec", false)
	post := func(form url.Values) (response, tokenBody) {
		r := tr.do(http.MethodPost, "/auth/token", []byte(form.Encode()), "Content-Type", "application/x-www-form-urlencoded")
		var tb tokenBody
		_ = json.Unmarshal(r.body, &tb)
		return r, tb
	}
	form := url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"alice-pw"},
		"service": {testService}, "client_id": {"containerd"}, "scope": {"repository:team-a/app:pull,push repository:team-b/app:pull"}}
	r, tb := post(form)
	if r.status != http.StatusOK {
		t.Fatalf("password grant: %v", r)
	}
	if tb.AccessToken == "" || tb.TokenType != "Bearer" || tb.Scope != "repository:team-a/app:pull,push" {
		t.Errorf("response %s", r.body)
	}
	if r := tr.push("team-a/app", "v1", bearer(tb.AccessToken)); r.status != http.StatusCreated {
		t.Fatalf("push with the OAuth token: %v", r)
	}

	tests := []struct {
		name   string
		change url.Values
		status int
		code   string
	}{
		{"wrong password", url.Values{"password": {"x"}}, 400, "invalid_grant"},
		{"unknown user", url.Values{"username": {"mallory"}}, 400, "invalid_grant"},
		{"no user", url.Values{"username": {""}}, 400, "invalid_grant"},
		{"refresh token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"abc"}}, 400, "unsupported_grant_type"},
		{"no grant type", url.Values{"grant_type": {""}}, 400, "unsupported_grant_type"},
		{"another service", url.Values{"service": {"other"}}, 400, "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := url.Values{}
			for k, v := range form {
				f[k] = v
			}
			for k, v := range tt.change {
				f[k] = v
			}
			r, _ := post(f)
			var e struct{ Error string }
			_ = json.Unmarshal(r.body, &e)
			if r.status != tt.status || e.Error != tt.code {
				t.Errorf("%v, want %d %s", r, tt.status, tt.code)
			}
		})
	}
	// An oversized body is refused, not read to the end.
	big := "grant_type=password&username=" + strings.Repeat("a", 70<<10)
	if r := tr.do(http.MethodPost, "/auth/token", []byte(big), "Content-Type", "application/x-www-form-urlencoded"); r.status != http.StatusBadRequest {
		t.Errorf("oversized form: %v", r)
	}
}

func TestIssuerTokensAndRules(t *testing.T) {
	tr, _ := issuerRegistry(t, "ec", false)
	_, root := tr.getToken(basic("root", "root-pw"), "repository:team-a/app:pull,push", "repository:team-b/app:pull,push", "repository:public/base:pull,push")
	for _, repo := range []string{"team-a/app", "team-b/app", "public/base"} {
		if r := tr.push(repo, "v1", bearer(root.Token)); r.status != http.StatusCreated {
			t.Fatalf("seed %s: %v", repo, r)
		}
	}
	// Bob asked for push and got a pull-only token: the registry says the
	// scope is insufficient, with 401 as Docker's spec has it.
	_, bob := tr.getToken(basic("bob", "bob-pw"), "repository:team-a/app:pull,push")
	r := tr.do(http.MethodPost, "/v2/team-a/app/blobs/uploads/", nil, "Authorization", bearer(bob.Token))
	wantCh := `Bearer realm="` + issuerRealm + `",service="` + testService + `",scope="repository:team-a/app:pull,push",error="insufficient_scope"`
	if r.status != http.StatusUnauthorized || r.header.Get("WWW-Authenticate") != wantCh {
		t.Fatalf("bob push: %v, want 401 with %s", r, wantCh)
	}
	// A token for team-a cannot touch team-b.
	if r := tr.do(http.MethodGet, "/v2/team-b/app/manifests/v1", nil, "Authorization", bearer(bob.Token)); r.status != http.StatusUnauthorized {
		t.Fatalf("bob's token on team-b: %v", r)
	}
	// Anonymous pull of public content through an anonymous token.
	_, anon := tr.getToken("", "repository:public/base:pull")
	if r := tr.do(http.MethodGet, "/v2/public/base/manifests/v1", nil, "Authorization", bearer(anon.Token)); r.status != http.StatusOK {
		t.Fatalf("anonymous pull: %v", r)
	}
	if r := tr.do(http.MethodPost, "/v2/public/base/blobs/uploads/", nil, "Authorization", bearer(anon.Token)); r.status != http.StatusUnauthorized {
		t.Fatalf("anonymous push: %v", r)
	}
	// The catalog lists what the token's subject may pull under the rules,
	// since this registry's own server would grant it.
	tests := []struct {
		name  string
		authz string
		want  []string
	}{
		{"bob", basic("bob", "bob-pw"), []string{"public/base", "team-a/app"}},
		{"root", basic("root", "root-pw"), []string{"public/base", "team-a/app", "team-b/app"}},
		{"anonymous", "", []string{"public/base"}},
	}
	for _, tt := range tests {
		t.Run("catalog "+tt.name, func(t *testing.T) {
			_, tb := tr.getToken(tt.authz, "registry:catalog:*")
			r, repos := tr.catalog(bearer(tb.Token))
			if r.status != http.StatusOK || !slices.Equal(repos, tt.want) {
				t.Errorf("%v: %v, want %v", r, repos, tt.want)
			}
		})
	}
}

func TestIssuerRealmPathMismatchIsLogged(t *testing.T) {
	dir := t.TempDir()
	kp := newKeyPair(t, dir, "issuer", "ec", nil, false, nil)
	tests := []struct {
		path string
		warn bool
	}{
		{"/auth/token", false},
		{"/token", true},
		{"", false},
	}
	for _, tt := range tests {
		log, hook := test.NewNullLogger()
		_, _, err := auth.New(auth.Config{
			Htpasswd: &auth.HtpasswdConfig{Path: writeHtpasswd(t, dir, map[string]string{"u": "p"})},
			Token:    &auth.TokenConfig{Realm: issuerRealm, Service: testService, Issuer: "i"},
			Issuer:   &auth.IssuerConfig{Key: kp.keyPath, Path: tt.path},
		}, log)
		if err != nil {
			t.Fatal(err)
		}
		warned := false
		for _, e := range hook.AllEntries() {
			warned = warned || e.Level == logrus.WarnLevel && strings.Contains(e.Message, "auth.token.realm")
		}
		if warned != tt.warn {
			t.Errorf("path %q: warned %v, want %v", tt.path, warned, tt.warn)
		}
	}
}
