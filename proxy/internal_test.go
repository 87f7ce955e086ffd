package proxy

import (
	"net/http"
	"net/url"
	"reflect"
	"testing"
	"time"
)

func TestParseChallenges(t *testing.T) {
	cases := []struct {
		in   []string
		want []challenge
	}{
		{[]string{`Bearer realm="https://auth.docker.io/token",service="registry.docker.io"`},
			[]challenge{{"bearer", map[string]string{"realm": "https://auth.docker.io/token", "service": "registry.docker.io"}}}},
		{[]string{`Basic realm="registry"`}, []challenge{{"basic", map[string]string{"realm": "registry"}}}},
		{[]string{`Bearer realm="r",service="s",scope="repository:a/b:pull",error="insufficient_scope"`},
			[]challenge{{"bearer", map[string]string{"realm": "r", "service": "s", "scope": "repository:a/b:pull", "error": "insufficient_scope"}}}},
		{[]string{`Basic realm="a", Bearer realm="b"`},
			[]challenge{{"basic", map[string]string{"realm": "a"}}, {"bearer", map[string]string{"realm": "b"}}}},
		{[]string{`Bearer realm=unquoted, service="q\"uote"`},
			[]challenge{{"bearer", map[string]string{"realm": "unquoted", "service": `q"uote`}}}},
		{[]string{"Negotiate"}, []challenge{{"negotiate", map[string]string{}}}},
	}
	for _, tc := range cases {
		h := http.Header{"Www-Authenticate": tc.in}
		if got := parseChallenges(h); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

// Credentials go only to a realm of the upstream itself.
func TestTrustedRealm(t *testing.T) {
	cases := []struct {
		up, realm string
		want      bool
	}{
		{"https://registry-1.docker.io", "https://auth.docker.io/token", true},
		{"https://ghcr.io", "https://ghcr.io/token", true},
		{"http://127.0.0.1:5000", "http://127.0.0.1:5001/auth/token", true},
		{"https://127.0.0.1:5000", "http://127.0.0.1:5000/auth/token", false}, // https upstream, http realm
		{"https://registry.example.com", "https://evil.example.org/token", false},
		{"https://127.0.0.1", "https://127.0.0.2/token", false},
		{"https://localhost:5000", "https://localhost.evil.com/token", false},
		{"https://a.github.io", "https://b.github.io/token", false}, // github.io is a public suffix
	}
	for _, tc := range cases {
		u, _ := url.Parse(tc.up)
		r, _ := url.Parse(tc.realm)
		if got := trustedRealm(u, r); got != tc.want {
			t.Errorf("upstream %s realm %s: %v, want %v", tc.up, tc.realm, got, tc.want)
		}
	}
}

func TestBreaker(t *testing.T) {
	now := time.Unix(1000, 0)
	b := breaker{now: func() time.Time { return now }}
	if _, ok := b.allow(); !ok {
		t.Fatal("closed breaker refused")
	}
	b.failure()
	if w, ok := b.allow(); ok || w != breakerBase {
		t.Fatalf("open breaker: %v %v", w, ok)
	}
	now = now.Add(breakerBase)
	if _, ok := b.allow(); !ok {
		t.Fatal("no probe after the window")
	}
	if _, ok := b.allow(); ok {
		t.Fatal("a second request while probing")
	}
	b.failure()
	if w, _ := b.allow(); w != 2*breakerBase {
		t.Fatalf("second window %v, want doubled", w)
	}
	for i := 0; i < 10; i++ {
		b.failure()
	}
	if w, _ := b.allow(); w != breakerMax {
		t.Fatalf("window %v, want the cap", w)
	}
	now = now.Add(breakerMax)
	b.allow()
	b.success()
	if _, ok := b.allow(); !ok {
		t.Fatal("closed again after a success")
	}
}

func TestParseHelpers(t *testing.T) {
	if n, ok := parseRateLimit("100;w=21600"); !ok || n != 100 {
		t.Errorf("ratelimit %d %v", n, ok)
	}
	if _, ok := parseRateLimit(""); ok {
		t.Error("empty ratelimit")
	}
	now := time.Unix(1000, 0)
	if d := parseRetryAfter("7", now); d != 7*time.Second {
		t.Errorf("Retry-After 7: %v", d)
	}
	if d := parseRetryAfter(now.Add(90*time.Second).UTC().Format(http.TimeFormat), now); d != 90*time.Second {
		t.Errorf("Retry-After date: %v", d)
	}
	for in, want := range map[string][3]int64{"bytes 0-9/10": {0, 9, 10}, "bytes 5-9/*": {5, 9, -1}} {
		s, e, tot, ok := parseContentRange(in)
		if !ok || [3]int64{s, e, tot} != want {
			t.Errorf("%q: %d %d %d %v", in, s, e, tot, ok)
		}
	}
	for _, in := range []string{"0-9/10", "bytes 9-0/10", "bytes a-b/c", "bytes 0-9"} {
		if _, _, _, ok := parseContentRange(in); ok {
			t.Errorf("%q parsed", in)
		}
	}
}
