package retention

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/registryd/registryd/config"
	"github.com/registryd/registryd/internal/repoglob"
)

// Settings are storage.maintenance.retention: the guards and the policies.
// The server reads them from its configuration (FromConfig); the CLI may
// build them itself. Compile checks them.
type Settings struct {
	// DryRun decides and reports but deletes nothing.
	DryRun bool
	// Delay is how long an untagged manifest is kept after it was last
	// pushed or tagged, before a policy with DeleteUntagged removes it.
	Delay time.Duration
	// MaxDeletionsPerRun caps the deletions (tags and untagged manifests)
	// of one run; the rest wait for the next run. At least 1.
	MaxDeletionsPerRun int
	// MaxShare refuses to touch a repository when a run would delete more
	// than this share of its tags: 0 < MaxShare <= 1 (1 turns it off).
	MaxShare float64
	// Policies are matched in order against the repository name; the first
	// match decides, and a repository that matches none keeps everything.
	Policies []Policy
}

// Policy is one element of policies.
type Policy struct {
	// Repositories are globs (internal/repoglob: "*" within a component,
	// "**" for any number of components).
	Repositories []string
	// DeleteUntagged removes manifests that no tag reaches, once older than
	// Settings.Delay.
	DeleteUntagged bool
	// KeepTags are OR-ed: a tag is kept when any rule keeps it. A policy
	// without rules deletes no tag (only untagged manifests, if asked).
	KeepTags []KeepRule
}

// KeepRule is one element of keeptags. Patterns alone keep every tag they
// match, always. With other criteria, patterns narrow the rule to the
// tags they match (the N most recently pushed of the tags matching
// ^env18-), and the criteria are OR-ed.
type KeepRule struct {
	Patterns                []string      // regular expressions (RE2), unanchored unless anchored
	MostRecentlyPushedCount int           // keep the N tags pushed last
	MostRecentlyPulledCount int           // keep the N tags pulled last (tags never pulled are not among them)
	PushedWithin            time.Duration // keep tags pushed at most this long ago
	PulledWithin            time.Duration // keep tags pulled (or, never pulled, pushed) at most this long ago
}

// Defaults of the guards, as in config.
const (
	DefaultDelay              = 24 * time.Hour
	DefaultMaxDeletionsPerRun = 1000
	DefaultMaxShare           = 0.5
)

// FromConfig turns the configuration's retention section into Settings.
func FromConfig(c config.Retention) Settings {
	s := Settings{DryRun: c.DryRun, Delay: c.Delay, MaxDeletionsPerRun: c.MaxDeletionsPerRun, MaxShare: c.MaxShare}
	for _, p := range c.Policies {
		pol := Policy{Repositories: append([]string(nil), p.Repositories...), DeleteUntagged: p.DeleteUntagged}
		for _, k := range p.KeepTags {
			pol.KeepTags = append(pol.KeepTags, KeepRule{
				Patterns:                append([]string(nil), k.Patterns...),
				MostRecentlyPushedCount: k.MostRecentlyPushedCount,
				MostRecentlyPulledCount: k.MostRecentlyPulledCount,
				PushedWithin:            k.PushedWithin,
				PulledWithin:            k.PulledWithin,
			})
		}
		s.Policies = append(s.Policies, pol)
	}
	return s
}

// Engine decides, for one repository at a time, which tags and untagged
// manifests go. It holds no storage: the server's runner and the CLI feed
// it what they learned, so both apply the same rules.
type Engine struct {
	settings Settings
	policies []*compiledPolicy
}

type compiledPolicy struct {
	name           string // the globs as written, joined by ","
	globs          []repoglob.Pattern
	deleteUntagged bool
	rules          []*compiledRule
}

type compiledRule struct {
	index        int
	patterns     []*regexp.Regexp
	patternsOnly bool
	pushedCount  int
	pulledCount  int
	pushedWithin time.Duration
	pulledWithin time.Duration
}

