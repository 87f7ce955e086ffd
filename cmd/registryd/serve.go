package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/registryd/registryd/api/admin"
	v2 "github.com/registryd/registryd/api/v2"
	"github.com/registryd/registryd/auth"
	"github.com/registryd/registryd/config"
	"github.com/registryd/registryd/gc"
	"github.com/registryd/registryd/health"
	"github.com/registryd/registryd/internal/httpmux"
	"github.com/registryd/registryd/metrics"
	"github.com/registryd/registryd/notifications"
	"github.com/registryd/registryd/proxy"
	"github.com/registryd/registryd/retention"
	"github.com/registryd/registryd/storage"
	"github.com/registryd/registryd/storage/driver"
	"github.com/registryd/registryd/storage/driver/filesystem"
	"github.com/registryd/registryd/storage/driver/inmemory"
	"github.com/registryd/registryd/storage/driver/s3"
	"github.com/registryd/registryd/ui"
)

// loadConfig reads the config named by the only positional argument, or the
// embedded default when there is none, with REGISTRY_* overrides applied.
func loadConfig(cmd string, args []string, stderr io.Writer) (*config.Config, bool) {
	if len(args) > 1 {
		fmt.Fprintf(stderr, "registryd %s: expected at most one config file, got %d arguments\n", cmd, len(args))
		return nil, false
	}
	path := ""
	if len(args) == 1 {
		path = args[0]
	}
	cfg, err := config.Load(path, os.Environ())
	if err != nil {
		fmt.Fprintf(stderr, "registryd: configuration error:\n%v\n", err)
		return nil, false
	}
	return cfg, true
}

func newLogger(cfg *config.Config, out io.Writer) (*logrus.Logger, logrus.FieldLogger) {
	log := logrus.New()
	log.SetOutput(out)
	if lvl, err := logrus.ParseLevel(cfg.Log.Level); err == nil {
		log.SetLevel(lvl)
	}
	if cfg.Log.Formatter == "json" {
		log.SetFormatter(&logrus.JSONFormatter{TimestampFormat: time.RFC3339Nano})
	} else {
		log.SetFormatter(&logrus.TextFormatter{FullTimestamp: true, TimestampFormat: time.RFC3339Nano})
	}
	var entry logrus.FieldLogger = log
	if len(cfg.Log.Fields) > 0 {
		entry = log.WithFields(logrus.Fields(cfg.Log.Fields))
	}
	return log, entry
}

// urlDriver is a driver that can hand out download URLs (s3).
type urlDriver interface {
	URLFor(ctx context.Context, path string, expiry time.Duration) (string, error)
}

// redirectExpiry is how long a presigned blob URL is valid, as
// distribution's s3 driver.
const redirectExpiry = 20 * time.Minute

// newDriver builds the storage driver the config selects.
func newDriver(cfg *config.Config) (driver.StorageDriver, error) {
	switch cfg.Storage.Driver {
	case "filesystem", "":
		return filesystem.New(cfg.Storage.Filesystem.RootDirectory)
	case "inmemory":
		return inmemory.New(), nil
	case "s3":
		c := cfg.Storage.S3
		return s3.New(s3.Parameters{
			AccessKey: c.AccessKey, SecretKey: c.SecretKey, SessionToken: c.SessionToken,
			Region: c.Region, RegionEndpoint: c.RegionEndpoint, Bucket: c.Bucket,
			RootDirectory: c.RootDirectory, Secure: c.Secure, SkipVerify: c.SkipVerify,
			ForcePathStyle: c.ForcePathStyle, ChunkSize: c.ChunkSize,
			MultipartCopyThresholdSize: c.MultipartCopyThresholdSize, MultipartCopyChunkSize: c.MultipartCopyChunkSize,
			MultipartCopyMaxConcurrency: c.MultipartCopyMaxConcurrency, StorageClass: c.StorageClass,
		})
	default:
		return nil, fmt.Errorf("storage driver %q is not supported", cfg.Storage.Driver)
	}
}

