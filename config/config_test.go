package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"
)

const minimal = `version: 0.1
storage:
  filesystem:
    rootdirectory: /srv/registry
`

func mustParse(t *testing.T, yml string, env ...string) *Config {
	t.Helper()
	c, err := Parse([]byte(yml), env)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return c
}

func TestDefault(t *testing.T) {
	c := Default()
	checks := []struct {
		name string
		ok   bool
	}{
		{"version", c.Version == "0.1"},
		{"log.level", c.Log.Level == "info"},
		{"log.formatter", c.Log.Formatter == "text"},
		{"driver", c.Storage.Driver == "filesystem"},
		{"rootdirectory", c.Storage.Filesystem.RootDirectory == "./data"},
		{"delete", !c.Storage.Delete.Enabled},
		{"uploadpurging", c.Storage.Maintenance.UploadPurging == UploadPurging{Enabled: true, Age: 168 * time.Hour, Interval: 24 * time.Hour}},
		{"readonly", !c.Storage.Maintenance.ReadOnly.Enabled},
		{"http.addr", c.HTTP.Addr == ":5000"},
		{"http.net", c.HTTP.Net == "tcp"},
		{"http.headers", reflect.DeepEqual(map[string][]string(c.HTTP.Headers), map[string][]string{"X-Content-Type-Options": {"nosniff"}})},
		{"minimumtls", c.HTTP.TLS.MinimumTLS == "tls1.2"},
		{"prometheus", c.HTTP.Debug.Prometheus == Prometheus{Path: "/metrics"}},
		{"catalog", c.Catalog.MaxEntries == 1000},
		{"health", c.Health.StorageDriver == HealthStorageDriver{Enabled: false, Interval: 10 * time.Second, Threshold: 3}},
		{"warnings", c.Warnings == nil && c.Ignored == nil},
	}
	for _, ch := range checks {
		if !ch.ok {
			t.Errorf("Default(): %s wrong: %+v", ch.name, c)
		}
	}
	// Load without a file is Default, validated.
	l, err := Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(l, Default()) {
		t.Errorf("Load(\"\", nil) = %+v, want Default() %+v", l, Default())
	}
	// Each call is a fresh value: no shared state.
	Default().HTTP.Headers["X-Test"] = []string{"1"}
	if _, ok := Default().HTTP.Headers["X-Test"]; ok {
		t.Error("Default() shares its headers map")
	}
}

func TestFileDefaults(t *testing.T) {
	c := mustParse(t, "version: 0.1\nstorage:\n  filesystem:\n")
	want := Default()
	want.Storage.Filesystem.RootDirectory = "/var/lib/registry" // distribution's default with a file
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("got %+v\nwant %+v", c, want)
	}
	// version may be left out
	if c := mustParse(t, "storage:\n  inmemory:\n"); c.Version != "0.1" {
		t.Fatalf("version default: %q", c.Version)
	}
}

func TestParseEveryKey(t *testing.T) {
	c := mustParse(t, `version: 0.1
log:
  level: DEBUG
  formatter: json
  fields:
    service: registry
    environment: staging
storage:
  filesystem:
    rootdirectory: /data
  delete:
    enabled: true
  redirect:
    disable: true
  maintenance:
    uploadpurging:
      enabled: false
      age: 1h
      interval: 2h30m
      dryrun: true
    readonly:
      enabled: yes
http:
  addr: 127.0.0.1:5001
  net: tcp
  host: https://registry.example.com:5000
  prefix: /nested/
  relativeurls: true
  secret: s3cr3t
  draintimeout: 10s
  headers:
    x-frame-options: [DENY]
    Strict-Transport-Security: max-age=63072000
  tls:
    certificate: /c.pem
    key: /k.pem
    clientcas:
      - /ca1.pem
      - /ca2.pem
    minimumtls: tls1.3
  debug:
    addr: localhost:5002
    prometheus:
      enabled: true
      path: /prom
health:
  storagedriver:
    enabled: true
    interval: 5s
    threshold: 7
catalog:
  maxentries: 50
`)
	checks := []struct {
		key string
		ok  bool
	}{
		{"version", c.Version == "0.1"},
		{"log.level", c.Log.Level == "debug"},
		{"log.formatter", c.Log.Formatter == "json"},
		{"log.fields", reflect.DeepEqual(c.Log.Fields, map[string]any{"service": "registry", "environment": "staging"})},
		{"storage.filesystem.rootdirectory", c.Storage.Driver == "filesystem" && c.Storage.Filesystem.RootDirectory == "/data"},
		{"storage.delete.enabled", c.Storage.Delete.Enabled},
		{"storage.redirect.disable", c.Storage.Redirect.Disable},
		{"storage.maintenance.uploadpurging", c.Storage.Maintenance.UploadPurging == UploadPurging{Enabled: false, Age: time.Hour, Interval: 150 * time.Minute, DryRun: true}},
		{"storage.maintenance.readonly.enabled", c.Storage.Maintenance.ReadOnly.Enabled},
		{"http.addr", c.HTTP.Addr == "127.0.0.1:5001"},
		{"http.net", c.HTTP.Net == "tcp"},
		{"http.host", c.HTTP.Host == "https://registry.example.com:5000"},
		{"http.prefix", c.HTTP.Prefix == "/nested/"},
		{"http.relativeurls", c.HTTP.RelativeURLs},
		{"http.secret", c.HTTP.Secret == "s3cr3t"},
		{"http.draintimeout", c.HTTP.DrainTimeout == 10*time.Second},
		{"http.headers", reflect.DeepEqual(map[string][]string(c.HTTP.Headers), map[string][]string{
			"X-Content-Type-Options":    {"nosniff"}, // the default stays
			"X-Frame-Options":           {"DENY"},
			"Strict-Transport-Security": {"max-age=63072000"},
		})},
		{"http.tls.certificate", c.HTTP.TLS.Certificate == "/c.pem"},
		{"http.tls.key", c.HTTP.TLS.Key == "/k.pem"},
		{"http.tls.clientcas", reflect.DeepEqual(c.HTTP.TLS.ClientCAs, []string{"/ca1.pem", "/ca2.pem"})},
		{"http.tls.minimumtls", c.HTTP.TLS.MinimumTLS == "tls1.3"},
		{"http.debug.addr", c.HTTP.Debug.Addr == "localhost:5002"},
		{"http.debug.prometheus", c.HTTP.Debug.Prometheus == Prometheus{Enabled: true, Path: "/prom"}},
		{"health.storagedriver", c.Health.StorageDriver == HealthStorageDriver{Enabled: true, Interval: 5 * time.Second, Threshold: 7}},
		{"catalog.maxentries", c.Catalog.MaxEntries == 50},
		{"no warnings", len(c.Warnings) == 0},
	}
	for _, ch := range checks {
		if !ch.ok {
			t.Errorf("%s not read: %+v", ch.key, c)
		}
	}
}

