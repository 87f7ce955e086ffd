package config

import (
	"os"
	"strings"
	"testing"
	"time"
)

const minimal = `version: 0.1
storage:
  filesystem:
    rootdirectory: /srv/registry
`

func TestDefault(t *testing.T) {
	c, err := Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTP.Addr != ":5000" || c.Storage.Driver != "filesystem" || c.Storage.Filesystem.RootDirectory != "./data" {
		t.Fatalf("embedded default: %+v", c)
	}
	if c.Storage.Delete.Enabled || !c.Storage.Maintenance.UploadPurging.Enabled || c.Storage.Maintenance.UploadPurging.Age != 168*time.Hour {
		t.Fatalf("defaults: %+v", c.Storage)
	}
	if c.Catalog.MaxEntries != 1000 || c.HTTP.Headers.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("defaults: %+v %+v", c.Catalog, c.HTTP.Headers)
	}
	if len(c.Warnings) != 0 {
		t.Fatalf("warnings on the default: %v", c.Warnings)
	}
}

func TestParseKeys(t *testing.T) {
	c, err := Parse([]byte(`version: 0.1
log:
  level: debug
  formatter: json
  fields:
    service: registry
storage:
  filesystem:
    rootdirectory: /data
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
      age: 1h
      interval: 2h
      dryrun: true
    readonly:
      enabled: true
http:
  addr: 127.0.0.1:5001
  host: https://registry.example.com
  relativeurls: true
  secret: s3cr3t
  draintimeout: 10s
  headers:
    X-Frame-Options: [DENY]
  tls:
    certificate: /c.pem
    key: /k.pem
    minimumtls: tls1.3
catalog:
  maxentries: 50
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name string
		ok   bool
	}{
		{"log.level", c.Log.Level == "debug"},
		{"log.formatter", c.Log.Formatter == "json"},
		{"log.fields", c.Log.Fields["service"] == "registry"},
		{"rootdirectory", c.Storage.Filesystem.RootDirectory == "/data"},
		{"delete", c.Storage.Delete.Enabled},
		{"uploadpurging", !c.Storage.Maintenance.UploadPurging.Enabled && c.Storage.Maintenance.UploadPurging.Age == time.Hour && c.Storage.Maintenance.UploadPurging.Interval == 2*time.Hour && c.Storage.Maintenance.UploadPurging.DryRun},
		{"readonly", c.Storage.Maintenance.ReadOnly.Enabled},
		{"http.addr", c.HTTP.Addr == "127.0.0.1:5001"},
		{"http.host", c.HTTP.Host == "https://registry.example.com"},
		{"relativeurls", c.HTTP.RelativeURLs},
		{"secret", c.HTTP.Secret == "s3cr3t"},
		{"draintimeout", c.HTTP.DrainTimeout == 10*time.Second},
		{"headers", c.HTTP.Headers.Get("X-Frame-Options") == "DENY"},
		{"tls", c.HTTP.TLS.Certificate == "/c.pem" && c.HTTP.TLS.Key == "/k.pem" && c.HTTP.TLS.MinimumTLS == "tls1.3"},
		{"catalog", c.Catalog.MaxEntries == 50},
	}
	for _, ch := range checks {
		if !ch.ok {
			t.Errorf("%s not parsed: %+v", ch.name, c)
		}
	}
	// a file without rootdirectory uses distribution's default
	c, err = Parse([]byte("version: 0.1\nstorage:\n  filesystem: {}\n"), nil)
	if err != nil || c.Storage.Filesystem.RootDirectory != "/var/lib/registry" {
		t.Fatalf("default rootdirectory: %v %q", err, c.Storage.Filesystem.RootDirectory)
	}
}

func TestEnvOverrides(t *testing.T) {
	cases := []struct {
		env   string
		check func(*Config) bool
	}{
		{"REGISTRY_STORAGE_DELETE_ENABLED=true", func(c *Config) bool { return c.Storage.Delete.Enabled }},
		{"REGISTRY_HTTP_ADDR=:5001", func(c *Config) bool { return c.HTTP.Addr == ":5001" }},
		{"REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=/x", func(c *Config) bool { return c.Storage.Filesystem.RootDirectory == "/x" }},
		{"REGISTRY_LOG_LEVEL=debug", func(c *Config) bool { return c.Log.Level == "debug" }},
		{"REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_ENABLED=false", func(c *Config) bool { return !c.Storage.Maintenance.UploadPurging.Enabled }},
		{"REGISTRY_STORAGE_MAINTENANCE_READONLY_ENABLED=true", func(c *Config) bool { return c.Storage.Maintenance.ReadOnly.Enabled }},
		{"REGISTRY_CATALOG_MAXENTRIES=50", func(c *Config) bool { return c.Catalog.MaxEntries == 50 }},
		{"REGISTRY_HTTP_SECRET=true", func(c *Config) bool { return c.HTTP.Secret == "true" }},
	}
	for _, tc := range cases {
		t.Run(tc.env, func(t *testing.T) {
			for _, file := range []string{minimal, ""} {
				var c *Config
				var err error
				if file == "" {
					c, err = Load("", []string{tc.env})
				} else {
					c, err = Parse([]byte(file), []string{tc.env})
				}
				if err != nil {
					t.Fatal(err)
				}
				if !tc.check(c) {
					t.Fatalf("override not applied: %+v", c)
				}
			}
		})
	}
	// bad values name the variable
	_, err := Parse([]byte(minimal), []string{"REGISTRY_STORAGE_DELETE_ENABLED=maybe"})
	if err == nil || !strings.Contains(err.Error(), "REGISTRY_STORAGE_DELETE_ENABLED") || !strings.Contains(err.Error(), "storage.delete.enabled") {
		t.Fatalf("bad env value: %v", err)
	}
	// unrelated REGISTRY_* variables (Kubernetes service links) only warn
	c, err := Parse([]byte(minimal), []string{"REGISTRY_PORT=tcp://10.0.0.1:5000", "REGISTRY_SERVICE_HOST=10.0.0.1"})
	if err != nil || len(c.Warnings) != 2 {
		t.Fatalf("unrelated variables: %v %v", err, c.Warnings)
	}
}

func TestErrors(t *testing.T) {
	cases := []struct {
		name, yaml string
		want       []string // substrings of the error
	}{
		{"unknown key", minimal + "  delete:\n    enabeld: true\n", []string{"config:6:", "storage.delete.enabeld", "unknown key"}},
		{"unknown top key", "version: 0.1\nstorage:\n  filesystem: {}\nfoo: bar\n", []string{"config:4:", `foo`}},
		{"wrong type bool", minimal + "  delete:\n    enabled: maybe\n", []string{"config:6:", "storage.delete.enabled", "true or false"}},
		{"wrong type int", minimal + "catalog:\n  maxentries: lots\n", []string{"config:6:", "catalog.maxentries", "integer"}},
		{"list for string", minimal + "http:\n  addr: [1]\n", []string{"config:6:", "http.addr", "string"}},
		{"negative maxentries", minimal + "catalog:\n  maxentries: -1\n", []string{"catalog.maxentries", "positive"}},
		{"bad duration", minimal + "  maintenance:\n    uploadpurging:\n      age: soon\n", []string{"config:7:", "uploadpurging.age", "duration"}},
		{"bad level", "version: 0.1\nlog:\n  level: loud\nstorage:\n  inmemory: {}\n", []string{"config:3:", "log.level", "loud"}},
		{"bad formatter", "version: 0.1\nlog:\n  formatter: xml\nstorage:\n  inmemory:\n", []string{"log.formatter", "xml"}},
		{"bad tls", minimal + "http:\n  tls:\n    minimumtls: tls1.0\n", []string{"http.tls.minimumtls"}},
		{"s3 driver", "version: 0.1\nstorage:\n  s3:\n    bucket: b\n", []string{"storage.s3", "not supported yet"}},
		{"two drivers", "version: 0.1\nstorage:\n  inmemory: {}\n  filesystem:\n    rootdirectory: /x\n", []string{"more than one storage driver"}},
		{"no driver", "version: 0.1\nstorage:\n  delete:\n    enabled: true\n", []string{"no storage driver"}},
		{"version", "version: 0.2\nstorage:\n  inmemory:\n", []string{"version", "0.1"}},
		{"host", minimal + "http:\n  host: registry.example.com\n", []string{"http.host", "absolute URL"}},
		{"cert without key", minimal + "http:\n  tls:\n    certificate: /c.pem\n", []string{"http.tls", "together"}},
		{"not yaml", "version: [", []string{"not valid YAML"}},
		{"empty", "", []string{"empty"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.yaml), nil)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
	// several problems are all reported at once
	_, err := Parse([]byte(minimal+"  delete:\n    enabled: maybe\ncatalog:\n  maxentries: x\n"), nil)
	if err == nil || !strings.Contains(err.Error(), "storage.delete.enabled") || !strings.Contains(err.Error(), "catalog.maxentries") {
		t.Fatalf("joined errors: %v", err)
	}
}

func TestUnimplementedKeysWarn(t *testing.T) {
	c, err := Parse([]byte(minimal+`auth:
  htpasswd:
    realm: basic-realm
    path: /auth/htpasswd
notifications:
  endpoints:
    - name: alistener
      url: https://my.listener.com/event
redis:
  addr: localhost:6379
  password: asecret
proxy:
  remoteurl: https://registry-1.docker.io
http:
  addr: :5000
  debug:
    addr: localhost:5001
  http2:
    disabled: false
health:
  storagedriver:
    enabled: true
validation:
  disabled: true
middleware:
  registry:
    - name: ARegistryMiddleware
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	all := strings.Join(c.Warnings, "\n")
	for _, k := range []string{"auth", "notifications", "redis", "proxy", "http.http2", "validation", "middleware"} {
		if !strings.Contains(all, "configuration key "+k+" is not implemented yet") {
			t.Errorf("no warning for %s in:\n%s", k, all)
		}
	}
}

func TestExampleParses(t *testing.T) {
	data, err := os.ReadFile("../config.example.yml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse(data, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Warnings) != 0 {
		t.Fatalf("the example uses keys registryd does not implement: %v", c.Warnings)
	}
}

func TestDumpMasksSecrets(t *testing.T) {
	c, err := Parse([]byte(minimal+"http:\n  secret: hunter2\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.Dump()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "hunter2") || !strings.Contains(string(out), "rootdirectory: /srv/registry") {
		t.Fatalf("dump:\n%s", out)
	}
	if c.HTTP.Secret != "hunter2" {
		t.Fatal("Dump changed the config")
	}
}
