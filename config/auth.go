package config

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Auth is the "auth" section. A nil member is an absent subsection; which
// combinations make sense is for the auth package to check (auth.New).
type Auth struct {
	Htpasswd    *AuthHtpasswd    // auth.htpasswd
	Token       *AuthToken       // auth.token
	TokenServer *AuthTokenServer // auth.tokenserver (registryd)
}

// AuthHtpasswd is auth.htpasswd.
type AuthHtpasswd struct {
	Realm string // auth.htpasswd.realm
	Path  string // auth.htpasswd.path: user:bcrypt lines (htpasswd -B)
}

// AuthToken is auth.token.
type AuthToken struct {
	Realm          string // auth.token.realm: URL of the token server
	Service        string // auth.token.service: the audience of tokens
	Issuer         string // auth.token.issuer: the iss of tokens
	RootCertBundle string // auth.token.rootcertbundle: PEM certificates of token signers
	JWKS           string // auth.token.jwks: JSON Web Key Set of token signers
}

// AuthTokenServer is auth.tokenserver: registryd's built-in token server.
type AuthTokenServer struct {
	Path        string        // auth.tokenserver.path (default /auth/token)
	Key         string        // auth.tokenserver.key: PEM private key, EC P-256 or RSA
	Certificate string        // auth.tokenserver.certificate: optional PEM certificate of the key
	Expiration  time.Duration // auth.tokenserver.expiration (default 5m)
}

// Access is the "access" section (registryd): per-repository access rules.
type Access struct {
	Groups    map[string][]string `yaml:"groups,omitempty"`
	Rules     []AccessRule        `yaml:"rules,omitempty"`
	Anonymous []AccessAnonymous   `yaml:"anonymous,omitempty"`
}

// AccessRule is one entry of access.rules.
type AccessRule struct {
	Repositories []string `yaml:"repositories"`
	Users        []string `yaml:"users,omitempty"`
	Groups       []string `yaml:"groups,omitempty"`
	Actions      []string `yaml:"actions"`
}

// AccessAnonymous is one entry of access.anonymous.
type AccessAnonymous struct {
	Repositories []string `yaml:"repositories"`
	Actions      []string `yaml:"actions"`
}

// authSchema is the "auth" section: distribution's providers, of which
// registryd implements htpasswd and token, and registryd's own token
// server.
func authSchema() *key {
	auth := impl(section(map[string]*key{
		"silly": section(map[string]*key{"realm": str(), "service": str()}),
		"token": impl(section(map[string]*key{
			"realm": impl(str()), "service": impl(str()), "issuer": impl(str()),
			"rootcertbundle": impl(str()), "jwks": impl(str()),
			"autoredirect": boolean(), "autoredirectpath": str(),
			// registryd accepts RS256 and ES256, whatever this says.
			"signingalgorithms": strs(),
		})),
		"htpasswd": impl(section(map[string]*key{"realm": impl(str()), "path": impl(str())})),
		"none":     impl(section(map[string]*key{})), // no authentication: what registryd does without auth
		// registryd's own token server (not in distribution).
		"tokenserver": impl(section(map[string]*key{
			"path": impl(str()), "key": impl(str()), "certificate": impl(str()), "expiration": impl(duration()),
		})),
	}))
	auth.perChild = true
	auth.nameForm = true
	return auth
}

// accessSchema is the "access" section (registryd, not in distribution).
func accessSchema() *key {
	return impl(section(map[string]*key{
		"groups": impl(leaf(kMap)), // group name: [users]
		"rules": impl(list(impl(section(map[string]*key{
			"repositories": impl(strs()), "users": impl(strs()), "groups": impl(strs()), "actions": impl(strs()),
		})))),
		"anonymous": impl(list(impl(section(map[string]*key{
			"repositories": impl(strs()), "actions": impl(strs()),
		})))),
	}))
}

