package cli

import (
	"context"
	"flag"
	"fmt"
	"strings"

	"github.com/registryd/registryd/client"
)

func du() Command {
	return command("du", "[flags] HOST[:PORT][/REPO]",
		"disk usage per repository: logical, unique and exclusive bytes",
		`Shows how many bytes each repository holds, three ways:
  LOGICAL    the images added up, each once however many tags it has (a
             layer shared by two images counts twice);
  UNIQUE     each distinct blob and manifest of the repository once;
  EXCLUSIVE  what no other repository references: the bytes that deleting
             the repository, then collecting garbage, frees.
With a repository, that one; without, every repository (--prefix narrows).

A registryd with the admin API answers from its index. Against any other
registry the sizes are computed from the manifests: every tag of every
repository is read (exclusive bytes need to know what the others reference),
with a progress bar on a terminal. The V2 API cannot see untagged manifests,
so what only they hold is not counted there.

Examples:
  registryd du localhost:5000
  registryd du localhost:5000/team/app
  registryd du --prefix team/ registry.example.com
  registryd du --format json localhost:5000 | jq -s 'sort_by(-.exclusive)'`,
		func(fs *flag.FlagSet, c *common) func(context.Context, *Streams, []string) error {
			var prefix string
			var format formatFlag
			fs.StringVar(&prefix, "prefix", "", "only repositories whose name starts with this `prefix`")
			format.define(fs)
			return func(ctx context.Context, s *Streams, args []string) error {
				ref, out, cl, err := c.start(args, "registry or repository (HOST[:PORT][/REPO])", needHost, &format)
				if err != nil {
					return err
				}
				if ref.Repository != "" && prefix != "" {
					return usagef("--prefix goes with a registry, not a repository")
				}
				rows, err := diskUsage(ctx, s, cl, ref, prefix)
				if err != nil {
					return err
				}
				if ref.Repository != "" && len(rows) == 0 {
					return &client.NotFoundError{What: "repository " + ref.Repository}
				}
				table := "table {{.Repository}}\t{{.Tags}}\t{{size .Logical}}\t{{size .Unique}}\t{{size .Exclusive}}"
				return out.list(s.Out, table, rows)
			}
		})
}

// diskUsage is du's rows: from the admin API when the server has it, else
// computed from the manifests.
func diskUsage(ctx context.Context, s *Streams, cl *client.Client, ref client.Reference, prefix string) ([]client.RepoUsage, error) {
	info, err := cl.Admin(ctx, ref.Host)
	if err != nil {
		return nil, err
	}
	if info != nil && info.Features.Sizes {
		if ref.Repository != "" {
			r, err := cl.AdminRepository(ctx, ref)
			if err != nil {
				return nil, err
			}
			if r.Size == nil {
				return nil, fmt.Errorf("%s: the admin API gave no size for %s", ref.Host, ref.Repository)
			}
			return []client.RepoUsage{{Repository: r.Name, Tags: r.TagCount, Logical: r.Size.Logical, Unique: r.Size.Unique, Exclusive: r.Size.Exclusive}}, nil
		}
		repos, err := cl.AdminRepositories(ctx, ref.Host, prefix)
		if err != nil {
			return nil, err
		}
		var rows []client.RepoUsage
		for _, r := range repos {
			row := client.RepoUsage{Repository: r.Name, Tags: r.TagCount, Logical: -1, Unique: -1, Exclusive: -1}
			if r.Size != nil {
				row.Logical, row.Unique, row.Exclusive = r.Size.Logical, r.Size.Unique, r.Size.Exclusive
			}
			rows = append(rows, row)
		}
		return rows, nil
	}
	repos, err := cl.Repositories(ctx, ref.Host)
	if err != nil {
		return nil, err
	}
	want := func(name string) bool {
		if ref.Repository != "" {
			return name == ref.Repository
		}
		return strings.HasPrefix(name, prefix)
	}
	bar := s.progress("reading repositories", len(repos))
	usage, err := cl.ComputeUsage(ctx, ref.Host, repos, want, func(done, total int) { bar.set(done, total) })
	bar.finish()
	if err != nil {
		return nil, err
	}
	return usage, nil
}
