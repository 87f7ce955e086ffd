package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync"

	"github.com/opencontainers/go-digest"

	"github.com/registryd/registryd/api/admin"
)

// The admin extension API (docs/admin-api.md) is discovered per host: GET
// /v2/_registryd/v1 answers what the server and the caller can do, and a
// 404 (any other registry) means the caller falls back to the V2 API.

type adminEntry struct {
	once sync.Once
	info *admin.Info
	err  error
}

// Admin returns what host's admin API offers, or nil when host has none
// (another registry, or a registryd that does not serve it). It is asked
// once per host and remembered.
func (c *Client) Admin(ctx context.Context, host string) (*admin.Info, error) {
	c.mu.Lock()
	e := c.admin[host]
	if e == nil {
		e = &adminEntry{}
		c.admin[host] = e
	}
	c.mu.Unlock()
	e.once.Do(func() {
		var info admin.Info
		_, err := c.getJSON(ctx, request{host: host, path: admin.Prefix}, &info)
		switch {
		case err == nil && info.Version == admin.Version:
			e.info = &info
		case err == nil:
			// A future or foreign version: do not guess its shape.
			e.info = nil
		case IsNotFound(err), StatusOf(err) == http.StatusMethodNotAllowed, StatusOf(err) == http.StatusBadRequest:
			// Not registryd (distribution answers 404, some proxies 400 or
			// 405 for a path they do not know).
		default:
			e.err = err
		}
	})
	return e.info, e.err
}

// AdminRepositories lists host's repositories through the admin API, with
// tag counts, push times and sizes, following pagination.
func (c *Client) AdminRepositories(ctx context.Context, host, prefix string) ([]admin.Repository, error) {
	q := url.Values{"n": {"1000"}}
	if prefix != "" {
		q.Set("prefix", prefix)
	}
	return paginate(ctx, c, request{host: host, path: admin.Prefix + "/repositories", query: q, scopes: []string{catalogScope}},
		func(p *admin.RepositoryList) []admin.Repository { return p.Repositories })
}

// AdminRepository is one repository's entry (with its size).
func (c *Client) AdminRepository(ctx context.Context, r Reference) (*admin.Repository, error) {
	var repo admin.Repository
	if _, err := c.getJSON(ctx, request{host: r.Host, path: admin.Prefix + "/repositories/" + r.Repository,
		scopes: []string{pullScope(r.Repository)}}, &repo); err != nil {
		return nil, err
	}
	return &repo, nil
}

// AdminTags lists a repository's tags with digests, sizes and push times;
// sort is "name" or "pushed" (newest first).
func (c *Client) AdminTags(ctx context.Context, r Reference, sort string) ([]admin.Tag, error) {
	q := url.Values{"n": {"1000"}}
	if sort != "" {
		q.Set("sort", sort)
	}
	return paginate(ctx, c, request{host: r.Host, path: admin.Prefix + "/repositories/" + r.Repository + "/tags", query: q, scopes: []string{pullScope(r.Repository)}},
		func(p *admin.TagList) []admin.Tag { return p.Tags })
}

// AdminImpact is what deleting manifest d of r would take along.
func (c *Client) AdminImpact(ctx context.Context, r Reference, d digest.Digest) (*admin.Impact, error) {
	var imp admin.Impact
	if _, err := c.getJSON(ctx, request{host: r.Host, path: admin.Prefix + "/repositories/" + r.Repository + "/manifests/" + string(d) + "/impact",
		scopes: []string{pullScope(r.Repository)}}, &imp); err != nil {
		return nil, err
	}
	return &imp, nil
}

// AdminUsage is the usage of host, or of the repositories under prefix.
func (c *Client) AdminUsage(ctx context.Context, host, prefix string) (*admin.Usage, error) {
	var u admin.Usage
	q := url.Values{}
	if prefix != "" {
		q.Set("prefix", prefix)
	}
	if _, err := c.getJSON(ctx, request{host: host, path: admin.Prefix + "/usage", query: q, scopes: []string{adminScope}}, &u); err != nil {
		return nil, err
	}
	return &u, nil
}

// AdminDeleteRepository deletes a whole repository.
func (c *Client) AdminDeleteRepository(ctx context.Context, r Reference) (*admin.RepositoryDeleted, error) {
	resp, err := c.do(ctx, request{method: http.MethodDelete, host: r.Host, path: admin.Prefix + "/repositories/" + r.Repository,
		header: http.Header{"Accept": {"application/json"}},
		scopes: []string{deleteScope(r.Repository)}, ok: []int{http.StatusAccepted, http.StatusOK}})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var del admin.RepositoryDeleted
	if err := decodeJSON(resp.Body, &del); err != nil {
		return nil, fmt.Errorf("DELETE repository %s: %w", r.Repository, err)
	}
	return &del, nil
}

// AdminMaintenance is GET .../gc or .../retention (kind).
func (c *Client) AdminMaintenance(ctx context.Context, host, kind string) (*admin.Maintenance, error) {
	var m admin.Maintenance
	if _, err := c.getJSON(ctx, request{host: host, path: admin.Prefix + "/" + kind, scopes: []string{adminScope}}, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// AdminRun starts a garbage collection or retention run (kind "gc" or
// "retention") and waits for its report.
func (c *Client) AdminRun(ctx context.Context, host, kind string, dryRun bool) (*admin.Run, error) {
	q := url.Values{"dryrun": {strconv.FormatBool(dryRun)}, "wait": {"true"}}
	resp, err := c.do(ctx, request{method: http.MethodPost, host: host, path: admin.Prefix + "/" + kind, query: q,
		header: http.Header{"Accept": {"application/json"}}, body: []byte{},
		scopes: []string{adminScope}, ok: []int{http.StatusOK, http.StatusAccepted}})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var run admin.Run
	if err := decodeJSON(resp.Body, &run); err != nil {
		return nil, fmt.Errorf("POST %s: %w", kind, err)
	}
	return &run, nil
}
