package config

import (
	"fmt"
	"regexp"
	"slices"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/registryd/registryd/internal/repoglob"
)

// retentionSchema is storage.maintenance.retention. Distribution parses
// storage.maintenance as free-form parameters, so a file with this section
// still starts the reference registry.
func retentionSchema() *key {
	keepTags := impl(section(map[string]*key{
		"patterns":                impl(strs()),
		"mostrecentlypushedcount": impl(integer()),
		"mostrecentlypulledcount": impl(integer()),
		"pushedwithin":            impl(duration()),
		"pulledwithin":            impl(duration()),
	}))
	policy := impl(section(map[string]*key{
		"repositories":   impl(strs()),
		"deleteuntagged": impl(boolean()),
		"keeptags":       impl(list(keepTags)),
	}))
	return impl(section(map[string]*key{
		"dryrun":             impl(boolean()),
		"delay":              impl(duration()),
		"maxdeletionsperrun": impl(integer()),
		"maxshare":           impl(float()),
		"interval":           impl(duration()),
		"policies":           impl(list(policy)),
	}))
}

func defaultRetention() Retention {
	return Retention{Delay: 24 * time.Hour, MaxDeletionsPerRun: 1000, MaxShare: 0.5, Interval: 24 * time.Hour}
}

// fillRetention reads storage.maintenance.retention and checks what the
// types cannot: ranges, globs and regular expressions, so that a policy
// that could not run stops startup with the key and line, rather than
// failing at its first run.
func (p *parser) fillRetention(c *Config, boolean func(string, *bool), integer func(string, *int),
	duration func(string, *time.Duration), strs func(string, *[]string), bad func(string, string, ...any)) {
	const k = "storage.maintenance.retention."
	r := &c.Storage.Maintenance.Retention
	boolean(k+"dryrun", &r.DryRun)
	duration(k+"delay", &r.Delay)
	duration(k+"interval", &r.Interval)
	integer(k+"maxdeletionsperrun", &r.MaxDeletionsPerRun)
	if r.MaxDeletionsPerRun < 1 {
		bad(k+"maxdeletionsperrun", "must be at least 1, got %d (a large number, not 0, lifts the cap)", r.MaxDeletionsPerRun)
	}
	if n := p.vals[k+"maxshare"]; n != nil {
		_ = n.Decode(&r.MaxShare) // checked by walk
		if !(r.MaxShare > 0 && r.MaxShare <= 1) {
			bad(k+"maxshare", "must be more than 0 and at most 1 (a share of a repository's tags; 1 turns the guard off), got %s", n.Value)
		}
	}
	everything := "" // a policy matching every repository: those after it never apply
	for i := 0; p.present[fmt.Sprintf("%spolicies[%d]", k, i)] != nil; i++ {
		path := fmt.Sprintf("%spolicies[%d]", k, i)
		node := p.present[path]
		if node.Kind != yaml.MappingNode {
			continue // walk reported it
		}
		var pol RetentionPolicy
		strs(path+".repositories", &pol.Repositories)
		boolean(path+".deleteuntagged", &pol.DeleteUntagged)
		if len(pol.Repositories) == 0 {
			p.fail(path, node, "needs repositories: the globs of the repositories it applies to (\"**\" is every repository)")
		}
		for j, g := range pol.Repositories {
			if _, err := repoglob.Compile(g); err != nil {
				p.fail(fmt.Sprintf("%s.repositories[%d]", path, j), listElem(p.vals[path+".repositories"], j), "%v", err)
			}
		}
		if everything != "" {
			p.warnings = append(p.warnings, fmt.Sprintf("%s never applies: %s matches every repository first", path, everything))
		} else if slices.Contains(pol.Repositories, "**") {
			everything = path
		}
		for j := 0; p.present[fmt.Sprintf("%s.keeptags[%d]", path, j)] != nil; j++ {
			kp := fmt.Sprintf("%s.keeptags[%d]", path, j)
			kn := p.present[kp]
			if kn.Kind != yaml.MappingNode {
				continue
			}
			var kt KeepTags
			strs(kp+".patterns", &kt.Patterns)
			integer(kp+".mostrecentlypushedcount", &kt.MostRecentlyPushedCount)
			integer(kp+".mostrecentlypulledcount", &kt.MostRecentlyPulledCount)
			duration(kp+".pushedwithin", &kt.PushedWithin)
			duration(kp+".pulledwithin", &kt.PulledWithin)
			for m, pat := range kt.Patterns {
				if _, err := regexp.Compile(pat); err != nil {
					p.fail(fmt.Sprintf("%s.patterns[%d]", kp, m), listElem(p.vals[kp+".patterns"], m), "%q is not a regular expression: %v", pat, err)
				}
			}
			if kt.MostRecentlyPushedCount < 0 {
				bad(kp+".mostrecentlypushedcount", "must not be negative, got %d", kt.MostRecentlyPushedCount)
			}
			if kt.MostRecentlyPulledCount < 0 {
				bad(kp+".mostrecentlypulledcount", "must not be negative, got %d", kt.MostRecentlyPulledCount)
			}
			if len(kt.Patterns) == 0 && kt.MostRecentlyPushedCount <= 0 && kt.MostRecentlyPulledCount <= 0 && kt.PushedWithin <= 0 && kt.PulledWithin <= 0 {
				p.fail(kp, kn, "keeps nothing: give patterns, mostrecentlypushedcount, mostrecentlypulledcount, pushedwithin or pulledwithin")
			}
			pol.KeepTags = append(pol.KeepTags, kt)
		}
		r.Policies = append(r.Policies, pol)
	}
}

