package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/registryd/registryd/api/admin"
	"github.com/registryd/registryd/client"
)

// ---------------------------------------------------------------- repo ls

// repoRow is one repository of `repo ls`. Without the admin API only the
// name is known. Templates see the JSON's fields: {{.Tags}},
// {{.LastPushed}}, {{.Size.Unique}}.
type repoRow struct {
	Repository string      `json:"repository"`
	Tags       *int        `json:"tags,omitempty"`
	LastPushed *time.Time  `json:"lastPushed,omitempty"`
	Size       *admin.Size `json:"size,omitempty"`
}

// TagCount is the number of tags, 0 when unknown (kept for templates
// written before Tags).
func (r repoRow) TagCount() int {
	if r.Tags == nil {
		return 0
	}
	return *r.Tags
}

// Unique is the repository's distinct bytes, -1 when unknown (shown "-").
func (r repoRow) Unique() int64 {
	if r.Size == nil {
		return -1
	}
	return r.Size.Unique
}

func repoLs() Command {
	return command("repo ls", "[flags] HOST[:PORT]",
		"list repositories (the whole catalog, every page)",
		`Lists the registry's repositories, following the catalog's pagination to
the end. From a registryd with the admin API, each comes with its tag count,
size (each blob and manifest it holds counted once; registryd du shows the
bytes three ways) and last push time; from other registries, the names.

Examples:
  registryd repo ls localhost:5000
  registryd repo ls --prefix team/ registry.example.com
  registryd repo ls --format '{{.Repository}}' localhost:5000 | xargs ...
  registryd repo ls --format json localhost:5000`,
		func(fs *flag.FlagSet, c *common) func(context.Context, *Streams, []string) error {
			var prefix string
			var format formatFlag
			fs.StringVar(&prefix, "prefix", "", "only repositories whose name starts with this `prefix` (team/)")
			format.define(fs)
			return func(ctx context.Context, s *Streams, args []string) error {
				ref, out, cl, err := c.start(args, "registry (HOST[:PORT])", needHost, &format)
				if err != nil {
					return err
				}
				if ref.Repository != "" { // "host/team" reads as a prefix
					prefix = ref.Repository + "/" + strings.TrimPrefix(prefix, ref.Repository+"/")
					prefix = strings.TrimSuffix(prefix, "/") + "/"
				}
				info, err := cl.Admin(ctx, ref.Host)
				if err != nil {
					return err
				}
				var rows []repoRow
				table := "table {{.Repository}}"
				var headers []string
				if info != nil {
					repos, err := cl.AdminRepositories(ctx, ref.Host, prefix)
					if err != nil {
						return err
					}
					for _, r := range repos {
						n := r.TagCount
						rows = append(rows, repoRow{Repository: r.Name, Tags: &n, LastPushed: r.LastPushed, Size: r.Size})
					}
					table = "table {{.Repository}}\t{{.TagCount}}\t{{size .Unique}}\t{{time .LastPushed}}"
					headers = []string{"REPOSITORY", "TAGS", "SIZE", "LAST PUSHED"}
				} else {
					names, err := cl.Repositories(ctx, ref.Host)
					if err != nil {
						return err
					}
					for _, n := range names {
						if strings.HasPrefix(n, prefix) {
							rows = append(rows, repoRow{Repository: n})
						}
					}
				}
				return out.list(s.Out, table, rows, headers...)
			}
		})
}

// ---------------------------------------------------------------- tag ls

// tagRow is one tag of `tag ls`: admin.Tag's fields (all of them from the
// admin API; name, digest and media type from the V2 API), plus the
// image's creation time with --sort created.
type tagRow struct {
	admin.Tag
	Created *time.Time `json:"created,omitempty"`
}

// Platform is the platforms joined by commas, "-" when unknown.
func (t tagRow) Platform() string {
	if len(t.Platforms) == 0 {
		return "-"
	}
	return strings.Join(t.Platforms, ",")
}

// Type is the media type's short name: "oci index", "docker manifest".
func (t tagRow) Type() string { return shortType(t.MediaType) }

func shortType(mt string) string {
	switch mt {
	case client.MediaTypeOCIIndex:
		return "oci index"
	case client.MediaTypeOCIManifest:
		return "oci manifest"
	case client.MediaTypeDockerList:
		return "docker list"
	case client.MediaTypeDockerManifest:
		return "docker manifest"
	case "":
		return "-"
	}
	return mt
}

