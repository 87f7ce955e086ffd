package main

import (
	"net/url"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/registryd/registryd/config"
	"github.com/registryd/registryd/notifications"
	"github.com/registryd/registryd/proxy"
	"github.com/registryd/registryd/storage"
)

// newProxy builds the pull-through cache the proxy section configures; nil
// without one.
func newProxy(cfg *config.Config, reg *storage.Registry, promReg prometheus.Registerer, notifier *notifications.Notifier, log logrus.FieldLogger) (*proxy.Proxy, error) {
	pc := cfg.Proxy
	if pc == nil {
		return nil, nil
	}
	execOf := func(e *config.ProxyExec) *proxy.ExecConfig {
		if e == nil {
			return nil
		}
		return &proxy.ExecConfig{Command: e.Command, Lifetime: e.Lifetime}
	}
	opts := proxy.Options{
		Default:           pc.DefaultUpstream,
		Hosted:            pc.Hosted,
		TTL:               pc.TTL,
		CacheWriteTimeout: pc.CacheWriteTimeout,
		SpoolDir:          pc.SpoolDir,
		MaxSize:           pc.Cache.MaxSize,
		High:              pc.Cache.HighWatermark,
		Low:               pc.Cache.LowWatermark,
		Interval:          pc.Cache.Interval,
		Registerer:        promReg,
		Notifier:          notifier,
		Logger:            log.WithField("component", "proxy"),
		UserAgent:         "registryd/" + version + " (pull-through cache)",
	}
	if pc.RemoteURL != "" {
		// distribution's proxy.remoteurl: one upstream, every repository a
		// cache of it under its own name.
		u, _ := url.Parse(pc.RemoteURL)
		opts.All = true
		opts.Upstreams = []proxy.UpstreamConfig{{
			Name: u.Host, URL: pc.RemoteURL, NotRoutable: true,
			Username: pc.Username, Password: pc.Password, Exec: execOf(pc.Exec),
			Revalidate: pc.Revalidate, Timeout: pc.Timeout, NotFoundTTL: pc.NotFoundTTL,
		}}
	}
	for _, u := range pc.Upstreams {
		opts.Upstreams = append(opts.Upstreams, proxy.UpstreamConfig{
			Name: u.Name, URL: u.URL, Aliases: u.Aliases, Namespace: u.Namespace,
			Username: u.Username, Password: u.Password, Exec: execOf(u.Exec),
			Revalidate: u.Revalidate, Timeout: u.Timeout, NotFoundTTL: u.NotFoundTTL,
			MaxConcurrent: u.MaxConcurrent, Library: u.Library, SkipVerify: u.SkipVerify, CA: u.CA,
		})
	}
	return proxy.New(reg, opts)
}