func TestValueForms(t *testing.T) {
	cases := []struct {
		name, yml string
		check     func(*Config) bool
	}{
		{"inmemory empty map", "storage:\n  inmemory: {}\n", func(c *Config) bool {
			return c.Storage.Driver == "inmemory" && c.Storage.Filesystem.RootDirectory == ""
		}},
		{"inmemory null", "storage:\n  inmemory:\n", func(c *Config) bool { return c.Storage.Driver == "inmemory" }},
		{"storage names the driver", "storage: inmemory\n", func(c *Config) bool { return c.Storage.Driver == "inmemory" }},
		{"filesystem without rootdirectory", "storage: filesystem\n", func(c *Config) bool { return c.Storage.Filesystem.RootDirectory == "/var/lib/registry" }},
		{"header removed with empty list", minimal + "http:\n  headers:\n    X-Content-Type-Options: []\n", func(c *Config) bool { return len(c.HTTP.Headers) == 0 }},
		{"single clientca as a string", minimal + "http:\n  tls:\n    certificate: /c\n    key: /k\n    clientcas: /ca.pem\n", func(c *Config) bool { return reflect.DeepEqual(c.HTTP.TLS.ClientCAs, []string{"/ca.pem"}) }},
		{"null leaves keep defaults", minimal + "catalog:\n  maxentries:\nhttp:\n  addr:\n", func(c *Config) bool { return c.Catalog.MaxEntries == 1000 && c.HTTP.Addr == ":5000" }},
		{"zero duration", minimal + "http:\n  draintimeout: 0\n", func(c *Config) bool { return c.HTTP.DrainTimeout == 0 }},
		{"unix socket", minimal + "http:\n  net: unix\n  addr: /run/registry.sock\n", func(c *Config) bool { return c.HTTP.Net == "unix" && c.HTTP.Addr == "/run/registry.sock" }},
		{"aliases", "storage:\n  filesystem: {rootdirectory: &d /d}\nhttp:\n  debug:\n    addr: localhost:5001\n    prometheus: &on {enabled: true}\nhealth:\n  storagedriver:\n    <<: *on\n    threshold: 2\n", func(c *Config) bool {
			return c.Health.StorageDriver.Enabled && c.Health.StorageDriver.Threshold == 2 && c.HTTP.Debug.Prometheus.Enabled
		}},
		{"logstash formatter", "storage: inmemory\nlog:\n  formatter: logstash\n", func(c *Config) bool {
			return c.Log.Formatter == "json" && len(c.Warnings) == 1 && strings.Contains(c.Warnings[0], "logstash")
		}},
		{"prometheus without debug addr warns", minimal + "http:\n  debug:\n    prometheus:\n      enabled: true\n", func(c *Config) bool {
			return len(c.Warnings) == 1 && strings.Contains(c.Warnings[0], "http.debug.addr")
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if c := mustParse(t, tc.yml); !tc.check(c) {
				t.Fatalf("got %+v", c)
			}
		})
	}
}

