package auth

import (
	"fmt"
	"sort"
	"strings"

	"github.com/registryd/registryd/internal/repoglob"
)

// AccessConfig holds per-repository access rules: what distribution cannot
// express without an external token server. A caller may do an action on a
// repository if any rule that applies to it grants the action on a pattern
// the repository matches; rules only ever grant, nothing denies.
type AccessConfig struct {
	// Groups name sets of users for rules to refer to.
	Groups map[string][]string
	// Rules grant actions to authenticated users.
	Rules []Rule
	// Anonymous rules grant actions to callers without credentials (and,
	// since logging in should never lose access, to everyone).
	Anonymous []AnonymousRule
}

// Rule grants Actions on the repositories matching any of Repositories to
// the Users listed (by name, or "*" for every authenticated user) and to
// the members of Groups.
type Rule struct {
	Repositories []string
	Users        []string
	Groups       []string
	// Actions are pull, push and delete, or "*" for all three. Pushing
	// also needs pull (clients read what they write), as in Docker's
	// token scopes: list both. admin (never part of "*") grants the
	// registry-wide administration of the admin API; it is only accepted
	// in a rule over every repository ("**").
	Actions []string
}

// AnonymousRule grants Actions on Repositories to unauthenticated callers.
type AnonymousRule struct {
	Repositories []string
	Actions      []string
}

// actionSet is a set of repository actions as bits.
type actionSet uint8

const (
	actPull actionSet = 1 << iota
	actPush
	actDelete
	actAdmin
	actAll = actPull | actPush | actDelete
)

func actionBit(a string) actionSet {
	switch a {
	case ActionPull:
		return actPull
	case ActionPush:
		return actPush
	case ActionDelete:
		return actDelete
	case ActionAdmin:
		return actAdmin
	case "*":
		return actAll
	}
	return 0
}

// names lists the actions in the set, in a fixed order.
func (s actionSet) names() []string {
	var out []string
	for _, a := range []string{ActionPull, ActionPush, ActionDelete, ActionAdmin} {
		if s&actionBit(a) != 0 {
			out = append(out, a)
		}
	}
	return out
}

// policy is a compiled AccessConfig. The nil policy is distribution's
// behaviour with htpasswd and no rules: every authenticated user may do
// everything, anonymous callers nothing.
type policy struct {
	rules     []compiledRule
	anonymous []compiledRule
}

type compiledRule struct {
	patterns []repoglob.Pattern
	anyUser  bool
	users    map[string]bool // users named directly or through a group
	actions  actionSet
}

// compilePolicy validates cfg; errors name the rule so that an operator can
// find it.
func compilePolicy(cfg *AccessConfig) (*policy, error) {
	if cfg == nil {
		return nil, nil
	}
	p := &policy{}
	for g, members := range cfg.Groups {
		if g == "" {
			return nil, fmt.Errorf("access.groups: a group has an empty name")
		}
		for _, u := range members {
			if u == "" || u == "*" {
				return nil, fmt.Errorf("access.groups.%s: %q is not a user name", g, u)
			}
		}
	}
	for i, r := range cfg.Rules {
		where := fmt.Sprintf("access.rules[%d]", i)
		cr, err := compileRule(where, r.Repositories, r.Actions)
		if err != nil {
			return nil, err
		}
		if len(r.Users) == 0 && len(r.Groups) == 0 {
			return nil, fmt.Errorf("%s: names no users and no groups, so it grants nothing (users: [\"*\"] means every authenticated user)", where)
		}
		cr.users = map[string]bool{}
		for _, u := range r.Users {
			switch u {
			case "":
				return nil, fmt.Errorf("%s.users: empty user name", where)
			case "*":
				cr.anyUser = true
			default:
				cr.users[u] = true
			}
		}
		for _, g := range r.Groups {
			members, ok := cfg.Groups[g]
			if !ok {
				return nil, fmt.Errorf("%s.groups: no group %q in access.groups", where, g)
			}
			for _, u := range members {
				cr.users[u] = true
			}
		}
		p.rules = append(p.rules, cr)
	}
	for i, r := range cfg.Anonymous {
		where := fmt.Sprintf("access.anonymous[%d]", i)
		cr, err := compileRule(where, r.Repositories, r.Actions)
		if err != nil {
			return nil, err
		}
		if cr.actions&actAdmin != 0 {
			return nil, fmt.Errorf("%s.actions: admin cannot be granted to anonymous callers", where)
		}
		p.anonymous = append(p.anonymous, cr)
	}
	return p, nil
}

