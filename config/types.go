// Package config reads registryd's configuration: a YAML file in the key
// layout of distribution's config.yml, overridden by REGISTRY_* environment
// variables, validated before anything starts.
package config

import (
	"net/http"
	"time"
)

// Config is the effective configuration. Field comments name the YAML key.
type Config struct {
	Version string // version

	Log     Log     // log
	Storage Storage // storage
	HTTP    HTTP    // http
	Catalog Catalog // catalog
	Health  Health  // health
	Auth    Auth    // auth
	// Access is registryd's own "access" section (per-repository rules);
	// nil when absent.
	Access *Access
	// Notifications are the webhooks that receive events.
	Notifications Notifications
	// Proxy makes registryd a pull-through cache (proxy.go); nil when the
	// section is absent.
	Proxy *Proxy
	// UI is the web UI (registryd's own "ui" section).
	UI UI

	// Warnings lists keys that were accepted because distribution knows
	// them but that registryd does not implement yet; serve logs each one
	// at startup so nothing is silently dropped. It also names REGISTRY_*
	// environment variables that match no key.
	Warnings []string

	// Ignored holds the values of those accepted-but-unimplemented keys,
	// by dotted key ("auth.htpasswd", "redis", "http.tls.letsencrypt"), as
	// YAML decodes them (map[string]any, []any, scalars). Nothing acts on
	// them; Dump shows them, secrets masked, so that `config check` prints
	// everything the file said.
	Ignored map[string]any
}

// Log is the "log" section.
type Log struct {
	Level     string         // log.level: error, warn, info, debug (default info)
	Formatter string         // log.formatter: text, json (default text)
	Fields    map[string]any // log.fields
}

// Storage is the "storage" section.
type Storage struct {
	// Driver is the name of the one driver section present:
	// "filesystem", "inmemory" or "s3".
	Driver      string
	Filesystem  Filesystem  // storage.filesystem
	S3          S3          // storage.s3
	Delete      Delete      // storage.delete
	Maintenance Maintenance // storage.maintenance
	Redirect    Redirect    // storage.redirect
}

// Filesystem is storage.filesystem.
type Filesystem struct {
	RootDirectory string // storage.filesystem.rootdirectory (default /var/lib/registry in distribution; ./data in the embedded default)
}

// S3 is storage.s3, in distribution's names. Sizes are bytes.
type S3 struct {
	AccessKey      string // storage.s3.accesskey (default: $AWS_ACCESS_KEY_ID, ~/.aws/credentials, instance role)
	SecretKey      string // storage.s3.secretkey (default: $AWS_SECRET_ACCESS_KEY, ...); masked by Dump
	SessionToken   string // storage.s3.sessiontoken; masked by Dump
	Region         string // storage.s3.region (default us-east-1)
	RegionEndpoint string // storage.s3.regionendpoint: http(s)://host:port of an S3-compatible service (MinIO, Ceph)
	Bucket         string // storage.s3.bucket (required)
	RootDirectory  string // storage.s3.rootdirectory: key prefix (default: the bucket's root)
	Secure         bool   // storage.s3.secure (default true): https when regionendpoint names no scheme
	SkipVerify     bool   // storage.s3.skipverify (default false)
	ForcePathStyle bool   // storage.s3.forcepathstyle (default false): path-style URLs, as MinIO wants
	ChunkSize      int64  // storage.s3.chunksize (default 10 MiB, at least 5 MiB): what an upload holds in memory, two multipart parts of half of it (at least 5 MiB each)
	// storage.s3.multipartcopythresholdsize (default 32 MiB, at most
	// 5 GiB): larger objects are moved with a multipart copy.
	MultipartCopyThresholdSize int64
	// storage.s3.multipartcopychunksize (default 32 MiB, 5 MiB to 5 GiB):
	// the parts of a multipart copy, copied in parallel.
	MultipartCopyChunkSize int64
	// storage.s3.multipartcopymaxconcurrency (default 8): parts of one
	// multipart copy under way at once.
	MultipartCopyMaxConcurrency int
	StorageClass                string // storage.s3.storageclass (default: the bucket's; NONE means the same)
}

// Delete is storage.delete.
type Delete struct {
	Enabled bool // storage.delete.enabled (default false)
}

// Maintenance is storage.maintenance.
type Maintenance struct {
	UploadPurging UploadPurging // storage.maintenance.uploadpurging
	ReadOnly      ReadOnly      // storage.maintenance.readonly
	Scrub         Scrub         // storage.maintenance.scrub (registryd's own)
	Retention     Retention     // storage.maintenance.retention (registryd; distribution ignores the section)
	PullTimes     PullTimes     // storage.maintenance.pulltimes (registryd's own)
}

// Scrub is storage.maintenance.scrub: the integrity check (registryd
// scrub) run by the registry in the background.
type Scrub struct {
	Enabled bool // default false
	// Interval is how often the whole storage is checked, by whichever
	// instance sharing it comes first (default 168h).
	Interval time.Duration
	// RateLimit bounds the bytes per second the check reads, so that it
	// never starves serving (default 16 MiB/s; "ratelimit: 50MiB").
	RateLimit int64
	// Repair quarantines damaged blobs and fixes links as the command's
	// --repair does (default false: report only).
	Repair bool
}

// PullTimes is storage.maintenance.pulltimes: recording the last pull of
// every manifest (push times are always recorded).
type PullTimes struct {
	Enabled  bool          // default true; off in read-only mode, which writes nothing
	Interval time.Duration // default 1m: at most one write per manifest per interval
}