func tagLs() Command {
	return command("tag ls", "[flags] HOST[:PORT]/REPO",
		"list a repository's tags with their digests",
		`Lists the tags of a repository with the digest each points to. From a
registryd with the admin API, also platforms, size and push time; --sort
pushed lists the newest push first (only registries that record push times
have them: elsewhere the command says so and fails). --sort created orders by
the image's own creation time (its config's "created", which reproducible
builds set to 1970), read from every image: slower, and works everywhere.

Examples:
  registryd tag ls localhost:5000/team/app
  registryd tag ls --sort pushed localhost:5000/team/app
  registryd tag ls --format '{{.Name}} {{.Digest}}' localhost:5000/team/app
  registryd tag ls --format 'table {{.Name}}\t{{.Size}}' localhost:5000/team/app`,
		func(fs *flag.FlagSet, c *common) func(context.Context, *Streams, []string) error {
			var sortBy string
			var format formatFlag
			fs.StringVar(&sortBy, "sort", "name", "order: name, pushed (newest first; needs push times) or created (the image's creation time, newest first)")
			format.define(fs)
			return func(ctx context.Context, s *Streams, args []string) error {
				ref, out, cl, err := c.start(args, "repository (HOST[:PORT]/REPO)", needRepo, &format)
				if err != nil {
					return err
				}
				if !slices.Contains([]string{"name", "pushed", "created"}, sortBy) {
					return usagef("--sort %q: expected name, pushed or created", sortBy)
				}
				rows, admin, err := listTags(ctx, s, cl, ref, sortBy)
				if err != nil {
					return err
				}
				table := "table {{.Name}}\t{{.Digest}}\t{{.Type}}"
				if admin {
					table = "table {{.Name}}\t{{.Digest}}\t{{.Platform}}\t{{size .Size}}\t{{time .Pushed}}"
				}
				if sortBy == "created" {
					table += "\t{{time .Created}}"
				}
				return out.list(s.Out, table, rows)
			}
		})
}

// listTags lists a repository's tags, sorted; admin tells whether the admin
// API gave them (with sizes and times).
func listTags(ctx context.Context, s *Streams, cl *client.Client, ref client.Reference, sortBy string) ([]tagRow, bool, error) {
	info, err := cl.Admin(ctx, ref.Host)
	if err != nil {
		return nil, false, err
	}
	var rows []tagRow
	if info != nil {
		apiSort := "name"
		if sortBy == "pushed" {
			if !info.Features.PushTimes {
				return nil, false, fmt.Errorf("%s does not record push times (features.pushTimes is off); try --sort created", ref.Host)
			}
			apiSort = "pushed"
		}
		tags, err := cl.AdminTags(ctx, ref, apiSort)
		if err != nil {
			return nil, false, err
		}
		for _, t := range tags {
			rows = append(rows, tagRow{Tag: t})
		}
	} else {
		if sortBy == "pushed" {
			return nil, false, fmt.Errorf("%s has no registryd admin API, and the V2 API has no push times; --sort created orders by the images' creation time instead", ref.Host)
		}
		names, err := cl.Tags(ctx, ref)
		if err != nil {
			return nil, false, err
		}
		rows = make([]tagRow, len(names))
		err = forEach(ctx, len(names), func(i int) error {
			d, err := cl.Head(ctx, ref.WithTag(names[i]))
			if client.IsNotFound(err) {
				err = nil // deleted meanwhile: listed without a digest
			}
			rows[i] = tagRow{Tag: admin.Tag{Name: names[i], Digest: string(d.Digest), MediaType: d.MediaType}}
			return err
		})
		if err != nil {
			return nil, false, err
		}
		slices.SortFunc(rows, func(a, b tagRow) int { return strings.Compare(a.Name, b.Name) })
	}
	if sortBy == "created" {
		bar := s.progress("reading image configs", len(rows))
		var mu sync.Mutex
		done := 0
		err := forEach(ctx, len(rows), func(i int) error {
			t, err := cl.Created(ctx, ref.WithTag(rows[i].Name))
			if err == nil {
				rows[i].Created = t
			} else if !client.IsNotFound(err) {
				return err
			}
			mu.Lock()
			done++
			bar.set(done, len(rows))
			mu.Unlock()
			return nil
		})
		bar.finish()
		if err != nil {
			return nil, false, err
		}
		slices.SortStableFunc(rows, func(a, b tagRow) int { return compareTimesDesc(a.Created, b.Created) })
	}
	return rows, info != nil, nil
}

