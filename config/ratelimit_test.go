package config

import (
	"reflect"
	"strings"
	"testing"
)

func TestRateLimitConfig(t *testing.T) {
	base := "version: 0.1\nstorage:\n  inmemory:\n"
	if c := mustParse(t, base); !reflect.DeepEqual(c.HTTP.RateLimit, RateLimit{}) {
		t.Fatalf("default: %+v", c.HTTP.RateLimit)
	}
	c := mustParse(t, base+`http:
  ratelimit:
    enabled: true
    perclient: {requests: 20, burst: 40}
    peruser: {requests: 0.5}
    methods:
      head: {requests: 500, burst: 1000}
      PUT: {requests: 2}
    uploads: 4
    trustedproxies: [10.0.0.0/8, "::1"]
`, "REGISTRY_HTTP_RATELIMIT_PERCLIENT_BURST=60")
	want := RateLimit{
		Enabled:        true,
		PerClient:      RequestRate{Requests: 20, Burst: 60},
		PerUser:        RequestRate{Requests: 0.5},
		Methods:        map[string]RequestRate{"HEAD": {500, 1000}, "PUT": {2, 0}},
		Uploads:        4,
		TrustedProxies: []string{"10.0.0.0/8", "::1"},
	}
	if !reflect.DeepEqual(c.HTTP.RateLimit, want) {
		t.Fatalf("got %+v\nwant %+v", c.HTTP.RateLimit, want)
	}
	dumpFixedPoint(t, c)
	for _, bad := range []struct{ yml, msg string }{
		{"    enabled: true\n", "sets no limit"},
		{"    perclient: {requests: fast}\n", "http.ratelimit.perclient.requests: must be a number"},
		{"    perclient: {requests: -1}\n", "must be a number of requests per second"},
		{"    peruser: {burst: -1}\n", "http.ratelimit.peruser.burst"},
		{"    peruser: {rate: 1}\n", `unknown key "http.ratelimit.peruser.rate"`},
		{"    methods: {TRACE: {requests: 1}}\n", `"TRACE" is not a method of the registry API`},
		{"    methods: {GET: 5}\n", "must be a rate"},
		{"    uploads: -2\n", "http.ratelimit.uploads: must be 0"},
		{"    trustedproxies: [proxy.local]\n", "neither an address nor a CIDR"},
	} {
		_, err := Parse([]byte(base+"http:\n  ratelimit:\n"+bad.yml), nil)
		if err == nil || !strings.Contains(err.Error(), bad.msg) {
			t.Errorf("%q: %v, want %q", bad.yml, err, bad.msg)
		}
	}
}