// UploadPurging is storage.maintenance.uploadpurging.
type UploadPurging struct {
	Enabled  bool          // default true
	Age      time.Duration // default 168h
	Interval time.Duration // default 24h
	DryRun   bool          // default false
}

// Retention is storage.maintenance.retention: tag retention policies
// (package retention acts on them).
type Retention struct {
	DryRun             bool              // dryrun: decide and report, delete nothing (default false)
	Delay              time.Duration     // delay: untagged manifests go only when older than this (default 24h)
	MaxDeletionsPerRun int               // maxdeletionsperrun: cap on deletions per run (default 1000)
	MaxShare           float64           // maxshare: refuse a repository whose run would delete more than this share of its tags (default 0.5)
	Interval           time.Duration     // interval: time between runs inside serve; 0 runs only on demand (default 24h)
	Policies           []RetentionPolicy // policies: the first whose repositories match a repository applies to it
}

// RetentionPolicy is one element of storage.maintenance.retention.policies.
type RetentionPolicy struct {
	Repositories   []string   // repositories: globs ("team-a/**")
	DeleteUntagged bool       // deleteuntagged: remove manifests no tag reaches, after delay
	KeepTags       []KeepTags // keeptags: a tag is kept when any rule keeps it
}

// KeepTags is one element of a policy's keeptags.
type KeepTags struct {
	Patterns                []string      // patterns: regular expressions
	MostRecentlyPushedCount int           // mostrecentlypushedcount
	MostRecentlyPulledCount int           // mostrecentlypulledcount
	PushedWithin            time.Duration // pushedwithin
	PulledWithin            time.Duration // pulledwithin
}

// ReadOnly is storage.maintenance.readonly.
type ReadOnly struct {
	Enabled bool
}

// Redirect is storage.redirect.
type Redirect struct {
	// Disable (storage.redirect.disable, distribution's) turns redirects
	// off whatever Enable says.
	Disable bool
	// Enable (storage.redirect.enable, registryd's own, default false)
	// answers blob GETs with 307 to a presigned URL of the storage
	// backend, where the driver has such URLs (s3). Off by default,
	// unlike distribution: clients must be able to reach the backend.
	Enable bool
}

// HTTP is the "http" section.
type HTTP struct {
	Addr         string        // http.addr (default :5000)
	Net          string        // http.net: tcp or unix (default tcp)
	Host         string        // http.host: external base URL used to build Location headers
	Prefix       string        // http.prefix
	RelativeURLs bool          // http.relativeurls
	Secret       string        // http.secret
	DrainTimeout time.Duration // http.draintimeout (default 0: wait for in-flight requests without limit... bounded by serve to 30s)
	Headers      http.Header   // http.headers (default X-Content-Type-Options: nosniff)
	TLS          TLS           // http.tls
	Debug        Debug         // http.debug
	RateLimit    RateLimit     // http.ratelimit (registryd's own; ratelimit.go)
}

// TLS is http.tls.
type TLS struct {
	Certificate string   // http.tls.certificate
	Key         string   // http.tls.key
	ClientCAs   []string // http.tls.clientcas
	MinimumTLS  string   // http.tls.minimumtls: tls1.2 or tls1.3 (default tls1.2)
}

// Debug is http.debug.
type Debug struct {
	Addr       string     // http.debug.addr
	Prometheus Prometheus // http.debug.prometheus
}

// Prometheus is http.debug.prometheus.
type Prometheus struct {
	Enabled bool   // http.debug.prometheus.enabled
	Path    string // http.debug.prometheus.path (default /metrics)
}

// Catalog is the "catalog" section.
type Catalog struct {
	MaxEntries int // catalog.maxentries (default 1000)
}

// Health is the "health" section.
type Health struct {
	StorageDriver HealthStorageDriver // health.storagedriver
}

// HealthStorageDriver is health.storagedriver.
type HealthStorageDriver struct {
	Enabled   bool
	Interval  time.Duration // default 10s
	Threshold int           // default 3
}

// Notifications is the "notifications" section: webhooks that receive an
// event for every push, pull and delete.
type Notifications struct {
	Events    NotificationEvents // notifications.events
	Endpoints []Endpoint         // notifications.endpoints
}

// NotificationEvents is notifications.events.
type NotificationEvents struct {
	// IncludeReferences adds the descriptors a manifest references (its
	// config and layers, or an index's manifests) to manifest events.
	IncludeReferences bool
}

// Endpoint is one element of notifications.endpoints.
type Endpoint struct {
	Name     string        // name: names the endpoint in logs and metrics; required, unique
	Disabled bool          // disabled: configured but sent nothing
	URL      string        // url: where events are POSTed; required, http or https
	Headers  http.Header   // headers: added to every request (masked by Dump)
	Timeout  time.Duration // timeout: of one delivery attempt (default 5s)
	// Threshold is the number of consecutive failures after which the
	// endpoint is reported as failing and the wait between attempts
	// starts to grow (default 5).
	Threshold int
	Backoff   time.Duration // backoff: wait after a failed attempt (default 1s)
	// IgnoredMediaTypes is ignoredmediatypes and ignore.mediatypes
	// together: events whose target has one of them are not sent.
	IgnoredMediaTypes []string
	IgnoredActions    []string // ignore.actions: push, pull, delete, mount, fill
}

// Endpoint defaults, for keys an endpoint leaves out.
const (
	DefaultEndpointTimeout   = 5 * time.Second
	DefaultEndpointThreshold = 5
	DefaultEndpointBackoff   = time.Second
)