// compareTimesDesc orders newest first, unknown last.
func compareTimesDesc(a, b *time.Time) int {
	switch {
	case a == nil && b == nil:
		return 0
	case a == nil:
		return 1
	case b == nil:
		return -1
	}
	return b.Compare(*a)
}

// forEach runs f for 0..n-1, eight at a time, and returns the first error.
func forEach(ctx context.Context, n int, f func(i int) error) error {
	errs := make([]error, n)
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i := range n {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			errs[i] = f(i)
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// ---------------------------------------------------------------- image inspect

func imageInspect() Command {
	return command("image inspect", "[flags] HOST[:PORT]/REPO[:TAG|@DIGEST]",
		"show a manifest or index: platforms, config, layers with sizes, referrers",
		`Shows what an image is: its digest and media type, its size in the
registry (manifest, config and layers; an index with all its platforms),
the configuration (created, entrypoint, cmd, env, labels, history), the
layers with their sizes, and the referrers (signatures, SBOMs) that point to
it. An index shows each platform in turn. --raw prints the manifest exactly as
the registry serves it.

Examples:
  registryd image inspect localhost:5000/team/app:v1
  registryd image inspect localhost:5000/team/app@sha256:0123...
  registryd image inspect --format '{{.Config.Created}}' localhost:5000/team/app:v1
  registryd image inspect --format json localhost:5000/team/app:v1 | jq .layers
  registryd image inspect --raw localhost:5000/team/app:v1`,
		func(fs *flag.FlagSet, c *common) func(context.Context, *Streams, []string) error {
			var raw bool
			var format formatFlag
			fs.BoolVar(&raw, "raw", false, "print the manifest's bytes as served")
			format.define(fs)
			return func(ctx context.Context, s *Streams, args []string) error {
				ref, out, cl, err := c.start(args, "image reference", needImage, &format)
				if err != nil {
					return err
				}
				if raw {
					m, err := cl.Manifest(ctx, ref)
					if err != nil {
						return err
					}
					_, err = s.Out.Write(m.Raw)
					return err
				}
				img, err := cl.Inspect(ctx, ref)
				if err != nil {
					return err
				}
				return out.one(s.Out, img, func(w io.Writer) error { return writeImage(w, img, "") })
			}
		})
}

// writeImage is image inspect's text.
func writeImage(w io.Writer, img *client.Image, indent string) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	line := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s%s:\t%s\n", indent, k, v)
		}
	}
	line("Reference", img.Reference)
	line("Digest", string(img.Digest))
	line("Media type", img.MediaType)
	line("Artifact type", img.ArtifactType)
	line("Platform", img.Platform)
	line("Size", fmt.Sprintf("%s (%d bytes)", humanSize(img.Size), img.Size))
	line("Subject", img.Subject)
	if c := img.Config; c != nil {
		line("Created", formatTime(c.Created))
		line("Author", c.Author)
		line("User", c.User)
		if len(c.Entrypoint) > 0 {
			line("Entrypoint", quoteList(c.Entrypoint))
		}
		if len(c.Cmd) > 0 {
			line("Cmd", quoteList(c.Cmd))
		}
		line("Working dir", c.WorkingDir)
		line("Ports", strings.Join(c.ExposedPorts, ", "))
	}
	tw.Flush()
	if c := img.Config; c != nil {
		if len(c.Env) > 0 {
			fmt.Fprintf(w, "%sEnv:\n", indent)
			for _, e := range c.Env {
				fmt.Fprintf(w, "%s  %s\n", indent, e)
			}
		}
		if len(c.Labels) > 0 {
			fmt.Fprintf(w, "%sLabels:\n", indent)
			for _, k := range slices.Sorted(maps.Keys(c.Labels)) {
				fmt.Fprintf(w, "%s  %s=%s\n", indent, k, c.Labels[k])
			}
		}
	}
	if len(img.Annotations) > 0 {
		fmt.Fprintf(w, "%sAnnotations:\n", indent)
		for _, k := range slices.Sorted(maps.Keys(img.Annotations)) {
			fmt.Fprintf(w, "%s  %s=%s\n", indent, k, img.Annotations[k])
		}
	}
	if img.ConfigDigest != "" || len(img.Layers) > 0 {
		fmt.Fprintf(w, "%sLayers:\n", indent)
		tw = tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
		fmt.Fprintf(tw, "%s  DIGEST\tSIZE\tMEDIA TYPE\n", indent)
		if img.ConfigDigest != "" {
			fmt.Fprintf(tw, "%s  %s\t%s\t%s\n", indent, img.ConfigDigest, humanSize(img.ConfigSize), "(config)")
		}
		for _, l := range img.Layers {
			fmt.Fprintf(tw, "%s  %s\t%s\t%s\n", indent, l.Digest, humanSize(l.Size), l.MediaType)
		}
		tw.Flush()
	}
	if c := img.Config; c != nil && len(c.History) > 0 {
		fmt.Fprintf(w, "%sHistory:\n", indent)
		tw = tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
		fmt.Fprintf(tw, "%s  CREATED\tCREATED BY\n", indent)
		for _, h := range c.History {
			by := h.CreatedBy
			if h.EmptyLayer {
				by += "  (no layer)"
			}
			fmt.Fprintf(tw, "%s  %s\t%s\n", indent, formatTime(h.Created), strings.ReplaceAll(by, "\t", " "))
		}
		tw.Flush()
	}
	if len(img.Manifests) > 0 {
		fmt.Fprintf(w, "%sPlatforms:\n", indent)
		tw = tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
		fmt.Fprintf(tw, "%s  PLATFORM\tDIGEST\tSIZE\n", indent)
		for _, m := range img.Manifests {
			p := m.Platform
			if p == "" {
				p = "-"
			}
			fmt.Fprintf(tw, "%s  %s\t%s\t%s\n", indent, p, m.Digest, humanSize(m.Size))
		}
		tw.Flush()
		for i := range img.Manifests {
			fmt.Fprintf(w, "\n%s--- %s\n", indent+"  ", orDash(img.Manifests[i].Platform))
			if err := writeImage(w, &img.Manifests[i], indent+"  "); err != nil {
				return err
			}
		}
	}
	if img.Reference != "" { // the top level
		if len(img.Referrers) == 0 {
			fmt.Fprintf(w, "%sReferrers: none\n", indent)
		} else {
			fmt.Fprintf(w, "%sReferrers:\n", indent)
			tw = tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
			fmt.Fprintf(tw, "%s  DIGEST\tARTIFACT TYPE\tSIZE\n", indent)
			for _, r := range img.Referrers {
				at := r.ArtifactType
				if at == "" {
					at = r.MediaType
				}
				fmt.Fprintf(tw, "%s  %s\t%s\t%s\n", indent, r.Digest, at, humanSize(r.Size))
			}
			tw.Flush()
		}
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func quoteList(l []string) string {
	q := make([]string, len(l))
	for i, s := range l {
		q[i] = fmt.Sprintf("%q", s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// ---------------------------------------------------------------- digest

// digestResult is what `digest` prints (its --format fields).
type digestResult struct {
	Reference string        `json:"reference"`
	Digest    digest.Digest `json:"digest"`
	MediaType string        `json:"mediaType"`
	Size      int64         `json:"size"`
}

func digestCmd() Command {
	return command("digest", "[flags] HOST[:PORT]/REPO[:TAG]",
		"print the digest of a tag's manifest (the one a delete by digest needs)",
		`Prints the digest of the manifest a tag points to: a HEAD that accepts
every manifest type, indexes included, so the digest is the one stored (the
one DELETE /v2/REPO/manifests/DIGEST and a pull by digest use), not a
converted one. A registry that sends no Docker-Content-Digest is asked for
the manifest, whose bytes are hashed. Exit status 3 when the tag does not
exist: usable as an existence test.

Examples:
  registryd digest localhost:5000/team/app:v1
  registryd digest --format '{{.MediaType}} {{.Size}}' localhost:5000/team/app:v1
  registryd digest localhost:5000/team/app:v1 >/dev/null && echo exists`,
		func(fs *flag.FlagSet, c *common) func(context.Context, *Streams, []string) error {
			var format formatFlag
			format.define(fs)
			return func(ctx context.Context, s *Streams, args []string) error {
				ref, out, cl, err := c.start(args, "image reference", needImage, &format)
				if err != nil {
					return err
				}
				d, err := cl.Head(ctx, ref)
				if err != nil {
					return err
				}
				res := digestResult{Reference: ref.String(), Digest: d.Digest, MediaType: d.MediaType, Size: d.Size}
				return out.one(s.Out, res, func(w io.Writer) error {
					_, err := fmt.Fprintln(w, d.Digest)
					return err
				})
			}
		})
}
