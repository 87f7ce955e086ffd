package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/registryd/registryd/api/admin"
	"github.com/registryd/registryd/client"
)

// destructive are the flags of every command that deletes.
type destructive struct {
	yes, dryRun bool
}

func (d *destructive) define(fs *flag.FlagSet) {
	fs.BoolVar(&d.yes, "yes", false, "do not ask for confirmation (for scripts)")
	fs.BoolVar(&d.yes, "y", false, "short for --yes")
	fs.BoolVar(&d.dryRun, "dry-run", false, "print what would be deleted, delete nothing")
}

// deleteHint explains a refused delete.
func deleteHint(err error) error {
	if client.StatusOf(err) == http.StatusMethodNotAllowed {
		return fmt.Errorf("%w\nthe registry does not allow deletes (distribution and registryd: storage.delete.enabled: true, or REGISTRY_STORAGE_DELETE_ENABLED=true)", err)
	}
	return err
}

// tagsByDigest maps a repository's digests to their tags: from the admin
// API in one listing when the server has it, else a HEAD per tag.
func tagsByDigest(ctx context.Context, cl *client.Client, repo client.Reference) (map[digest.Digest][]string, error) {
	if info, err := cl.Admin(ctx, repo.Host); err != nil {
		return nil, err
	} else if info != nil {
		tags, err := cl.AdminTags(ctx, repo, "name")
		if err != nil {
			return nil, err
		}
		m := map[digest.Digest][]string{}
		for _, t := range tags {
			m[digest.Digest(t.Digest)] = append(m[digest.Digest(t.Digest)], t.Name)
		}
		return m, nil
	}
	return cl.TagsOf(ctx, repo)
}

// ---------------------------------------------------------------- tag rm

func tagRm() Command {
	return command("tag rm", "[flags] HOST[:PORT]/REPO:TAG...",
		"remove tags, and only them (every other tag of the same manifest stays)",
		`Removes a tag and nothing else: the manifest it points to stays, with
its other tags. (A DELETE by digest, what the V2 API documents, takes every
tag of that manifest with it.) Registries with the OCI delete by tag
(registryd, distribution v3, zot) get DELETE /v2/REPO/manifests/TAG. Others
(distribution 2.x, Debian's docker-registry) get regctl's way: a unique
placeholder manifest is pushed to the tag and deleted by its digest, which
takes the tag along and nothing else. The output says which was used.

It prints what it will do and asks; --yes does not ask; without a terminal
and without --yes it refuses. --dry-run prints the plan only.

Examples:
  registryd tag rm localhost:5000/team/app:v1
  registryd tag rm --yes localhost:5000/team/app:pr-12 localhost:5000/team/app:pr-13
  registryd tag rm --dry-run localhost:5000/team/app:v1`,
		func(fs *flag.FlagSet, c *common) func(context.Context, *Streams, []string) error {
			var d destructive
			d.define(fs)
			return func(ctx context.Context, s *Streams, args []string) error {
				if len(args) == 0 {
					return usagef("missing a tag (HOST[:PORT]/REPO:TAG)")
				}
				var refs []client.Reference
				for _, a := range args {
					r, err := parseRef(a, needTag)
					if err != nil {
						return err
					}
					refs = append(refs, r)
				}
				cl, err := c.client()
				if err != nil {
					return err
				}
				// The plan: each tag's digest, and whether the manifest
				// keeps other tags.
				byRepo := map[string]map[digest.Digest][]string{}
				digests := make([]digest.Digest, len(refs))
				for i, r := range refs {
					desc, err := cl.Head(ctx, r)
					if err != nil {
						return fmt.Errorf("%s: %w", r, err)
					}
					digests[i] = desc.Digest
					key := r.Repo().String()
					if _, ok := byRepo[key]; !ok {
						if byRepo[key], err = tagsByDigest(ctx, cl, r.Repo()); err != nil {
							return err
						}
					}
				}
				removing := map[string]bool{}
				for _, r := range refs {
					removing[r.String()] = true
				}
				for i, r := range refs {
					var stay []string
					for _, t := range byRepo[r.Repo().String()][digests[i]] {
						if !removing[r.WithTag(t).String()] {
							stay = append(stay, t)
						}
					}
					fmt.Fprintf(s.Out, "remove tag %s (-> %s)\n", r, digests[i])
					if len(stay) > 0 {
						fmt.Fprintf(s.Out, "  the manifest stays, still tagged: %s\n", strings.Join(stay, ", "))
					} else {
						fmt.Fprintf(s.Out, "  the manifest stays, untagged (a collection of untagged manifests reclaims it)\n")
					}
				}
				method := "OCI delete by tag where the registry has it, else a placeholder manifest pushed to the tag and deleted by digest"
				if info, err := cl.Admin(ctx, refs[0].Host); err == nil && info != nil {
					method = client.TagDeleteOCI
				}
				fmt.Fprintf(s.Out, "method: %s\n", method)
				if d.dryRun {
					fmt.Fprintln(s.Out, "dry run: nothing was changed")
					return nil
				}
				q := fmt.Sprintf("Remove %d tag(s)?", len(refs))
				if len(refs) == 1 {
					q = fmt.Sprintf("Remove tag %s?", refs[0].Tag)
				}
				if err := s.confirm(ctx, q, d.yes); err != nil {
					return err
				}
				for i, r := range refs {
					// Re-check: the tag must still point where the plan
					// said, or the user confirmed something else.
					if desc, err := cl.Head(ctx, r); err != nil {
						return fmt.Errorf("%s: %w", r, err)
					} else if desc.Digest != digests[i] {
						return fmt.Errorf("%s moved to %s since the plan was made; nothing done for it", r, desc.Digest)
					}
					how, err := cl.DeleteTag(ctx, r)
					if err != nil {
						return fmt.Errorf("%s: %w", r, deleteHint(err))
					}
					fmt.Fprintf(s.Out, "removed tag %s (%s)\n", r, how)
				}
				return nil
			}
		})
}

