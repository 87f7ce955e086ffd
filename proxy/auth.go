package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/publicsuffix"
)

// The mirror authenticates to its upstreams with its own credentials,
// never the client's: a client's Authorization header is for registryd
// (its auth checks it) and goes no further.
//
// Challenges are learnt from the first 401 (nothing is asked at startup,
// so registryd starts with every upstream down). Basic is answered with the
// configured credentials. Bearer (Docker's token flow) gets a token from
// the realm for the repository's pull scope, with the credentials when the
// realm belongs to the upstream (same host, or same registrable domain as
// registry-1.docker.io and auth.docker.io), anonymously otherwise. Tokens
// are kept per realm, service and scope until they expire, and only one
// request per key is ever in flight.

// challenge is a parsed WWW-Authenticate.
type challenge struct {
	scheme string // "basic" or "bearer"
	params map[string]string
}

// parseChallenges reads the challenges of a WWW-Authenticate header:
// scheme followed by comma-separated key="value" pairs.
func parseChallenges(h http.Header) []challenge {
	var out []challenge
	for _, v := range h.Values("WWW-Authenticate") {
		s := strings.TrimSpace(v)
		for s != "" {
			sp := strings.IndexAny(s, " \t")
			scheme := s
			if sp >= 0 {
				scheme = s[:sp]
				s = strings.TrimSpace(s[sp+1:])
			} else {
				s = ""
			}
			c := challenge{scheme: strings.ToLower(scheme), params: map[string]string{}}
			// key=value or key="value", comma separated, until a token
			// that is not followed by "=" (the next challenge's scheme).
			for s != "" {
				eq := strings.IndexByte(s, '=')
				if eq <= 0 || strings.ContainsAny(s[:eq], " \t,") {
					break
				}
				k := strings.ToLower(strings.TrimSpace(s[:eq]))
				s = strings.TrimSpace(s[eq+1:])
				var val string
				if strings.HasPrefix(s, `"`) {
					var b strings.Builder
					i := 1
					for ; i < len(s); i++ {
						if s[i] == '\\' && i+1 < len(s) {
							i++
							b.WriteByte(s[i])
							continue
						}
						if s[i] == '"' {
							break
						}
						b.WriteByte(s[i])
					}
					val = b.String()
					if i < len(s) {
						i++
					}
					s = s[i:]
				} else {
					end := strings.IndexByte(s, ',')
					if end < 0 {
						end = len(s)
					}
					val = strings.TrimSpace(s[:end])
					s = s[end:]
				}
				c.params[k] = val
				s = strings.TrimSpace(s)
				if strings.HasPrefix(s, ",") {
					s = strings.TrimSpace(s[1:])
				}
			}
			out = append(out, c)
		}
	}
	return out
}

// credentials give an upstream's Basic username and password.
type credentials interface {
	// basic returns them; ok is false for anonymous access.
	basic(ctx context.Context) (user, pass string, ok bool)
}

type staticCreds struct{ user, pass string }

func (c staticCreds) basic(context.Context) (string, string, bool) {
	return c.user, c.pass, c.user != "" || c.pass != ""
}

// execCreds runs a docker-credential-helper ("<command> get", the
// upstream's host on stdin, JSON with Username and Secret out), as
// distribution's proxy.exec: lifetime nil runs it once, 0 every time, and
// otherwise its answer is reused that long.
type execCreds struct {
	command  string
	host     string
	lifetime *time.Duration

	mu      sync.Mutex
	fetched time.Time
	user    string
	pass    string
	ok      bool
	now     func() time.Time
}

func (c *execCreds) basic(ctx context.Context) (string, string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if !c.fetched.IsZero() && (c.lifetime == nil || *c.lifetime > 0 && now.Sub(c.fetched) < *c.lifetime) {
		return c.user, c.pass, c.ok
	}
	user, pass, err := runCredentialHelper(ctx, c.command, c.host)
	if err != nil {
		// The previous answer, if any, is better than none.
		return c.user, c.pass, c.ok
	}
	c.user, c.pass, c.ok, c.fetched = user, pass, user != "" || pass != "", now
	return c.user, c.pass, c.ok
}

// runCredentialHelper asks a docker-credential-helper for host's
// credentials. "credentials not found" is anonymous access, not an error.
func runCredentialHelper(ctx context.Context, command, host string) (user, pass string, err error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	fields := strings.Fields(command)
	if len(fields) == 0 {
		return "", "", fmt.Errorf("empty credential helper command")
	}
	cmd := exec.CommandContext(ctx, fields[0], append(fields[1:], "get")...)
	cmd.Stdin = strings.NewReader(host)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(out.String() + " " + stderr.String())
		if strings.Contains(strings.ToLower(msg), "credentials not found") {
			return "", "", nil
		}
		return "", "", fmt.Errorf("credential helper %s: %v: %s", fields[0], err, clip(msg, 200))
	}
	var resp struct {
		Username string
		Secret   string
	}
	if err := json.Unmarshal(out.Bytes(), &resp); err != nil {
		return "", "", fmt.Errorf("credential helper %s: unreadable answer: %v", fields[0], err)
	}
	return resp.Username, resp.Secret, nil
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// trustedRealm reports whether the upstream's credentials may be sent to
// a token realm: the same host (any port), or for names (not addresses,
// not localhost) the same registrable domain. A realm over plain HTTP is
// trusted only for an upstream reached over plain HTTP.
func trustedRealm(upstream, realm *url.URL) bool {
	if realm.Scheme != "https" && !(realm.Scheme == "http" && upstream.Scheme == "http") {
		return false
	}
	uh, rh := strings.ToLower(upstream.Hostname()), strings.ToLower(realm.Hostname())
	if uh == rh {
		return true
	}
	if net.ParseIP(uh) != nil || net.ParseIP(rh) != nil || uh == "localhost" || rh == "localhost" {
		return false
	}
	ud, err1 := publicsuffix.EffectiveTLDPlusOne(uh)
	rd, err2 := publicsuffix.EffectiveTLDPlusOne(rh)
	return err1 == nil && err2 == nil && ud == rd
}

