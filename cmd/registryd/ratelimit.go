package main

import (
	"net/http"

	"github.com/registryd/registryd/config"
	"github.com/registryd/registryd/ratelimit"
)

// newLimiter builds the limiter of http.ratelimit; nil when it is off.
func newLimiter(rl config.RateLimit) *ratelimit.Limiter {
	if !rl.Enabled {
		return nil
	}
	c := ratelimit.Config{
		PerClient: ratelimit.Rate(rl.PerClient),
		PerUser:   ratelimit.Rate(rl.PerUser),
		Uploads:   rl.Uploads,
	}
	for m, r := range rl.Methods {
		if c.Methods == nil {
			c.Methods = map[string]ratelimit.Rate{}
		}
		c.Methods[m] = ratelimit.Rate(r)
	}
	for _, p := range rl.TrustedProxies {
		if pf, err := config.ParseProxy(p); err == nil { // checked by config
			c.TrustedProxies = append(c.TrustedProxies, pf)
		}
	}
	return ratelimit.New(c)
}

// limited puts h behind l's per-client limits (h itself without l).
func limited(l *ratelimit.Limiter, h http.Handler) http.Handler {
	if l == nil {
		return h
	}
	return l.Handler(h)
}