func TestEnvOverrides(t *testing.T) {
	cases := []struct {
		env   []string
		check func(*Config) bool
	}{
		{[]string{"REGISTRY_STORAGE_DELETE_ENABLED=true"}, func(c *Config) bool { return c.Storage.Delete.Enabled }},
		{[]string{"REGISTRY_HTTP_ADDR=:5001"}, func(c *Config) bool { return c.HTTP.Addr == ":5001" }},
		{[]string{"REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=/x"}, func(c *Config) bool { return c.Storage.Filesystem.RootDirectory == "/x" }},
		{[]string{"REGISTRY_LOG_LEVEL=debug"}, func(c *Config) bool { return c.Log.Level == "debug" }},
		{[]string{"REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_ENABLED=false"}, func(c *Config) bool { return !c.Storage.Maintenance.UploadPurging.Enabled }},
		{[]string{"REGISTRY_CATALOG_MAXENTRIES=50"}, func(c *Config) bool { return c.Catalog.MaxEntries == 50 }},
		{[]string{"REGISTRY_HTTP_SECRET=true"}, func(c *Config) bool { return c.HTTP.Secret == "true" }}, // a string key takes the text
		{[]string{"REGISTRY_HTTP_SECRET=a#b: c"}, func(c *Config) bool { return c.HTTP.Secret == "a#b: c" }},
		{[]string{`REGISTRY_HTTP_SECRET="quoted"`}, func(c *Config) bool { return c.HTTP.Secret == "quoted" }},
		{[]string{"REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_AGE=2h"}, func(c *Config) bool { return c.Storage.Maintenance.UploadPurging.Age == 2*time.Hour }},
		{[]string{"REGISTRY_HTTP_TLS_CERTIFICATE=/c", "REGISTRY_HTTP_TLS_KEY=/k", "REGISTRY_HTTP_TLS_CLIENTCAS_0=/ca.pem"}, func(c *Config) bool {
			return reflect.DeepEqual(c.HTTP.TLS.ClientCAs, []string{"/ca.pem"})
		}},
		{[]string{"REGISTRY_HTTP_TLS_CERTIFICATE=/c", "REGISTRY_HTTP_TLS_KEY=/k", "REGISTRY_HTTP_TLS_CLIENTCAS=[/a.pem, /b.pem]"}, func(c *Config) bool {
			return reflect.DeepEqual(c.HTTP.TLS.ClientCAs, []string{"/a.pem", "/b.pem"})
		}},
		{[]string{"REGISTRY_LOG_FIELDS_SERVICE=registry"}, func(c *Config) bool { return c.Log.Fields["service"] == "registry" }},
		{[]string{"REGISTRY_HTTP_HEADERS_X-FRAME-OPTIONS=[DENY]"}, func(c *Config) bool { return c.HTTP.Headers.Get("X-Frame-Options") == "DENY" }},
		{[]string{"REGISTRY_HEALTH_STORAGEDRIVER_ENABLED=TRUE", "REGISTRY_HEALTH_STORAGEDRIVER_INTERVAL=1m"}, func(c *Config) bool {
			return c.Health.StorageDriver.Enabled && c.Health.StorageDriver.Interval == time.Minute
		}},
		// An empty value resets a non-string key to its default.
		{[]string{"REGISTRY_CATALOG_MAXENTRIES="}, func(c *Config) bool { return c.Catalog.MaxEntries == 1000 }},
		// A section variable replaces the section; more specific ones
		// apply after it (name order), as in distribution.
		{[]string{"REGISTRY_STORAGE_DELETE_ENABLED=true", "REGISTRY_STORAGE=inmemory"}, func(c *Config) bool {
			return c.Storage.Driver == "inmemory" && c.Storage.Delete.Enabled
		}},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.env, " "), func(t *testing.T) {
			for _, withFile := range []bool{true, false} {
				var c *Config
				var err error
				if withFile {
					c, err = Parse([]byte(minimal), tc.env)
				} else {
					c, err = Load("", tc.env)
				}
				if err != nil {
					t.Fatalf("file %v: %v", withFile, err)
				}
				if !tc.check(c) {
					t.Fatalf("file %v: override not applied: %+v", withFile, c)
				}
				if len(c.Warnings) != 0 {
					t.Fatalf("file %v: warnings %v", withFile, c.Warnings)
				}
			}
		})
	}

	t.Run("env selects inmemory without a file", func(t *testing.T) {
		c, err := Load("", []string{"REGISTRY_STORAGE_INMEMORY="})
		if err != nil || c.Storage.Driver != "inmemory" {
			t.Fatalf("%v %+v", err, c)
		}
	})
	t.Run("file value replaced, not merged", func(t *testing.T) {
		c := mustParse(t, minimal+"http:\n  tls:\n    certificate: /c\n    key: /k\n    clientcas: [/a, /b]\n", "REGISTRY_HTTP_TLS_CLIENTCAS_1=/z")
		if !reflect.DeepEqual(c.HTTP.TLS.ClientCAs, []string{"/a", "/z"}) {
			t.Fatalf("%v", c.HTTP.TLS.ClientCAs)
		}
	})
	t.Run("env sets an ignored key: warned", func(t *testing.T) {
		c := mustParse(t, minimal, "REGISTRY_REDIS_PASSWORD=x", "REGISTRY_PROXY_REMOTENAMESPACE=library", "REGISTRY_PROXY_REMOTEURL=https://r")
		want := []string{"not implemented yet, ignored: proxy.remotenamespace", "not implemented yet, ignored: redis"}
		if !reflect.DeepEqual(c.Warnings, want) {
			t.Fatalf("warnings %q", c.Warnings)
		}
	})
	t.Run("longest key first", func(t *testing.T) {
		steps, k, ok := resolveEnv(schema(), strings.Split("STORAGE_GCS_CREDENTIALS_PRIVATE_KEY_ID", "_"))
		if !ok || displayPath(steps) != "storage.gcs.credentials.private_key_id" || !k.secret {
			t.Fatalf("%v %v", displayPath(steps), ok)
		}
	})
}