// cmdServe is "registryd serve [config.yml]".
func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, ok := loadConfig("serve", args, stderr)
	if !ok {
		return 1
	}
	_, log := newLogger(cfg, stderr)
	for _, w := range cfg.Warnings {
		log.Warn(w)
	}
	if err := serve(ctx, cfg, log); err != nil {
		log.WithError(err).Error("registryd stopped")
		return 1
	}
	return 0
}

// serve runs the registry until ctx is done, then drains in-flight requests.
func serve(ctx context.Context, cfg *config.Config, log logrus.FieldLogger) error {
	d, err := newDriver(cfg)
	if err != nil {
		return err
	}
	if fd, ok := d.(*filesystem.Driver); ok {
		fd.SetWarnf(log.Warnf)
	}
	// Releases what the driver holds open (the filesystem's directory
	// watcher) once the server has drained: deferred first, so run last.
	if c, ok := d.(io.Closer); ok {
		defer c.Close()
	}
	instanceID := uuid.NewString()
	var opts storage.Options
	if rd := cfg.Storage.Redirect; rd.Enable && !rd.Disable {
		if u, ok := d.(urlDriver); ok {
			opts.BlobURL = func(ctx context.Context, path string) (string, error) {
				return u.URLFor(ctx, path, redirectExpiry)
			}
		} else {
			log.Warnf("storage.redirect.enable: the %s driver has no URLs to redirect to; serving blobs directly", d.Name())
		}
	}
	var m *metrics.Metrics
	if cfg.HTTP.Debug.Prometheus.Enabled {
		m = metrics.New()
		d = m.Driver(d)
	}
	pullTimes := cfg.Storage.Maintenance.PullTimes
	opts.TrackPulls = pullTimes.Enabled && !cfg.Storage.Maintenance.ReadOnly.Enabled
	gcProtocolOptions(cfg, &opts) // gconline.go
	opts.ReadOnly = cfg.Storage.Maintenance.ReadOnly.Enabled
	reg := storage.New(d, opts)
	// authz is nil (everyone may do everything) without an auth section.
	authz, tokenServer, err := auth.New(authConfig(cfg), log)
	if err != nil {
		return err
	}
	notifier := newNotifier(cfg, instanceID, m, log)
	// Runs after the HTTP server has drained: the events of the last
	// requests still get their chance to be sent.
	defer flushNotifications(notifier, log)
	var promReg prometheus.Registerer
	if m != nil {
		promReg = m.Registry
	}
	// The cache is built before the collector; its evictions kick the
	// collector once there is one (gcLate.set below).
	var gcLate gcLater
	mirror, err := newProxy(cfg, reg, promReg, notifier, log, gcLate.kick(gc.TriggerProxyEviction)) // proxy.go
	if err != nil {
		return err
	}
	// Off unless http.ratelimit.enabled (ratelimit.go): per client
	// around everything but the probes, per user once authenticated.
	limiter := newLimiter(cfg.HTTP.RateLimit)
	var userLimiter v2.UserLimiter
	if limiter != nil {
		userLimiter = limiter
	}
	api := v2.NewHandler(reg, v2.Options{
		DeleteEnabled:     cfg.Storage.Delete.Enabled,
		ReadOnly:          cfg.Storage.Maintenance.ReadOnly.Enabled,
		CatalogMaxEntries: cfg.Catalog.MaxEntries,
		Host:              cfg.HTTP.Host,
		RelativeURLs:      cfg.HTTP.RelativeURLs,
		Headers:           cfg.HTTP.Headers,
		Version:           version,
		Logger:            log,
		Authorizer:        authz,
		Notifier:          notifier,
		Mirror:            mirror,
		Limiter:           userLimiter,
	})
	gate := &writeGate{}
	apiHandler := limited(limiter, gate.handler(api))
	if m != nil {
		apiHandler = m.Middleware(apiHandler)
	}
	// The admin API (_registryd/v1) beside the V2 API, over the same
	// storage and auth. Its GC and retention endpoints drive what is
	// configured; retention is wired once it is built (below).
	adminOpts := admin.Options{
		DeleteEnabled: cfg.Storage.Delete.Enabled,
		ReadOnly:      cfg.Storage.Maintenance.ReadOnly.Enabled,
		Version:       version,
		Notifier:      notifier,
	}
	checker := health.New(d, instanceID, cfg.Storage.Maintenance.ReadOnly.Enabled, cfg.Health.StorageDriver.Threshold)
	// Not http.ServeMux: it would clean /v2/a/../b/... and redirect into
	// another repository before the API validated the name.
	root := httpmux.New()
	root.Handle("/healthz", checker.Handler(cfg.Health.StorageDriver.Enabled))
	root.Handle("/readyz", checker.Handler(cfg.Health.StorageDriver.Enabled))
	if tokenServer != nil {
		root.Handle(cfg.Auth.TokenServer.Path, limited(limiter, tokenServer))
	}
	if mirror != nil {
		cacheAdmin := limited(limiter, gate.handler(mirror.AdminHandler(authz))) // the cache's purge and status (proxy/admin.go)
		root.Handle(proxy.AdminPrefix, cacheAdmin)
		root.Handle(proxy.AdminPrefix+"/", cacheAdmin)
	}
	var webUI *ui.UI
	if cfg.UI.Enabled {
		webUI, err = ui.New(ui.Options{
			Registry: reg, Path: cfg.UI.Path, PullHost: cfg.UI.PullHost, HTTPHost: cfg.HTTP.Host,
			DeleteEnabled: cfg.Storage.Delete.Enabled, ReadOnly: cfg.Storage.Maintenance.ReadOnly.Enabled,
			Authorizer: authz, Secret: cfg.HTTP.Secret, SessionLifetime: cfg.UI.SessionLifetime,
			Headers: cfg.HTTP.Headers, Version: version, Logger: log, Notifier: notifier,
		})
		if err != nil {
			return err
		}
		root.Handle(cfg.UI.Path, webUI)
		// GET / and GET /ui (no slash) lead to the UI; the rest is the API's.
		apiHandler = ui.WithRootRedirect(apiHandler, cfg.UI.Path)
	}
	root.Handle("/", apiHandler)
	handler := v2.Middleware(root, log)
	// Mounted once retention (and, later, the collector) exist: see
	// mountAdmin below. The web UI calls the same Service.
	mountAdmin := func(o admin.Options) *admin.Service {
		svc := admin.NewService(reg, o)
		var h http.Handler = admin.NewHandler(svc, admin.HandlerOptions{Authorizer: authz, RequestIDHeader: v2.RequestIDHeader, Limiter: userLimiter})
		h = limited(limiter, gate.handler(h))
		if m != nil {
			h = m.Middleware(h)
		}
		root.Handle(admin.Prefix, h)
		root.Handle(admin.Prefix+"/", h)
		root.Handle(admin.DiscoverPath, h)
		return svc
	}

	network := cfg.HTTP.Net
	if network == "" {
		network = "tcp"
	}
	ln, err := net.Listen(network, cfg.HTTP.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.HTTP.Addr, err)
	}
	srv := &http.Server{
		Handler: handler,
		// Slow clients may take their time sending a blob, but not the
		// headers: that is what ties up a server for nothing.
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    1 << 20,
		ErrorLog:          nil,
	}
	var reloadTLS func() error
	if t := cfg.HTTP.TLS; t.Certificate != "" {
		srv.TLSConfig, reloadTLS, err = auth.TLSConfig(t.Certificate, t.Key, t.ClientCAs, t.MinimumTLS)
		if err != nil {
			ln.Close()
			return err
		}
		ln = tls.NewListener(ln, srv.TLSConfig)
	}

	bg, stopBG := context.WithCancel(context.Background())
	defer stopBG()
	// Every instance follows the online collector's protocol, whether or
	// not it collects: its copy of the collector state is kept fresh here.
	reg.StartGCProtocol(bg)
	// The catalog's caches and the indexes (names, sizes) are filled in
	// the background from the start, so that the first catalog requests
	// need not read every repository directory (a cold walk costs a few
	// system calls per repository, a warm one none), then kept current
	// (storage.RunIndexes). Serving does not wait for it: a request that
	// comes first joins the reads under way.
	go reg.RunIndexes(bg, func(err error) { log.WithError(err).Warn("storage indexes") })
	if reloadTLS != nil {
		// SIGHUP re-reads the certificate and key (renewed by certbot or
		// cert-manager, say) without dropping a connection.
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		go func() {
			for {
				select {
				case <-bg.Done():
					return
				case <-hup:
					if err := reloadTLS(); err != nil {
						log.WithError(err).Error("TLS certificate not reloaded; still serving the previous one")
					} else {
						log.Info("TLS certificate reloaded")
					}
				}
			}
		}()
	}
	if mirror != nil {
		mirror.Run(bg)
		defer mirror.Close()
	}
	if hc := cfg.Health.StorageDriver; hc.Enabled {
		go checker.Run(bg, hc.Interval)
	}
	if cfg.HTTP.Debug.Addr != "" {
		dln, err := net.Listen("tcp", cfg.HTTP.Debug.Addr)
		if err != nil {
			ln.Close()
			return fmt.Errorf("http.debug.addr: listen on %s: %w", cfg.HTTP.Debug.Addr, err)
		}
		dsrv := &http.Server{Handler: debugHandler(m, cfg.HTTP.Debug.Prometheus.Path), ReadHeaderTimeout: 30 * time.Second}
		go dsrv.Serve(dln)
		defer dsrv.Close()
		log.WithField("addr", dln.Addr().String()).Info("debug listener (metrics, pprof)")
	}
	// Repository deletes: every deletion under way is known before the
	// first request; abandoned ones (their instance died) are finished.
	if err := reg.StartRepositoryDeletes(bg, func(err error) { log.WithError(err).Warn("repository deletes") }); err != nil {
		ln.Close()
		return fmt.Errorf("reading the repository deletes under way: %w", err)
	}
	if reg.PullTimesEnabled() {
		go reg.RunPullFlusher(bg, pullTimes.Interval, func(err error) { log.WithError(err).Warn("recording pull times") })
		// After the drain: the last requests' pulls are written too.
		defer flushPulls(reg, log)
	}
	if p := cfg.Storage.Maintenance.UploadPurging; p.Enabled && !cfg.Storage.Maintenance.ReadOnly.Enabled {
		go purgeUploads(bg, reg, p.Age, p.Interval, p.DryRun, log)
	}
	if sc := cfg.Storage.Maintenance.Scrub; sc.Enabled {
		var obs *metrics.ScrubObserver
		if m != nil {
			obs = m.Scrub()
		}
		go scrubInBackground(bg, reg, sc, cfg.Storage.Maintenance.ReadOnly.Enabled, instanceID, obs, log) // scrubloop.go
	}
	// Retention runs on its own schedule (storage.maintenance.retention
	// .interval), and on demand through the admin API.
	var retMetrics *retention.Metrics
	if m != nil {
		retMetrics = retention.NewMetrics()
		m.Registry.MustRegister(retMetrics.Collectors()...)
	}
	// The online collector (storage.maintenance.gc, gconline.go): on its
	// schedule, when its plan falls due, after retention deleted tags, and
	// on demand through the admin API.
	gcSched, gcMetrics, gcOff, err := newGCScheduler(bg, cfg, d, instanceID, m, notifier, log.WithField("component", "gc"))
	if err != nil {
		ln.Close()
		return err
	}
	gcLate.set(gcSched)
	if gcMetrics != nil {
		gcMetrics.Protocol(reg)
		m.Registry.MustRegister(gcMetrics.Collectors()...)
	}
	if gcSched != nil {
		go gcSched.Schedule()
		g := cfg.Storage.Maintenance.GC
		log.WithFields(logrus.Fields{"scheduled": g.Enabled, "interval": g.Interval.String(), "delay": g.Delay.String(),
			"window": g.Window, "dry_run": g.DryRun, "delete_untagged": g.DeleteUntagged}).Info("online garbage collection")
	}
	ret, err := newRetention(bg, cfg, reg, retMetrics, log.WithField("component", "retention"), gcKick(gcSched))
	if err != nil {
		ln.Close()
		return err
	}
	if ret != nil {
		adminOpts.Retention = retentionMaintainer{svc: ret}
	}
	if gcSched != nil {
		adminOpts.GC = gcMaintainer{sched: gcSched} // gconline.go
	}
	adminOpts.GCOff = gcOff
	adminSvc := mountAdmin(adminOpts)
	if webUI != nil {
		// Before serving: the pages call the admin API's service.
		webUI.SetAdmin(adminSvc)
	}
	if ret != nil {
		go ret.Schedule()
		rc := cfg.Storage.Maintenance.Retention
		log.WithFields(logrus.Fields{"policies": len(rc.Policies), "interval": rc.Interval.String(), "dry_run": rc.DryRun,
			"scheduled": rc.Interval > 0 && !cfg.Storage.Maintenance.ReadOnly.Enabled}).Info("retention policies")
	}

	// A collection in progress may be deleting what a push would link;
	// serving writes now could lose data, serving pulls cannot.
	if !cfg.Storage.Maintenance.ReadOnly.Enabled {
		if live, err := reg.LiveInstances(ctx, time.Now(), gc.DefaultInstanceTTL); err == nil {
			for _, in := range live {
				if in.IsRole(storage.RoleGC) {
					ln.Close()
					return fmt.Errorf("garbage-collect (pid %d on %s) is running on this storage; wait for it to finish, or start with storage.maintenance.readonly.enabled: true", in.PID, in.Hostname)
				}
			}
		}
	}

	// The lease tells garbage-collect (here or on another host sharing the
	// storage) that a registry is serving it, and whether it accepts writes.
	// A storage that is full or away at startup does not stop the
	// registry: it serves pulls and opens writes once registered (lease.go).
	release, err := registerInstance(ctx, reg, instanceID, cfg.Storage.Maintenance.ReadOnly.Enabled, gate, log)
	if err != nil {
		ln.Close()
		return fmt.Errorf("registering with the storage: %w", err)
	}
	defer release()

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.WithFields(logrus.Fields{
		"addr":    ln.Addr().String(),
		"version": version,
		"storage": d.Name(),
		"delete":  cfg.Storage.Delete.Enabled,
	}).Info("registryd listening")

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	drain := cfg.HTTP.DrainTimeout
	if drain <= 0 {
		drain = 30 * time.Second
	}
	log.WithField("drain_timeout", drain.String()).Info("shutting down: finishing in-flight requests")
	sctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// flushPulls writes the pulls not yet recorded when the server stops.