// Compile checks s and prepares it. Errors name the key as the
// configuration does (policies[0].keeptags[1].patterns[0]).
func Compile(s Settings) (*Engine, error) {
	if s.Delay < 0 {
		return nil, fmt.Errorf("delay: must not be negative, got %s", s.Delay)
	}
	if s.MaxDeletionsPerRun < 1 {
		return nil, fmt.Errorf("maxdeletionsperrun: must be at least 1, got %d (a large number, not 0, lifts the cap)", s.MaxDeletionsPerRun)
	}
	if !(s.MaxShare > 0 && s.MaxShare <= 1) {
		return nil, fmt.Errorf("maxshare: must be more than 0 and at most 1 (1 turns the guard off), got %g", s.MaxShare)
	}
	e := &Engine{settings: s}
	for i, p := range s.Policies {
		where := fmt.Sprintf("policies[%d]", i)
		cp := &compiledPolicy{name: strings.Join(p.Repositories, ","), deleteUntagged: p.DeleteUntagged}
		if len(p.Repositories) == 0 {
			return nil, fmt.Errorf("%s.repositories: at least one repository pattern is needed (\"**\" matches every repository)", where)
		}
		for j, r := range p.Repositories {
			g, err := repoglob.Compile(r)
			if err != nil {
				return nil, fmt.Errorf("%s.repositories[%d]: %w", where, j, err)
			}
			cp.globs = append(cp.globs, g)
		}
		for j, k := range p.KeepTags {
			cr, err := compileRule(fmt.Sprintf("%s.keeptags[%d]", where, j), j, k)
			if err != nil {
				return nil, err
			}
			cp.rules = append(cp.rules, cr)
		}
		e.policies = append(e.policies, cp)
	}
	return e, nil
}

func compileRule(where string, index int, k KeepRule) (*compiledRule, error) {
	cr := &compiledRule{
		index: index, pushedCount: k.MostRecentlyPushedCount, pulledCount: k.MostRecentlyPulledCount,
		pushedWithin: k.PushedWithin, pulledWithin: k.PulledWithin,
	}
	for i, p := range k.Patterns {
		re, err := regexp.Compile(p)
		if err != nil {
			return nil, fmt.Errorf("%s.patterns[%d]: %q is not a regular expression: %v", where, i, p, err)
		}
		cr.patterns = append(cr.patterns, re)
	}
	switch {
	case k.MostRecentlyPushedCount < 0:
		return nil, fmt.Errorf("%s.mostrecentlypushedcount: must not be negative, got %d", where, k.MostRecentlyPushedCount)
	case k.MostRecentlyPulledCount < 0:
		return nil, fmt.Errorf("%s.mostrecentlypulledcount: must not be negative, got %d", where, k.MostRecentlyPulledCount)
	case k.PushedWithin < 0:
		return nil, fmt.Errorf("%s.pushedwithin: must not be negative, got %s", where, k.PushedWithin)
	case k.PulledWithin < 0:
		return nil, fmt.Errorf("%s.pulledwithin: must not be negative, got %s", where, k.PulledWithin)
	}
	criteria := k.MostRecentlyPushedCount > 0 || k.MostRecentlyPulledCount > 0 || k.PushedWithin > 0 || k.PulledWithin > 0
	if !criteria && len(k.Patterns) == 0 {
		// An empty rule would keep nothing; the operator meant something.
		return nil, fmt.Errorf("%s: keeps nothing: give patterns, mostrecentlypushedcount, mostrecentlypulledcount, pushedwithin or pulledwithin", where)
	}
	cr.patternsOnly = !criteria
	return cr, nil
}

// Settings returns the settings the engine was compiled from.
func (e *Engine) Settings() Settings { return e.settings }

// Policy returns the policy that applies to the repository: its name (its
// globs as written) and whether it deletes untagged manifests; ok is false
// when none does (the repository keeps everything).
func (e *Engine) Policy(repo string) (name string, deleteUntagged, ok bool) {
	if p := e.match(repo); p != nil {
		return p.name, p.deleteUntagged, true
	}
	return "", false, false
}

func (e *Engine) match(repo string) *compiledPolicy {
	for _, p := range e.policies {
		for _, g := range p.globs {
			if g.Match(repo) {
				return p
			}
		}
	}
	return nil
}

// scoped reports whether the rule's patterns admit tag (no patterns: all).
func (r *compiledRule) scoped(tag string) bool {
	if len(r.patterns) == 0 {
		return true
	}
	for _, re := range r.patterns {
		if re.MatchString(tag) {
			return true
		}
	}
	return false
}

// matchingPattern is the first of the rule's patterns that matches tag.
func (r *compiledRule) matchingPattern(tag string) string {
	for _, re := range r.patterns {
		if re.MatchString(tag) {
			return re.String()
		}
	}
	return ""
}