func TestEnvErrorsAndWarnings(t *testing.T) {
	errCases := []struct {
		env  []string
		want []string
	}{
		{[]string{"REGISTRY_STORAGE_DELETE_ENABLED=maybe"}, []string{"environment variable REGISTRY_STORAGE_DELETE_ENABLED", "storage.delete.enabled", "true or false"}},
		{[]string{"REGISTRY_CATALOG_MAXENTRIES=-5"}, []string{"REGISTRY_CATALOG_MAXENTRIES", "catalog.maxentries", "positive"}},
		{[]string{"REGISTRY_LOG_LEVEL=loud"}, []string{"REGISTRY_LOG_LEVEL", "log.level", "loud"}},
		{[]string{"REGISTRY_HTTP_TLS_CLIENTCAS_3=/x"}, []string{"REGISTRY_HTTP_TLS_CLIENTCAS_3", "past the end"}},
		{[]string{"REGISTRY_HTTP_HEADERS=[unclosed"}, []string{"REGISTRY_HTTP_HEADERS", "not valid YAML"}},
		{[]string{"REGISTRY_STORAGE_GCS_BUCKET=b"}, []string{"environment variable REGISTRY_STORAGE_GCS_BUCKET", `storage driver "gcs" is not supported yet`}},
	}
	for _, tc := range errCases {
		_, err := Load("", tc.env)
		if err == nil {
			t.Errorf("%v: no error", tc.env)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: error %q does not contain %q", tc.env, err, w)
			}
		}
		var e *Error
		if !errors.As(err, &e) || e.EnvVar == "" || e.Line != 0 {
			t.Errorf("%v: not an *Error naming the variable: %#v", tc.env, e)
		}
	}

	// An env driver next to the file's driver: two drivers.
	_, err := Parse([]byte("storage:\n  inmemory: {}\n"), []string{"REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=/x"})
	if err == nil || !strings.Contains(err.Error(), "more than one storage driver") {
		t.Errorf("two drivers via env: %v", err)
	}

	// Variables naming no key warn; a near miss gets a suggestion;
	// Kubernetes' service variables get none.
	c, err := Parse([]byte(minimal), []string{
		"REGISTRY_PORT=tcp://10.0.0.1:5000", "REGISTRY_SERVICE_HOST=10.0.0.1",
		"REGISTRY_PORT_5000_TCP_ADDR=10.0.0.1", "REGISTRY_STORAGE_DELET_ENABLED=true",
		"REGISTRY_HTTP_ADDR_PORT=1", "PATH=/bin", "REGISTRYX=1",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"environment variable REGISTRY_HTTP_ADDR_PORT matches no configuration key",
		"environment variable REGISTRY_PORT matches no configuration key",
		"environment variable REGISTRY_PORT_5000_TCP_ADDR matches no configuration key",
		"environment variable REGISTRY_SERVICE_HOST matches no configuration key",
		"environment variable REGISTRY_STORAGE_DELET_ENABLED matches no configuration key (did you mean REGISTRY_STORAGE_DELETE_ENABLED?)",
	}
	if !reflect.DeepEqual(c.Warnings, want) {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(c.Warnings, "\n"), strings.Join(want, "\n"))
	}
	if c.Storage.Delete.Enabled {
		t.Error("a misspelt variable was applied")
	}
}