// ---------------------------------------------------------------- manifest rm

func manifestRm() Command {
	return command("manifest rm", "[flags] HOST[:PORT]/REPO@DIGEST",
		"delete a manifest by digest, after showing the tags and referrers that go with it",
		`Deletes a manifest (an image or an index) by its digest, which is what
DELETE /v2/REPO/manifests/DIGEST does: every tag pointing to it goes too. So
it first lists those tags, the referrers (signatures, SBOMs) that will point
to nothing, an index's children (which stay, untagged) and, from a registryd,
the bytes garbage collection then frees; then asks.

It does not run without a confirmation: --yes gives it; without a terminal
and without --yes it refuses. To remove one tag and keep the others, use
registryd tag rm.

Examples:
  registryd manifest rm localhost:5000/team/app@sha256:0123...
  registryd manifest rm --dry-run localhost:5000/team/app@$(registryd digest localhost:5000/team/app:old)
  registryd manifest rm --yes localhost:5000/team/app@sha256:0123...`,
		func(fs *flag.FlagSet, c *common) func(context.Context, *Streams, []string) error {
			var d destructive
			var format formatFlag
			d.define(fs)
			format.define(fs)
			return func(ctx context.Context, s *Streams, args []string) error {
				ref, out, cl, err := c.start(args, "manifest (HOST[:PORT]/REPO@DIGEST)", needDigest, &format)
				if err != nil {
					return err
				}
				ref.Tag = ""
				imp, err := cl.Impact(ctx, ref)
				if err != nil {
					return err
				}
				if err := out.one(s.Out, imp, func(w io.Writer) error { return writeImpact(w, ref, imp) }); err != nil {
					return err
				}
				if d.dryRun {
					if out.json || out.tmpl != nil {
						return nil
					}
					fmt.Fprintln(s.Out, "dry run: nothing was changed")
					return nil
				}
				q := fmt.Sprintf("Delete manifest %s", ref.Digest)
				if n := len(imp.Tags); n > 0 {
					q += fmt.Sprintf(" and its %d tag(s)", n)
				}
				if err := s.confirm(ctx, q+"?", d.yes); err != nil {
					return err
				}
				if err := cl.DeleteManifest(ctx, ref); err != nil {
					return deleteHint(err)
				}
				if out.json || out.tmpl != nil {
					return nil
				}
				fmt.Fprintf(s.Out, "deleted manifest %s\n", ref)
				return nil
			}
		})
}

