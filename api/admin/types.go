// Package admin is registryd's admin extension API, _registryd/v1 (see
// docs/admin-api.md): sizes, push and pull times, repository delete,
// retention and garbage collection, for the web UI and the CLI. This file
// holds the wire types; they are the contract, shared by the server, the UI
// and the client, so that the three cannot drift apart.
package admin

import (
	"context"
	"errors"
	"time"
)

// Version is the API version in the paths (/v2/_registryd/v1/...).
const Version = 1

// Prefix is the path under which every endpoint lives.
const Prefix = "/v2/_registryd/v1"

// DiscoverPath is the OCI extensions discovery endpoint.
const DiscoverPath = "/v2/_oci/ext/discover"

// ExtensionName is this extension's name in the discovery document.
const ExtensionName = "_registryd"

// Discovery is GET /v2/_oci/ext/discover.
type Discovery struct {
	Extensions []Extension `json:"extensions"`
}

// Extension is one entry of Discovery.
type Extension struct {
	Name        string   `json:"name"`
	URL         string   `json:"url,omitempty"`
	Description string   `json:"description,omitempty"`
	Endpoints   []string `json:"endpoints"`
}

// Info is GET /v2/_registryd/v1: what this server and this caller can do.
type Info struct {
	Version  int      `json:"version"`
	Registry string   `json:"registry"`
	Features Features `json:"features"`
	Caller   Caller   `json:"caller"`
}

// Features says which optional abilities the server has turned on.
type Features struct {
	DeleteEnabled bool `json:"deleteEnabled"`
	ReadOnly      bool `json:"readOnly"`
	GC            bool `json:"gc"`
	Retention     bool `json:"retention"`
	PushTimes     bool `json:"pushTimes"`
	PullTimes     bool `json:"pullTimes"`
	Sizes         bool `json:"sizes"`
}

// Caller is what the authenticated caller may do registry-wide.
type Caller struct {
	Name  string `json:"name,omitempty"`
	Admin bool   `json:"admin"`
}

// Size is the three ways of counting the bytes of a scope (a tag, a
// repository, a namespace prefix, the registry).
type Size struct {
	// Logical sums the size of every image in scope, counting a shared
	// blob once per image.
	Logical int64 `json:"logical"`
	// Unique counts each distinct blob and manifest in scope once.
	Unique int64 `json:"unique"`
	// Exclusive is what is referenced in scope and nowhere else: what
	// deleting the scope, then collecting, would free.
	Exclusive int64 `json:"exclusive"`
}

// Repository is one entry of GET .../repositories, and GET .../repositories/NAME.
type Repository struct {
	Name     string `json:"name"`
	TagCount int    `json:"tagCount"`
	// Manifests counts the repository's manifests, tagged or not (index
	// children and referrers included): what a delete of it removes.
	Manifests  int        `json:"manifests"`
	LastPushed *time.Time `json:"lastPushed,omitempty"`
	Size       *Size      `json:"size,omitempty"`
}

// RepositoryList is GET .../repositories.
type RepositoryList struct {
	Repositories []Repository `json:"repositories"`
}

// RepositoryDeleted is the 202 body of DELETE .../repositories/NAME.
type RepositoryDeleted struct {
	Name      string `json:"name"`
	Tags      int    `json:"tags"`
	Manifests int    `json:"manifests"`
}

// Tag is one entry of GET .../repositories/NAME/tags.
type Tag struct {
	Name         string     `json:"name"`
	Digest       string     `json:"digest"`
	MediaType    string     `json:"mediaType,omitempty"`
	ArtifactType string     `json:"artifactType,omitempty"`
	Platforms    []string   `json:"platforms,omitempty"`
	Size         int64      `json:"size"`
	Pushed       *time.Time `json:"pushed,omitempty"`
	LastPulled   *time.Time `json:"lastPulled,omitempty"`
}