func TestErrors(t *testing.T) {
	cases := []struct {
		name, yml string
		key       string
		line      int
		want      []string // substrings of the message
	}{
		{"unknown key", minimal + "  delete:\n    enabeld: true\n", "storage.delete.enabeld", 6, []string{`config.yml:6: unknown key "storage.delete.enabeld" (did you mean "storage.delete.enabled"?)`}},
		{"unknown nested key", "version: 0.1\nstorage:\n  filesystem:\n    rootdir: /x\n", "storage.filesystem.rootdir", 4, []string{`config.yml:4: unknown key "storage.filesystem.rootdir"`, "rootdirectory"}},
		{"unknown top key", "version: 0.1\nstorage: inmemory\nfoo: bar\n", "foo", 3, []string{`config.yml:3: unknown key "foo"`}},
		{"unknown key in auth section", minimal + "auth:\n  htpasswd:\n    reelm: x\n", "auth.htpasswd.reelm", 7, []string{"realm"}},
		{"key case matters", minimal + "Catalog:\n  maxentries: 5\n", "Catalog", 5, []string{`did you mean "catalog"`}},
		{"unknown driver", "storage:\n  filesytem:\n    rootdirectory: /x\n", "storage.filesytem", 2, []string{`unknown key "storage.filesytem"`, `"storage.filesystem"`}},
		{"wrong type bool", minimal + "  delete:\n    enabled: maybe\n", "storage.delete.enabled", 6, []string{"config.yml:6: storage.delete.enabled: must be true or false", "maybe"}},
		{"wrong type int", minimal + "catalog:\n  maxentries: lots\n", "catalog.maxentries", 6, []string{"catalog.maxentries: must be an integer", "lots"}},
		{"list for string", minimal + "http:\n  addr: [1]\n", "http.addr", 6, []string{"http.addr: must be a string, got a list"}},
		{"map for section value", minimal + "http: yes\n", "http", 5, []string{"http: must be a map of keys"}},
		{"headers not lists", minimal + "http:\n  headers:\n    X-A: {b: c}\n", "http.headers", 7, []string{"header X-A"}},
		{"duplicate key", minimal + "catalog:\n  maxentries: 5\n  maxentries: 6\n", "catalog.maxentries", 7, []string{"duplicate key (first at line 6)"}},
		{"negative maxentries", minimal + "catalog:\n  maxentries: -1\n", "catalog.maxentries", 6, []string{"must be a positive number"}},
		{"zero maxentries", minimal + "catalog:\n  maxentries: 0\n", "catalog.maxentries", 6, []string{"must be a positive number"}},
		{"bad duration", minimal + "  maintenance:\n    uploadpurging:\n      age: soon\n", "storage.maintenance.uploadpurging.age", 7, []string{"must be a duration", "soon"}},
		{"duration without unit", minimal + "health:\n  storagedriver:\n    interval: 10\n", "health.storagedriver.interval", 7, []string{"with a unit, such as 10s"}},
		{"negative duration", minimal + "http:\n  draintimeout: -5s\n", "http.draintimeout", 6, []string{"must not be negative"}},
		{"zero purge interval", minimal + "  maintenance:\n    uploadpurging:\n      interval: 0s\n", "storage.maintenance.uploadpurging.interval", 7, []string{"must be positive"}},
		{"bad level", "version: 0.1\nlog:\n  level: loud\nstorage:\n  inmemory: {}\n", "log.level", 3, []string{`"loud" is not one of error, warn, info, debug`}},
		{"bad formatter", "version: 0.1\nlog:\n  formatter: xml\nstorage:\n  inmemory:\n", "log.formatter", 3, []string{`"xml" is not one of`}},
		{"tls1.0", minimal + "http:\n  tls:\n    minimumtls: tls1.0\n", "http.tls.minimumtls", 7, []string{"tls1.0 is not supported"}},
		{"bad tls value", minimal + "http:\n  tls:\n    minimumtls: ssl3\n", "http.tls.minimumtls", 7, []string{`"ssl3" is not one of`}},
		{"version", "version: 0.2\nstorage:\n  inmemory:\n", "version", 1, []string{`must be 0.1`, `"0.2"`}},
		{"host not absolute", minimal + "http:\n  host: registry.example.com\n", "http.host", 6, []string{"absolute URL"}},
		{"prefix slashes", minimal + "http:\n  prefix: registry\n", "http.prefix", 6, []string{"start and end with a slash"}},
		{"addr without port", minimal + "http:\n  addr: localhost\n", "http.addr", 6, []string{"host:port"}},
		{"debug addr", minimal + "http:\n  debug:\n    addr: nope\n", "http.debug.addr", 7, []string{"host:port"}},
		{"prometheus path", minimal + "http:\n  debug:\n    prometheus:\n      path: metrics\n", "http.debug.prometheus.path", 8, []string{"start with a slash"}},
		{"bad net", minimal + "http:\n  net: udp\n", "http.net", 6, []string{`"udp" is not one of tcp, unix`}},
		{"certificate without key", minimal + "http:\n  tls:\n    certificate: /c.pem\n", "http.tls.certificate", 7, []string{"needs http.tls.key"}},
		{"clientcas without tls", minimal + "http:\n  tls:\n    clientcas: [/ca.pem]\n", "http.tls.clientcas", 7, []string{"need TLS"}},
		{"threshold", minimal + "health:\n  storagedriver:\n    threshold: 0\n", "health.storagedriver.threshold", 7, []string{"positive"}},
		{"empty rootdirectory", "storage:\n  filesystem:\n    rootdirectory: \"\"\n", "storage.filesystem.rootdirectory", 3, []string{"must not be empty"}},
		{"two auth providers", minimal + "auth:\n  silly: {realm: a, service: b}\n  htpasswd: {realm: a, path: /p}\n", "auth.silly", 6, []string{"auth.silly is not supported"}},
		{"ignored key type", minimal + "redis:\n  db: zero\n", "redis.db", 6, []string{"must be an integer"}},
		{"list element", minimal + "notifications:\n  endpoints:\n    - name: a\n      url: http://h/\n      timeout: soon\n", "notifications.endpoints[0].timeout", 9, []string{"duration"}},
		{"gcs driver", "version: 0.1\nstorage:\n  gcs:\n    bucket: b\n", "storage.gcs", 3, []string{`config.yml:3: storage.gcs: storage driver "gcs" is not supported yet`}},
		{"storage names gcs", "storage: gcs\n", "storage.gcs", 1, []string{`storage driver "gcs" is not supported yet`}},
		{"s3 without bucket", "version: 0.1\nstorage:\n  s3:\n    region: eu-west-1\n", "storage.s3.bucket", 3, []string{"storage.s3.bucket is required"}},
		{"s3 chunksize", "version: 0.1\nstorage:\n  s3:\n    bucket: b\n    chunksize: 1024\n", "storage.s3.chunksize", 5, []string{"between 5242880 and"}},
		{"s3 chunksize text", "version: 0.1\nstorage:\n  s3:\n    bucket: b\n    chunksize: big\n", "storage.s3.chunksize", 5, []string{"number of bytes"}},
		{"s3 endpoint", "version: 0.1\nstorage:\n  s3:\n    bucket: b\n    regionendpoint: ftp://x\n", "storage.s3.regionendpoint", 5, []string{"http(s)://host"}},
		{"azure driver", "storage:\n  azure:\n    accountname: a\n", "storage.azure", 2, []string{`storage driver "azure" is not supported yet`}},
		{"two drivers", "version: 0.1\nstorage:\n  inmemory: {}\n  filesystem:\n    rootdirectory: /x\n", "storage", 4, []string{"more than one storage driver is configured (inmemory, filesystem)"}},
		{"no driver", "version: 0.1\nstorage:\n  delete:\n    enabled: true\n", "storage", 2, []string{"no storage driver is configured"}},
		{"no storage section", "version: 0.1\nhttp:\n  addr: :5000\n", "storage", 0, []string{"config.yml: storage: no storage driver is configured"}},
		{"not yaml", "version: [\n", "", 1, []string{"config.yml:1: not valid YAML"}},
		{"tab indentation", "storage:\n\tinmemory: {}\n", "", 2, []string{"not valid YAML"}},
		{"empty", "", "", 0, []string{"empty"}},
		{"only comments", "# nothing\n", "", 0, []string{"empty"}},
		{"not a map", "- a\n- b\n", "", 1, []string{"must be a map of keys"}},
		{"two documents", minimal + "---\nversion: 0.1\n", "", 5, []string{"second YAML document"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yml), nil)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("%T is not an *Error", err)
			}
			if e.Key != tc.key || e.Line != tc.line {
				t.Errorf("Error{Key: %q, Line: %d}, want %q, %d", e.Key, e.Line, tc.key, tc.line)
			}
		})
	}
}