func compileRule(where string, repos, actions []string) (compiledRule, error) {
	var cr compiledRule
	if len(repos) == 0 {
		return cr, fmt.Errorf("%s.repositories: at least one repository pattern is needed (\"**\" matches every repository)", where)
	}
	for _, r := range repos {
		pt, err := repoglob.Compile(r)
		if err != nil {
			return cr, fmt.Errorf("%s.repositories: %w", where, err)
		}
		cr.patterns = append(cr.patterns, pt)
	}
	if len(actions) == 0 {
		return cr, fmt.Errorf("%s.actions: at least one action is needed (pull, push, delete or *)", where)
	}
	for _, a := range actions {
		b := actionBit(a)
		if b == 0 {
			return cr, fmt.Errorf("%s.actions: unknown action %q (pull, push, delete or *)", where, a)
		}
		cr.actions |= b
	}
	if cr.actions&actAdmin != 0 && !containsString(repos, "**") {
		return cr, fmt.Errorf("%s: admin is registry-wide (collection, retention, usage of every repository): grant it in a rule on repositories [\"**\"]", where)
	}
	return cr, nil
}

// actions returns what user ("" for an anonymous caller) may do on repo.
func (p *policy) actions(user, repo string) actionSet {
	if p == nil {
		if user != "" {
			return actAll
		}
		return 0
	}
	var s actionSet
	for i := range p.anonymous {
		if p.anonymous[i].matches(repo) {
			s |= p.anonymous[i].actions
		}
	}
	if user == "" {
		return s
	}
	for i := range p.rules {
		r := &p.rules[i]
		if (r.anyUser || r.users[user]) && r.matches(repo) {
			s |= r.actions
		}
	}
	return s
}

// allowed answers for one access. Listing the catalog is open to every
// authenticated user, and to anonymous callers where some anonymous rule
// lets them pull: the API filters the list down to what the caller may
// pull, so the catalog shows no name the caller could not learn otherwise.
func (p *policy) allowed(user string, a Access) bool {
	switch a.Type {
	case "repository":
		b := actionBit(a.Action)
		return b != 0 && b != actAdmin && a.Action != "*" && p.actions(user, a.Name)&b == b
	case Catalog.Type:
		if a == Admin {
			return user != "" && p.admin(user)
		}
		if a != Catalog {
			return false
		}
		if user != "" {
			return true
		}
		if p == nil {
			return false
		}
		for _, r := range p.anonymous {
			if r.actions&actPull != 0 {
				return true
			}
		}
	}
	return false
}

// admin reports whether user may administer the registry: any
// authenticated user under the nil policy (distribution's "every user may
// do everything"), else a user named by a rule granting admin.
func (p *policy) admin(user string) bool {
	if p == nil {
		return true
	}
	for i := range p.rules {
		r := &p.rules[i]
		if r.actions&actAdmin != 0 && (r.anyUser || r.users[user]) {
			return true
		}
	}
	return false
}

func (r *compiledRule) matches(repo string) bool {
	for _, p := range r.patterns {
		if p.Match(repo) {
			return true
		}
	}
	return false
}

// String lists the rules compactly, for the startup log.
func (p *policy) String() string {
	if p == nil {
		return "every authenticated user may do everything"
	}
	var parts []string
	for _, r := range p.rules {
		users := make([]string, 0, len(r.users))
		for u := range r.users {
			users = append(users, u)
		}
		sort.Strings(users)
		if r.anyUser {
			users = append([]string{"*"}, users...)
		}
		parts = append(parts, fmt.Sprintf("%s: %s on %s", strings.Join(users, ","), strings.Join(r.actions.names(), ","), r.patternList()))
	}
	for _, r := range p.anonymous {
		parts = append(parts, fmt.Sprintf("anonymous: %s on %s", strings.Join(r.actions.names(), ","), r.patternList()))
	}
	return strings.Join(parts, "; ")
}

func (r *compiledRule) patternList() string {
	raw := make([]string, len(r.patterns))
	for i, p := range r.patterns {
		raw[i] = p.String()
	}
	return strings.Join(raw, ",")
}