// TagList is GET .../repositories/NAME/tags.
type TagList struct {
	Name string `json:"name"`
	Tags []Tag  `json:"tags"`
}

// Referrer is a manifest whose subject is another.
type Referrer struct {
	Digest       string `json:"digest"`
	ArtifactType string `json:"artifactType,omitempty"`
	MediaType    string `json:"mediaType,omitempty"`
	Size         int64  `json:"size,omitempty"`
}

// Impact is GET .../repositories/NAME/manifests/DIGEST/impact: what a
// delete by digest takes along.
type Impact struct {
	Digest    string     `json:"digest"`
	Tags      []string   `json:"tags"`
	Referrers []Referrer `json:"referrers"`
	Exclusive int64      `json:"exclusive"`
}

// Usage is GET .../usage?prefix=P.
type Usage struct {
	Prefix       string `json:"prefix"`
	Repositories int    `json:"repositories"`
	Size
	// Total is the bytes of every blob in the store.
	Total int64 `json:"total"`
}

// Run is one garbage collection or retention run's report.
type Run struct {
	ID         string         `json:"id"`
	Kind       string         `json:"kind"` // "gc" or "retention"
	Started    time.Time      `json:"started"`
	Finished   *time.Time     `json:"finished,omitempty"`
	DryRun     bool           `json:"dryRun"`
	Result     string         `json:"result"` // "running", "ok", "failed", "refused"
	Error      string         `json:"error,omitempty"`
	Marked     int            `json:"marked,omitempty"`
	Deleted    map[string]int `json:"deleted,omitempty"` // by kind: blobs, manifests, layerLinks, uploads, tags
	BytesFreed int64          `json:"bytesFreed"`
	// Decisions is retention's per-tag report.
	Decisions []Decision `json:"decisions,omitempty"`
	// Refused names the repositories a retention run left untouched
	// because it would have deleted more than maxshare of their tags.
	Refused []string `json:"refused,omitempty"`
	// Deferred counts deletions left for a later run by
	// maxdeletionsperrun.
	Deferred int `json:"deferred,omitempty"`
}

// Decision is retention's verdict on one tag.
type Decision struct {
	Repository string `json:"repository"`
	Tag        string `json:"tag"`
	Digest     string `json:"digest,omitempty"`
	Delete     bool   `json:"delete"`
	Rule       string `json:"rule"` // the rule that decided: "patterns", "mostrecentlypushedcount", ...
	// Reason says how the rule decided, for a person ("3rd most recently
	// pushed of 12 tags (keeptags[1] keeps 5)").
	Reason string `json:"reason,omitempty"`
	// Policy is the policy that applied: its repositories globs.
	Policy     string     `json:"policy,omitempty"`
	Pushed     *time.Time `json:"pushed,omitempty"`
	LastPulled *time.Time `json:"lastPulled,omitempty"`
}

// Maintenance is GET .../gc and GET .../retention.
type Maintenance struct {
	Enabled bool       `json:"enabled"`
	Running bool       `json:"running"`
	Next    *time.Time `json:"next,omitempty"`
	Runs    []Run      `json:"runs"`
}

// Maintainer is what the admin API needs of the garbage collector and of
// retention (GET and POST .../gc, .../retention): each implements it, and
// the server wires them in, so that this package depends on neither.
type Maintainer interface {
	// Status is the collector's or retention's state and its last runs,
	// newest first.
	Status(ctx context.Context) (Maintenance, error)
	// Start begins a run now and returns its id. dryRun decides and
	// reports but changes nothing. ErrBusy when a run is under way.
	Start(ctx context.Context, dryRun bool) (id string, err error)
	// Wait blocks until run id is over (or ctx is done) and returns its
	// report.
	Wait(ctx context.Context, id string) (Run, error)
}

// ErrBusy is returned by Maintainer.Start while a run is under way
// (here or, for the collector, on another instance holding its lease).
var ErrBusy = errors.New("a run is already under way")