func TestErrorsJoined(t *testing.T) {
	_, err := Parse([]byte(`version: 0.1
storage:
  gcs:
    bucket: b
  delete:
    enabled: maybe
catalog:
  maxentries: x
  extra: 1
`), []string{"REGISTRY_HTTP_ADDR=[1]"})
	if err == nil {
		t.Fatal("no error")
	}
	lines := strings.Split(err.Error(), "\n")
	want := []string{
		`config.yml:3: storage.gcs: storage driver "gcs" is not supported yet (registryd supports filesystem, inmemory and s3)`,
		`config.yml:6: storage.delete.enabled: must be true or false, got "maybe"`,
		`config.yml:8: catalog.maxentries: must be an integer, got "x"`,
		`config.yml:9: unknown key "catalog.extra"`,
		`environment variable REGISTRY_HTTP_ADDR: http.addr: must be host:port or :port with http.net tcp, got "[1]"`,
	}
	if !reflect.DeepEqual(lines, want) {
		t.Fatalf("errors:\n%s\nwant:\n%s", err, strings.Join(want, "\n"))
	}
}

func TestUnimplementedKeysWarn(t *testing.T) {
	cases := []struct {
		yml  string
		want string
	}{
		{"redis:\n  addrs: [localhost:6379]\n  password: x\n  pool:\n    maxidle: 16\n  routebylatency: true\n", "redis"},
		{"proxy:\n  remoteurl: https://registry-1.docker.io\n  remotenamespace: library\n", "proxy.remotenamespace"},
		{"middleware:\n  storage:\n    - name: cloudfront\n      options:\n        baseurl: https://x/\n", "middleware"},
		{"validation:\n  disabled: true\n", "validation"},
		{"compatibility:\n  schema1:\n    enabled: true\n", "compatibility"},
		{"reporting:\n  bugsnag:\n    apikey: k\n", "reporting"},
		{"policy:\n  repository:\n    classes: [image]\n", "policy"},
		{"loglevel: debug\n", "loglevel (deprecated by distribution; use log.level)"},
		{"log:\n  hooks:\n    - type: mail\n      levels: [panic]\n", "log.hooks"},
		{"log:\n  accesslog:\n    disabled: true\n", "log.accesslog"},
		{"log:\n  reportcaller: true\n", "log.reportcaller"},
		{"http:\n  http2:\n    disabled: true\n", "http.http2"},
		{"http:\n  h2c:\n    enabled: true\n", "http.h2c"},
		{"http:\n  tls:\n    letsencrypt:\n      cachefile: /c\n      email: a@b\n", "http.tls.letsencrypt (no http.tls.certificate is set: the registry serves plain HTTP)"},
		{"http:\n  tls:\n    certificate: /c\n    key: /k\n    clientauth: verify-client-cert-if-given\n", "http.tls.clientauth"},
		{"http:\n  tls:\n    certificate: /c\n    key: /k\n    ciphersuites: [TLS_AES_128_GCM_SHA256]\n", "http.tls.ciphersuites"},
		{"health:\n  http:\n    - uri: http://x/\n      statuscode: 200\n", "health.http"},
		{"health:\n  tcp:\n    - addr: redis:6379\n", "health.tcp"},
		{"health:\n  file:\n    - file: /down\n", "health.file"},
		{"storage:\n  filesystem:\n    maxthreads: 100\n", "storage.filesystem.maxthreads"},
		{"storage:\n  filesystem:\n  cache:\n    blobdescriptor: inmemory\n", "storage.cache"},
		{"storage:\n  inmemory:\n  tag:\n    concurrencylimit: 8\n", "storage.tag"},
	}
	for _, tc := range cases {
		t.Run(tc.want, func(t *testing.T) {
			yml := tc.yml
			if !strings.HasPrefix(yml, "storage:") {
				yml = "version: 0.1\nstorage: inmemory\n" + yml
			}
			c := mustParse(t, yml)
			want := []string{"not implemented yet, ignored: " + tc.want}
			if !reflect.DeepEqual(c.Warnings, want) {
				t.Fatalf("warnings %q, want %q", c.Warnings, want)
			}
			path, _, _ := strings.Cut(tc.want, " ")
			if _, ok := c.Ignored[path]; !ok {
				t.Fatalf("Ignored has no %s: %v", path, c.Ignored)
			}
		})
	}
	// auth.none means what registryd does: no warning.
	if c := mustParse(t, minimal+"auth:\n  none: {}\n"); len(c.Warnings) != 0 {
		t.Errorf("auth.none: %v", c.Warnings)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "registry.yml")
	if err := os.WriteFile(path, []byte(minimal+"catalog:\n  maxentries: lots\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path, nil)
	if err == nil || !strings.HasPrefix(err.Error(), path+":6: catalog.maxentries") {
		t.Fatalf("error does not name the file and line: %v", err)
	}
	_, err = Load(filepath.Join(dir, "missing.yml"), nil)
	if err == nil || !strings.Contains(err.Error(), "missing.yml") {
		t.Fatalf("missing file: %v", err)
	}
	if err := os.WriteFile(path, []byte(minimal), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path, []string{"REGISTRY_HTTP_ADDR=:6000"})
	if err != nil || c.HTTP.Addr != ":6000" || c.Storage.Filesystem.RootDirectory != "/srv/registry" {
		t.Fatalf("%v %+v", err, c)
	}
}

// exampleFile is config.example.yml.
func exampleFile(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("../config.example.yml")
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestExampleFile(t *testing.T) {
	example := exampleFile(t)
	c := mustParse(t, example)
	if len(c.Warnings) != 0 {
		t.Fatalf("the example uses keys registryd does not implement: %v", c.Warnings)
	}
	// Every value in it is the default, as its comments say.
	if want := mustParse(t, "storage:\n  filesystem:\n"); !reflect.DeepEqual(c, want) {
		t.Fatalf("example:\n%+v\ndefaults:\n%+v", c, want)
	}
	// Every implemented key appears in it, at its place: a line with the
	// key's name indented two spaces per level.
	var missing []string
	var visit func(path string, k *key)
	visit = func(path string, k *key) {
		if path != "" && !k.implemented || path == "storage.inmemory" || path == "storage.s3" || path == "auth" || path == "access" || path == "proxy" {
			// inmemory, s3, auth, access and proxy are described in
			// comments: the file selects filesystem, no authentication
			// and no upstream.
			return
		}
		if k.kind != kSection {
			name := path[strings.LastIndex(path, ".")+1:]
			if !strings.Contains(example, "\n"+strings.Repeat("  ", strings.Count(path, "."))+name+":") {
				missing = append(missing, path)
			}
			return
		}
		for _, n := range childList(k) {
			visit(joinPath(path, n), k.children[n])
		}
	}
	visit("", schema())
	if len(missing) > 0 {
		t.Errorf("config.example.yml lacks %v", missing)
	}

	// The commented-out s3 section parses in place of filesystem, with
	// every implemented s3 key.
	_, s3block, _ := strings.Cut(example, "# --- s3:")
	s3block, _, ok := strings.Cut(s3block, "# --- end of s3")
	if !ok {
		t.Fatal("no commented s3 section")
	}
	var s3yml strings.Builder
	s3yml.WriteString("version: 0.1\nstorage:\n")
	for _, line := range strings.Split(s3block, "\n")[1:] {
		if l := strings.TrimSpace(line); strings.HasPrefix(l, "# ") {
			s3yml.WriteString("  " + l[2:] + "\n")
		}
	}
	s3c, err := Parse([]byte(s3yml.String()), nil)
	if err != nil {
		t.Fatalf("the s3 example:\n%s\n%v", s3yml.String(), err)
	}
	if len(s3c.Warnings) > 0 || s3c.Storage.Driver != "s3" || s3c.Storage.S3.Bucket != "registry" || s3c.Storage.S3.ChunkSize != 10<<20 {
		t.Fatalf("the s3 example: %v %+v", s3c.Warnings, s3c.Storage.S3)
	}
	for name, k := range schema().children["storage"].children["s3"].children {
		if k.implemented && !strings.Contains(s3block, "#   "+name+":") {
			t.Errorf("the s3 example lacks %s", name)
		}
	}

	// The commented-out block of unimplemented keys parses too.
	_, block, ok := strings.Cut(example, "# --- Accepted, not implemented yet")
	if !ok {
		t.Fatal("no block of unimplemented keys")
	}
	var yml strings.Builder
	for _, line := range strings.Split(block, "\n")[1:] {
		if strings.HasPrefix(line, "# ") {
			yml.WriteString(line[2:] + "\n")
		}
	}
	c = mustParse(t, yml.String())
	warned := map[string]bool{}
	for _, w := range c.Warnings {
		path, _, _ := strings.Cut(strings.TrimPrefix(w, "not implemented yet, ignored: "), " ")
		warned[path] = true
	}
	for _, k := range []string{"loglevel", "log.accesslog", "log.reportcaller", "log.hooks", "storage.filesystem.maxthreads",
		"storage.cache", "storage.tag", "middleware", "reporting", "http.tls.clientauth", "http.tls.ciphersuites",
		"http.tls.letsencrypt", "http.http2", "http.h2c", "redis",
		"health.file", "health.http", "health.tcp", "proxy.remotenamespace", "compatibility", "validation", "policy"} {
		if !warned[k] {
			t.Errorf("the example's block does not show %s; warnings:\n%s", k, strings.Join(c.Warnings, "\n"))
		}
	}
}

func TestRedactedAndDump(t *testing.T) {
	c := mustParse(t, minimal+`http:
  secret: hunter2
  headers:
    Authorization: [Basic abc]
redis:
  password: redispw
  addrs: [r:6379]
proxy:
  remoteurl: https://registry-1.docker.io
  username: bob
  password: proxypw
notifications:
  endpoints:
    - name: l
      url: https://l/
      headers:
        Authorization: [Bearer notifytoken]
middleware:
  storage:
    - name: cloudfront
      options:
        privatekey: /pk.pem
        apikey: mwkey
`, "REGISTRY_PROXY_TTL=24h")
	r := c.Redacted()
	if r.HTTP.Secret != masked || r.HTTP.Headers.Get("Authorization") != masked {
		t.Errorf("http secrets not masked: %+v", r.HTTP)
	}
	if c.HTTP.Secret != "hunter2" || c.HTTP.Headers.Get("Authorization") != "Basic abc" || c.Ignored["redis"].(map[string]any)["password"] != "redispw" {
		t.Fatal("Redacted changed the config")
	}
	out, err := c.Dump()
	if err != nil {
		t.Fatal(err)
	}
	dump := string(out)
	for _, secret := range []string{"hunter2", "redispw", "proxypw", "notifytoken", "Basic abc", "mwkey"} {
		if strings.Contains(dump, secret) {
			t.Errorf("dump shows %q:\n%s", secret, dump)
		}
	}
	for _, want := range []string{"rootdirectory: /srv/registry", "age: 168h", "username: bob", "remoteurl: https://registry-1.docker.io",
		"redis: # not implemented yet, ignored", "ttl: 24h"} {
		if !strings.Contains(dump, want) {
			t.Errorf("dump lacks %q:\n%s", want, dump)
		}
	}
	// s3 never parses (it is an error), but Redacted masks its secrets
	// wherever a Config holds them.
	s3 := &Config{Ignored: map[string]any{"storage.s3": map[string]any{"accesskey": "AK", "secretkey": "SK"}}}
	if m := s3.Redacted().Ignored["storage.s3"].(map[string]any); m["secretkey"] != masked || m["accesskey"] != "AK" {
		t.Errorf("s3 secretkey: %v", m)
	}

	// The dump parses back to the same configuration, secrets aside.
	back, err := Parse(out, nil)
	if err != nil {
		t.Fatalf("dump does not parse: %v\n%s", err, dump)
	}
	sort.Strings(back.Warnings) // the dump orders ignored keys by name
	want := c.Redacted()
	sort.Strings(want.Warnings)
	if !reflect.DeepEqual(back, want) {
		t.Errorf("round trip:\n%+v\nwant\n%+v\ndump:\n%s", back, want, dump)
	}
	for _, cfg := range []*Config{Default(), mustParse(t, "storage: inmemory\n")} {
		out, err := cfg.Dump()
		if err != nil {
			t.Fatal(err)
		}
		back, err := Parse(out, nil)
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if !reflect.DeepEqual(back, cfg) {
			t.Errorf("round trip:\n%+v\nwant\n%+v", back, cfg)
		}
	}
}

func TestAliasBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 12; i++ {
		fmt.Fprintf(&b, "a%d: &a%d [*a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d]\n", i, i, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1)
	}
	_, err := Parse([]byte(b.String()), nil)
	if err == nil || !strings.Contains(err.Error(), "aliases expand too") {
		t.Fatalf("%v", err)
	}
}

// auth.silly would let anyone in: it is an error naming the key, from the
// file or from the environment. auth.none asks for nothing and passes.
func TestAuthSillyIsAnError(t *testing.T) {
	cases := []struct{ yml, env string }{
		{"auth: silly\n", ""},
		{"auth:\n  silly:\n    realm: r\n    service: s\n", ""},
		{"", "REGISTRY_AUTH_SILLY_REALM=r"},
	}
	for _, tc := range cases {
		t.Run(tc.yml+tc.env, func(t *testing.T) {
			var env []string
			if tc.env != "" {
				env = []string{tc.env}
			}
			_, err := Parse([]byte(minimal+tc.yml), env)
			var e *Error
			if !errors.As(err, &e) || e.Key != "auth.silly" || !strings.Contains(err.Error(), "auth.silly is not supported") {
				t.Fatalf("got %v, want an error for auth.silly", err)
			}
		})
	}
	if _, err := Parse([]byte(minimal+"auth:\n  none:\n"), nil); err != nil {
		t.Fatalf("auth.none: %v", err)
	}
}

func TestS3(t *testing.T) {
	c, err := Parse([]byte("version: 0.1\nstorage:\n  s3:\n    bucket: b\n    regionendpoint: http://127.0.0.1:9000\n    secretkey: SUPERSECRET\n    chunksize: \"6291456\"\n    storageclass: NONE\n"),
		[]string{"REGISTRY_STORAGE_S3_ACCESSKEY=AK", "REGISTRY_STORAGE_S3_FORCEPATHSTYLE=true", "REGISTRY_STORAGE_S3_MULTIPARTCOPYTHRESHOLDSIZE=1048576", "REGISTRY_STORAGE_S3_ROOTDIRECTORY=/reg"})
	if err != nil {
		t.Fatal(err)
	}
	s := c.Storage.S3
	if c.Storage.Driver != "s3" || s.Bucket != "b" || s.AccessKey != "AK" || s.SecretKey != "SUPERSECRET" || !s.ForcePathStyle || !s.Secure ||
		s.ChunkSize != 6<<20 || s.MultipartCopyThresholdSize != 1<<20 || s.RootDirectory != "/reg" || s.StorageClass != "" || len(c.Warnings) > 0 {
		t.Fatalf("%+v %v", s, c.Warnings)
	}
	dump, err := c.Dump()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(dump), "SUPERSECRET") || !strings.Contains(string(dump), "secretkey: '*****'") && !strings.Contains(string(dump), `secretkey: "*****"`) {
		t.Fatalf("dump:\n%s", dump)
	}
	back, err := Parse(dump, nil)
	if err != nil || back.Storage.S3.Bucket != "b" || back.Storage.S3.ChunkSize != 6<<20 {
		t.Fatalf("dump does not parse back: %v\n%s", err, dump)
	}
	// the environment alone selects and configures the driver
	c, err = Load("", []string{"REGISTRY_STORAGE_S3_BUCKET=b2", "REGISTRY_STORAGE_S3_REGIONENDPOINT=http://minio:9000"})
	if err != nil || c.Storage.Driver != "s3" || c.Storage.S3.Bucket != "b2" || c.Storage.S3.ChunkSize != 10<<20 || c.Storage.S3.MultipartCopyThresholdSize != 32<<20 {
		t.Fatalf("env only: %v %+v", err, c)
	}
}