// token is a bearer token and when it stops being usable.
type token struct {
	value   string
	expires time.Time
}

// tokenCache keeps tokens per realm, service and scope.
type tokenCache struct {
	mu     sync.Mutex
	tokens map[string]token
	flight flight[token]
}

func tokenKey(realm, service, scope string) string { return realm + "\x00" + service + "\x00" + scope }

func (c *tokenCache) get(key string, now time.Time) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.tokens[key]
	if !ok || !now.Before(t.expires) {
		return "", false
	}
	return t.value, true
}

func (c *tokenCache) put(key string, t token) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tokens == nil {
		c.tokens = make(map[string]token)
	}
	if len(c.tokens) > 10000 {
		// Scopes are per repository: bound the map, dropping what expired.
		for k, old := range c.tokens {
			if !time.Now().Before(old.expires) {
				delete(c.tokens, k)
			}
		}
	}
	c.tokens[key] = t
}

func (c *tokenCache) drop(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.tokens, key)
}

// tokenResponse is a token endpoint's answer.
type tokenResponse struct {
	Token       string `json:"token"`
	AccessToken string `json:"access_token"`
	ExpiresIn   int    `json:"expires_in"`
	IssuedAt    string `json:"issued_at"`
}

// fetchToken asks the realm for a token. Tokens are used until shortly
// before they expire (expires_in, 60 s when the server says nothing, as the
// spec's default).
func (u *upstream) fetchToken(ctx context.Context, realm *url.URL, service, scope string) (token, error) {
	q := realm.Query()
	if service != "" {
		q.Set("service", service)
	}
	if scope != "" {
		q.Set("scope", scope)
	}
	tu := *realm
	tu.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, tu.String(), nil)
	if err != nil {
		return token{}, err
	}
	req.Header.Set("User-Agent", u.userAgent)
	if u.creds != nil && trustedRealm(u.base, realm) {
		if user, pass, ok := u.creds.basic(ctx); ok {
			req.SetBasicAuth(user, pass)
		}
	}
	start := time.Now()
	resp, err := u.client.Do(req)
	if err != nil {
		u.m.tokenFetches.WithLabelValues(u.name, "error").Inc()
		return token{}, unavailable(u.name, err, "token request to %s", realm.Host)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		u.m.tokenFetches.WithLabelValues(u.name, "refused").Inc()
		e := statusError(u.name, resp, "token request to "+realm.Host)
		if e.kind == kindNotFound {
			e.kind = kindUnavailable // a realm that is not there is a broken upstream
		}
		return token{}, e
	}
	var tr tokenResponse
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&tr); err != nil {
		u.m.tokenFetches.WithLabelValues(u.name, "error").Inc()
		return token{}, unavailable(u.name, err, "token response from %s", realm.Host)
	}
	v := tr.Token
	if v == "" {
		v = tr.AccessToken
	}
	if v == "" {
		u.m.tokenFetches.WithLabelValues(u.name, "error").Inc()
		return token{}, unavailable(u.name, nil, "token response from %s has no token", realm.Host)
	}
	u.m.tokenFetches.WithLabelValues(u.name, "ok").Inc()
	life := time.Duration(tr.ExpiresIn) * time.Second
	if life <= 0 {
		life = 60 * time.Second
	}
	issued := start
	if t, err := time.Parse(time.RFC3339, tr.IssuedAt); err == nil && t.Before(start) && start.Sub(t) < life {
		issued = t
	}
	// A margin for the time the request takes to reach the upstream and
	// for clock differences.
	margin := min(life/10, 30*time.Second)
	return token{value: v, expires: issued.Add(life - margin)}, nil
}

// bearer returns a token for scope from the challenge's realm, cached.
func (u *upstream) bearer(ctx context.Context, c challenge, scope string) (string, string, error) {
	realmStr := c.params["realm"]
	realm, err := url.Parse(realmStr)
	if err != nil || (realm.Scheme != "http" && realm.Scheme != "https") || realm.Host == "" {
		return "", "", unavailable(u.name, err, "bearer challenge with an unusable realm %q", clip(realmStr, 100))
	}
	service := c.params["service"]
	key := tokenKey(realmStr, service, scope)
	if v, ok := u.tokens.get(key, time.Now()); ok {
		return v, key, nil
	}
	// One request per key; the fetch runs detached from this request, so
	// a client that goes away does not fail the others waiting for it.
	t, _, err := u.tokens.flight.do(ctx, key, func() (token, error) {
		if v, ok := u.tokens.get(key, time.Now()); ok {
			return token{value: v}, nil
		}
		fctx, cancel := context.WithTimeout(context.Background(), u.timeout)
		defer cancel()
		t, err := u.fetchToken(fctx, realm, service, scope)
		if err == nil {
			u.tokens.put(key, t)
		}
		return t, err
	})
	if err != nil {
		return "", "", err
	}
	return t.value, key, nil
}