// fillAuth reads auth and access. A subsection present, even empty, is
// configured: an empty one is then reported as missing what it needs
// rather than silently leaving the registry open.
func (p *parser) fillAuth(c *Config, str func(string, *string), strs func(string, *[]string),
	duration func(string, *time.Duration), bad func(string, string, ...any)) {
	// distribution allows one provider; registryd's token server adds the
	// pair htpasswd + token (it issues tokens against htpasswd).
	if n := p.present["auth"]; n != nil && n.Kind == yaml.MappingNode && len(n.Content) > 2 {
		var names []string
		for i := 0; i < len(n.Content); i += 2 {
			names = append(names, n.Content[i].Value)
		}
		other := slices.ContainsFunc(names, func(s string) bool { return s != "htpasswd" && s != "token" && s != "tokenserver" })
		if other || !slices.Contains(names, "tokenserver") {
			p.fail("auth", n.Content[2], "configure one authentication provider, not %d (%s); only auth.tokenserver combines htpasswd and token", len(names), strings.Join(names, ", "))
		}
	}
	if p.present["auth.htpasswd"] != nil {
		a := &AuthHtpasswd{}
		str("auth.htpasswd.realm", &a.Realm)
		str("auth.htpasswd.path", &a.Path)
		if a.Path == "" {
			bad("auth.htpasswd", "needs path: the htpasswd file (bcrypt entries, made with htpasswd -B)")
		}
		c.Auth.Htpasswd = a
	}
	if p.present["auth.token"] != nil {
		a := &AuthToken{}
		str("auth.token.realm", &a.Realm)
		str("auth.token.service", &a.Service)
		str("auth.token.issuer", &a.Issuer)
		str("auth.token.rootcertbundle", &a.RootCertBundle)
		str("auth.token.jwks", &a.JWKS)
		c.Auth.Token = a
	}
	if p.present["auth.tokenserver"] != nil {
		a := &AuthTokenServer{Path: "/auth/token"}
		str("auth.tokenserver.path", &a.Path)
		str("auth.tokenserver.key", &a.Key)
		str("auth.tokenserver.certificate", &a.Certificate)
		duration("auth.tokenserver.expiration", &a.Expiration)
		if !strings.HasPrefix(a.Path, "/") || a.Path == "/" || a.Path == "/v2" || strings.HasPrefix(a.Path, "/v2/") {
			bad("auth.tokenserver.path", "must be an absolute path outside /v2/, such as /auth/token; got %q", a.Path)
		}
		c.Auth.TokenServer = a
	}

	if p.present["access"] == nil {
		return
	}
	a := &Access{}
	if n := p.vals["access.groups"]; n != nil {
		for i := 0; i+1 < len(n.Content); i += 2 {
			name, members := n.Content[i].Value, n.Content[i+1]
			if members.Kind != yaml.SequenceNode || checkLeaf(&key{kind: kStrings}, members) != "" {
				p.fail("access.groups."+name, members, "must be a list of user names, got %s", describe(members))
				continue
			}
			if a.Groups == nil {
				a.Groups = map[string][]string{}
			}
			a.Groups[name] = stringList(members)
		}
	}
	for i := 0; p.present[fmt.Sprintf("access.rules[%d]", i)] != nil; i++ {
		path := fmt.Sprintf("access.rules[%d]", i)
		var r AccessRule
		strs(path+".repositories", &r.Repositories)
		strs(path+".users", &r.Users)
		strs(path+".groups", &r.Groups)
		strs(path+".actions", &r.Actions)
		a.Rules = append(a.Rules, r)
	}
	for i := 0; p.present[fmt.Sprintf("access.anonymous[%d]", i)] != nil; i++ {
		path := fmt.Sprintf("access.anonymous[%d]", i)
		var r AccessAnonymous
		strs(path+".repositories", &r.Repositories)
		strs(path+".actions", &r.Actions)
		a.Anonymous = append(a.Anonymous, r)
	}
	c.Access = a
}

// dumpAuth adds auth and access to a Dump, when configured.
func dumpAuth(root *yaml.Node, c *Config) {
	if a := c.Auth; a.Htpasswd != nil || a.Token != nil || a.TokenServer != nil {
		an := mapping()
		if h := a.Htpasswd; h != nil {
			addNode(an, "htpasswd", pairs("realm", h.Realm, "path", h.Path))
		}
		if t := a.Token; t != nil {
			addNode(an, "token", pairs("realm", t.Realm, "service", t.Service, "issuer", t.Issuer,
				"rootcertbundle", t.RootCertBundle, "jwks", t.JWKS))
		}
		if ts := a.TokenServer; ts != nil {
			addNode(an, "tokenserver", pairs("path", ts.Path, "key", ts.Key, "certificate", ts.Certificate,
				"expiration", fmtDuration(ts.Expiration)))
		}
		addNode(root, "auth", an)
	}
	if c.Access != nil {
		add(root, "access", c.Access)
	}
}
