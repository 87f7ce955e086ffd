package cli

import (
	"context"
	"slices"
	"strings"

	dockerconfig "github.com/docker/cli/cli/config"

	"github.com/registryd/registryd/client"
)

// CompleteReference lists completions of a reference being typed, for the
// shell completion scripts: the registries in docker's config while no "/"
// is typed, then the catalog's repositories, then the repository's tags
// after a ":". Loopback registries only, or those with credentials: TAB
// never sends a request to a host nobody logged in to. Errors give no
// completions.
func CompleteReference(ctx context.Context, word string) []string {
	host, rest, slash := strings.Cut(word, "/")
	if !slash {
		var out []string
		for _, h := range configuredRegistries() {
			if strings.HasPrefix(h, word) {
				out = append(out, h+"/")
			}
		}
		return out
	}
	if !client.IsLoopback(host) && !slices.Contains(configuredRegistries(), host) {
		return nil
	}
	cl, err := client.New(client.Options{UserAgent: "registryd-cli/" + Version})
	if err != nil {
		return nil
	}
	if repo, tagPrefix, ok := strings.Cut(rest, ":"); ok {
		ref, err := client.ParseReference(host + "/" + repo)
		if err != nil {
			return nil
		}
		tags, err := cl.Tags(ctx, ref)
		if err != nil {
			return nil
		}
		var out []string
		for _, t := range tags {
			if strings.HasPrefix(t, tagPrefix) {
				out = append(out, host+"/"+repo+":"+t)
			}
		}
		return out
	}
	repos, err := cl.Repositories(ctx, host)
	if err != nil {
		return nil
	}
	var out []string
	for _, r := range repos {
		if strings.HasPrefix(r, rest) {
			out = append(out, host+"/"+r)
		}
	}
	return out
}

// configuredRegistries are the registries docker's config has credentials
// for.
func configuredRegistries() []string {
	cf, err := dockerconfig.Load(dockerconfig.Dir())
	if err != nil {
		return nil
	}
	var hosts []string
	for k := range cf.GetAuthConfigs() {
		k = strings.TrimPrefix(strings.TrimPrefix(k, "https://"), "http://")
		k, _, _ = strings.Cut(k, "/")
		if k != "" && !slices.Contains(hosts, k) {
			hosts = append(hosts, k)
		}
	}
	slices.Sort(hosts)
	return hosts
}