func writeImpact(w io.Writer, ref client.Reference, imp *client.ManifestImpact) error {
	fmt.Fprintf(w, "delete manifest %s (%s)\n", ref, shortType(imp.MediaType))
	if len(imp.Tags) > 0 {
		fmt.Fprintf(w, "  tags that go with it: %s\n", strings.Join(imp.Tags, ", "))
	} else {
		fmt.Fprintf(w, "  no tag points to it\n")
	}
	if len(imp.Referrers) > 0 {
		fmt.Fprintf(w, "  referrers left pointing to nothing:\n")
		for _, r := range imp.Referrers {
			at := r.ArtifactType
			if at == "" {
				at = r.MediaType
			}
			fmt.Fprintf(w, "    %s %s\n", r.Digest, at)
		}
	}
	if len(imp.Children) > 0 {
		fmt.Fprintf(w, "  children that stay, untagged: %d\n", len(imp.Children))
	}
	if imp.Exclusive >= 0 {
		fmt.Fprintf(w, "  garbage collection then frees: %s\n", bytesExact(imp.Exclusive))
	}
	return nil
}

// ---------------------------------------------------------------- repo rm

func repoRm() Command {
	return command("repo rm", "[flags] HOST[:PORT]/REPO",
		"delete a repository: every tag and manifest (admin API, else one V2 delete each)",
		`Deletes a whole repository. A registryd with the admin API does it in
one request: the name disappears from the catalog at once, and garbage
collection then frees the blobs no other repository uses. Other registries
have no such call, so every manifest the tags reach (index children and
referrers included) is deleted through the V2 API, one DELETE each, with a
progress bar on a terminal; the blobs are then the registry's garbage
collector's, and distribution keeps listing the empty name in its catalog
until its directory is removed.

First it prints the plan: the tags and manifests that go (each manifest with
its tags), the bytes they hold and, from a registryd, the bytes a garbage
collection then frees (the rest is shared with other repositories), and the
request(s) it sends. --dry-run stops there. Then it asks you to type the
repository's name; --yes does not ask; without a terminal and without --yes
it refuses.

Examples:
  registryd repo rm localhost:5000/team/old-app
  registryd repo rm --dry-run localhost:5000/team/old-app
  registryd repo rm --yes localhost:5000/team/old-app`,
		func(fs *flag.FlagSet, c *common) func(context.Context, *Streams, []string) error {
			var d destructive
			d.define(fs)
			return func(ctx context.Context, s *Streams, args []string) error {
				ref, _, cl, err := c.start(args, "repository (HOST[:PORT]/REPO)", needRepo, nil)
				if err != nil {
					return err
				}
				info, err := cl.Admin(ctx, ref.Host)
				if err != nil {
					return err
				}
				if info != nil {
					return repoRmAdmin(ctx, s, cl, ref, d)
				}
				return repoRmV2(ctx, s, cl, ref, d)
			}
		})
}

func repoRmAdmin(ctx context.Context, s *Streams, cl *client.Client, ref client.Reference, d destructive) error {
	r, err := cl.AdminRepository(ctx, ref)
	if err != nil {
		return err
	}
	tags, err := cl.AdminTags(ctx, ref, "name")
	if err != nil {
		return err
	}
	byDigest := map[digest.Digest][]string{}
	for _, t := range tags {
		byDigest[digest.Digest(t.Digest)] = append(byDigest[digest.Digest(t.Digest)], t.Name)
	}
	fmt.Fprintf(s.Out, "delete repository %s: %s, %s\n", ref, plural(len(tags), "tag"), plural(r.Manifests, "manifest"))
	fmt.Fprintf(s.Out, "method: registryd admin API, one request: DELETE %s/repositories/%s\n", admin.Prefix, ref.Repository)
	writeManifestTags(s.Out, slices.Sorted(maps.Keys(byDigest)), byDigest)
	if untagged := r.Manifests - len(byDigest); untagged > 0 {
		fmt.Fprintf(s.Out, "  and %s no tag points to (index children, referrers, untagged images)\n", plural(untagged, "manifest"))
	}
	if r.Size != nil {
		fmt.Fprintf(s.Out, "it holds %s; garbage collection then frees %s%s\n", bytesExact(r.Size.Unique), bytesExact(r.Size.Exclusive), sharedNote(r.Size))
	}
	if d.dryRun {
		fmt.Fprintln(s.Out, "dry run: nothing was changed")
		return nil
	}
	if err := s.confirmName(ctx, ref.Repository, d.yes); err != nil {
		return err
	}
	del, err := cl.AdminDeleteRepository(ctx, ref)
	if err != nil {
		return deleteHint(err)
	}
	fmt.Fprintf(s.Out, "deleted repository %s: %s, %s\n", ref, plural(del.Tags, "tag"), plural(del.Manifests, "manifest"))
	if del.Tags != len(tags) || del.Manifests != r.Manifests {
		fmt.Fprintf(s.Out, "  (the plan said %s, %s: the repository changed meanwhile)\n", plural(len(tags), "tag"), plural(r.Manifests, "manifest"))
	}
	return nil
}