func flushPulls(reg *storage.Registry, log logrus.FieldLogger) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := reg.FlushPulls(ctx); err != nil {
		log.WithError(err).Warn("pull times of the last minute not recorded")
	}
}

// notificationFlush bounds how long a stopping server keeps trying to
// deliver queued events.
const notificationFlush = 5 * time.Second

// newNotifier starts the senders of the enabled notification endpoints;
// nil without any.
func newNotifier(cfg *config.Config, instanceID string, m *metrics.Metrics, log logrus.FieldLogger) *notifications.Notifier {
	nc := notifications.Config{
		Source:            notifications.Source{Addr: sourceAddr(cfg.HTTP.Addr), InstanceID: instanceID},
		IncludeReferences: cfg.Notifications.Events.IncludeReferences,
	}
	for _, e := range cfg.Notifications.Endpoints {
		if e.Disabled {
			log.WithField("endpoint", e.Name).Info("notifications: endpoint disabled")
			continue
		}
		nc.Endpoints = append(nc.Endpoints, notifications.EndpointConfig{
			Name: e.Name, URL: e.URL, Headers: e.Headers, Timeout: e.Timeout, Threshold: e.Threshold, Backoff: e.Backoff,
			IgnoredMediaTypes: e.IgnoredMediaTypes, IgnoredActions: e.IgnoredActions,
		})
		log.WithFields(logrus.Fields{"endpoint": e.Name, "url": e.URL}).Info("notifications: sending events")
	}
	var obs notifications.Observer
	if m != nil {
		obs = m.Notifications()
	}
	return notifications.New(nc, log.WithField("component", "notifications"), obs)
}