// listElem is element i of a list node, or the node itself (a single
// string given for a list).
func listElem(n *yaml.Node, i int) *yaml.Node {
	if n != nil && n.Kind == yaml.SequenceNode && i < len(n.Content) {
		return n.Content[i]
	}
	return n
}

// cloneRetention copies the policies, for Redacted's deep copy.
func cloneRetention(r Retention) Retention {
	out := r
	out.Policies = nil
	for _, p := range r.Policies {
		q := p
		q.Repositories = slices.Clone(p.Repositories)
		q.KeepTags = nil
		for _, k := range p.KeepTags {
			k.Patterns = slices.Clone(k.Patterns)
			q.KeepTags = append(q.KeepTags, k)
		}
		out.Policies = append(out.Policies, q)
	}
	return out
}

// dumpRetention is storage.maintenance.retention in a Dump: every key,
// and in each keep rule the keys it sets.
func dumpRetention(r Retention) *yaml.Node {
	n := pairs("dryrun", r.DryRun, "delay", fmtDuration(r.Delay), "maxdeletionsperrun", r.MaxDeletionsPerRun,
		"maxshare", r.MaxShare, "interval", fmtDuration(r.Interval))
	pols := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
	for _, p := range r.Policies {
		pn := pairs("repositories", p.Repositories, "deleteuntagged", p.DeleteUntagged)
		kts := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		for _, k := range p.KeepTags {
			kn := mapping()
			if len(k.Patterns) > 0 {
				add(kn, "patterns", k.Patterns)
			}
			if k.MostRecentlyPushedCount != 0 {
				add(kn, "mostrecentlypushedcount", k.MostRecentlyPushedCount)
			}
			if k.MostRecentlyPulledCount != 0 {
				add(kn, "mostrecentlypulledcount", k.MostRecentlyPulledCount)
			}
			if k.PushedWithin != 0 {
				add(kn, "pushedwithin", fmtDuration(k.PushedWithin))
			}
			if k.PulledWithin != 0 {
				add(kn, "pulledwithin", fmtDuration(k.PulledWithin))
			}
			kts.Content = append(kts.Content, kn)
		}
		if len(kts.Content) == 0 {
			kts.Style = yaml.FlowStyle
		}
		addNode(pn, "keeptags", kts)
		pols.Content = append(pols.Content, pn)
	}
	if len(pols.Content) == 0 {
		pols.Style = yaml.FlowStyle
	}
	addNode(n, "policies", pols)
	return n
}