// writeManifestTags lists manifests, each with the tags pointing to it.
func writeManifestTags(w io.Writer, manifests []digest.Digest, tagsOf map[digest.Digest][]string) {
	for _, m := range manifests {
		tags := slices.Sorted(slices.Values(tagsOf[m]))
		if len(tags) > 0 {
			fmt.Fprintf(w, "  %s  %s\n", m, strings.Join(tags, ", "))
		} else {
			fmt.Fprintf(w, "  %s\n", m)
		}
	}
}

// sharedNote says why a scope's exclusive bytes are fewer than its unique
// ones.
func sharedNote(sz *admin.Size) string {
	if sz.Exclusive < sz.Unique {
		return " (the rest is shared with other repositories)"
	}
	return ""
}

// plural is "1 tag", "2 tags".
func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// bytesExact is a size for people and its exact figure: "1.23kB (1234
// bytes)".
func bytesExact(n int64) string {
	return fmt.Sprintf("%s (%d bytes)", humanSize(n), n)
}

func repoRmV2(ctx context.Context, s *Streams, cl *client.Client, ref client.Reference, d destructive) error {
	rc, err := cl.Contents(ctx, ref)
	if err != nil {
		return err
	}
	if len(rc.Manifests) == 0 {
		return &client.NotFoundError{What: fmt.Sprintf("repository %s (no tags)", ref)}
	}
	tagsOf := map[digest.Digest][]string{}
	for t, dg := range rc.Tags {
		tagsOf[dg] = append(tagsOf[dg], t)
	}
	fmt.Fprintf(s.Out, "delete repository %s: %s, %s\n", ref, plural(len(rc.Tags), "tag"), plural(len(rc.Manifests), "manifest"))
	fmt.Fprintf(s.Out, "method: V2 API, DELETE /v2/%s/manifests/DIGEST for each (this registry has no registryd admin API)\n", ref.Repository)
	writeManifestTags(s.Out, rc.Manifests, tagsOf)
	fmt.Fprintf(s.Out, "they hold %s; the registry's garbage collection frees what no other repository uses (registryd du %s/%s computes it)\n",
		bytesExact(rc.Unique), ref.Host, ref.Repository)
	if d.dryRun {
		fmt.Fprintln(s.Out, "dry run: nothing was changed")
		return nil
	}
	if err := s.confirmName(ctx, ref.Repository, d.yes); err != nil {
		return err
	}
	bar := s.progress("deleting manifests", len(rc.Manifests))
	deleted := 0
	for _, m := range rc.Manifests {
		err := cl.DeleteManifest(ctx, ref.WithDigest(m))
		if err != nil && !client.IsNotFound(err) { // gone already: a deleted index took it
			bar.finish()
			return fmt.Errorf("after %d of %d manifests: %s: %w", deleted, len(rc.Manifests), m, deleteHint(err))
		}
		deleted++
		bar.add(1)
	}
	bar.finish()
	left, err := cl.Tags(ctx, ref)
	if err != nil && !client.IsNotFound(err) {
		return err
	}
	fmt.Fprintf(s.Out, "deleted repository %s: %s, %s through the V2 API; the registry's garbage collection frees the blobs\n",
		ref, plural(len(rc.Tags), "tag"), plural(deleted, "manifest"))
	if len(left) > 0 {
		return fmt.Errorf("tags pushed meanwhile remain: %s", strings.Join(left, ", "))
	}
	return nil
}