// sourceAddr is the registry's host:port in events: http.addr, with this
// host's name when the address has no host.
func sourceAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		if h, err := os.Hostname(); err == nil {
			host = h
		}
	}
	return net.JoinHostPort(host, port)
}

// flushNotifications gives queued events a short time to be delivered.
func flushNotifications(n *notifications.Notifier, log logrus.FieldLogger) {
	if !n.Enabled() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), notificationFlush)
	defer cancel()
	if err := n.Close(ctx); err != nil {
		log.WithError(err).Warn("notifications: events lost at shutdown")
	}
}

// authConfig turns the auth and access sections into the auth package's
// configuration; auth.New checks the combination.
func authConfig(cfg *config.Config) auth.Config {
	var ac auth.Config
	if h := cfg.Auth.Htpasswd; h != nil {
		ac.Htpasswd = &auth.HtpasswdConfig{Realm: h.Realm, Path: h.Path}
	}
	if t := cfg.Auth.Token; t != nil {
		ac.Token = &auth.TokenConfig{Realm: t.Realm, Service: t.Service, Issuer: t.Issuer, RootCertBundle: t.RootCertBundle, JWKS: t.JWKS}
	}
	if s := cfg.Auth.TokenServer; s != nil {
		ac.Issuer = &auth.IssuerConfig{Key: s.Key, Certificate: s.Certificate, Expiration: s.Expiration, Path: s.Path}
	}
	if a := cfg.Access; a != nil {
		ac.Access = &auth.AccessConfig{Groups: a.Groups}
		for _, r := range a.Rules {
			ac.Access.Rules = append(ac.Access.Rules, auth.Rule{Repositories: r.Repositories, Users: r.Users, Groups: r.Groups, Actions: r.Actions})
		}
		for _, r := range a.Anonymous {
			ac.Access.Anonymous = append(ac.Access.Anonymous, auth.AnonymousRule{Repositories: r.Repositories, Actions: r.Actions})
		}
	}
	return ac
}

// purgeUploads removes abandoned uploads now and then every interval.
func purgeUploads(ctx context.Context, reg *storage.Registry, age, interval time.Duration, dryRun bool, log logrus.FieldLogger) {
	if interval <= 0 {
		interval = 24 * time.Hour
	}
	t := time.NewTimer(time.Minute) // not during startup's first requests
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := reg.PurgeUploads(ctx, time.Now().Add(-age), dryRun)
		entry := log.WithFields(logrus.Fields{"purged": n, "older_than": age.String(), "dry_run": dryRun})
		if err != nil {
			entry.WithError(err).Warn("upload purging")
		} else {
			entry.Info("upload purging")
		}
		t.Reset(interval)
	}
}

// debugHandler serves the debug listener: Prometheus metrics (when
// enabled) and pprof. It is never mounted on the registry's own listener.
func debugHandler(m *metrics.Metrics, metricsPath string) http.Handler {
	mux := http.NewServeMux()
	if m != nil {
		if metricsPath == "" {
			metricsPath = "/metrics"
		}
		mux.Handle(metricsPath, m.Handler())
	}
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
