package config

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// RateLimit is http.ratelimit (registryd's own): requests per second per
// client address and per authenticated user, per-method rates, and a cap
// on one client's uploads at once. Off unless enabled.
type RateLimit struct {
	Enabled   bool
	PerClient RequestRate // http.ratelimit.perclient
	PerUser   RequestRate // http.ratelimit.peruser
	// Methods are rates of their own for some methods, by upper-case
	// method name (http.ratelimit.methods: {HEAD: {requests: 500}}).
	Methods map[string]RequestRate
	// Uploads caps the upload requests one client has in flight (0: none).
	Uploads int
	// TrustedProxies are addresses or CIDRs of proxies whose
	// X-Forwarded-For names the client.
	TrustedProxies []string
}

// RequestRate is a token bucket: Requests per second (0: no limit), Burst
// at once (0: one second's worth).
type RequestRate struct {
	Requests float64
	Burst    int
}

func rateSchema() *key {
	return impl(section(map[string]*key{
		"requests": impl(leaf(kAny)),
		"burst":    impl(integer()),
	}))
}

// rateLimitSchema is http.ratelimit.
func rateLimitSchema() *key {
	return impl(section(map[string]*key{
		"enabled":        impl(boolean()),
		"perclient":      rateSchema(),
		"peruser":        rateSchema(),
		"methods":        impl(leaf(kMap)),
		"uploads":        impl(integer()),
		"trustedproxies": impl(strs()),
	}))
}

var rateMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"}

// fillRateLimit reads http.ratelimit.
func (p *parser) fillRateLimit(rl *RateLimit, boolean func(string, *bool), integer func(string, *int), strList func(string, *[]string), bad func(string, string, ...any)) {
	const k = "http.ratelimit."
	boolean(k+"enabled", &rl.Enabled)
	readRate := func(path string, n *yaml.Node, dst *RequestRate) {
		if n == nil || n.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			name, v := n.Content[i].Value, n.Content[i+1]
			switch name {
			case "requests":
				f, err := strconv.ParseFloat(strings.TrimSpace(v.Value), 64)
				if v.Kind != yaml.ScalarNode || err != nil || f < 0 || f > 1e9 {
					p.fail(path+".requests", v, "must be a number of requests per second (0: no limit), got %q", v.Value)
					continue
				}
				dst.Requests = f
			case "burst":
				var b int
				if v.Kind != yaml.ScalarNode || v.Decode(&b) != nil || b < 0 {
					p.fail(path+".burst", v, "must be a number of requests, 0 or more, got %q", v.Value)
					continue
				}
				dst.Burst = b
			default:
				p.fail(path+"."+name, n.Content[i], "unknown key %q (a rate has requests and burst)", path+"."+name)
			}
		}
	}
	readRate(k+"perclient", p.present[k+"perclient"], &rl.PerClient)
	readRate(k+"peruser", p.present[k+"peruser"], &rl.PerUser)
	if n := p.vals[k+"methods"]; n != nil {
		for i := 0; i+1 < len(n.Content); i += 2 {
			m := strings.ToUpper(n.Content[i].Value)
			if !slices.Contains(rateMethods, m) {
				p.fail(k+"methods."+n.Content[i].Value, n.Content[i], "%q is not a method of the registry API (%s)", n.Content[i].Value, strings.Join(rateMethods, ", "))
				continue
			}
			if n.Content[i+1].Kind != yaml.MappingNode {
				p.fail(k+"methods."+n.Content[i].Value, n.Content[i+1], "must be a rate: {requests: N, burst: N}")
				continue
			}
			var r RequestRate
			readRate(k+"methods."+m, n.Content[i+1], &r)
			if rl.Methods == nil {
				rl.Methods = map[string]RequestRate{}
			}
			rl.Methods[m] = r
		}
	}
	integer(k+"uploads", &rl.Uploads)
	if rl.Uploads < 0 {
		bad(k+"uploads", "must be 0 (no cap) or more, got %d", rl.Uploads)
	}
	strList(k+"trustedproxies", &rl.TrustedProxies)
	for _, tp := range rl.TrustedProxies {
		if _, err := ParseProxy(tp); err != nil {
			bad(k+"trustedproxies", "%v", err)
		}
	}
	if rl.Enabled && rl.PerClient.Requests == 0 && rl.PerUser.Requests == 0 && len(rl.Methods) == 0 && rl.Uploads == 0 {
		bad(k+"enabled", "http.ratelimit is enabled but sets no limit: set perclient, peruser, methods or uploads")
	}
}

// ParseProxy reads a trusted proxy: an address or a CIDR.
func ParseProxy(s string) (netip.Prefix, error) {
	if pf, err := netip.ParsePrefix(s); err == nil {
		return pf.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is neither an address nor a CIDR", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// dumpRateLimit adds http.ratelimit to the http node.
func dumpRateLimit(h *yaml.Node, rl RateLimit) {
	rate := func(r RequestRate) *yaml.Node { return pairs("requests", r.Requests, "burst", r.Burst) }
	methods := mapping()
	for _, m := range slices.Sorted(maps.Keys(rl.Methods)) {
		addNode(methods, m, rate(rl.Methods[m]))
	}
	n := pairs("enabled", rl.Enabled)
	addNode(n, "perclient", rate(rl.PerClient))
	addNode(n, "peruser", rate(rl.PerUser))
	addNode(n, "methods", methods)
	add(n, "uploads", rl.Uploads)
	add(n, "trustedproxies", nonNil(rl.TrustedProxies))
	addNode(h, "ratelimit", n)
}
