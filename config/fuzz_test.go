package config

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
)

// The fuzz targets of the configuration: the file loader and the REGISTRY_*
// variables. Seeds are the f.Add calls and the files in
// testdata/fuzz/<target>; `go test` runs them all, `make fuzz` explores.

// configErrors returns the *Error values err joins, failing when err holds
// anything else: every problem is located by key and by line or variable.
func configErrors(t *testing.T, err error) []*Error {
	t.Helper()
	var list []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	} else {
		list = []error{err}
	}
	out := make([]*Error, 0, len(list))
	for _, e := range list {
		var ce *Error
		if !errors.As(e, &ce) {
			t.Fatalf("error %q (%T) is not located", e, e)
		}
		out = append(out, ce)
	}
	return out
}

// dumpFixedPoint checks Dump's promise: its output parses back to the same
// configuration, so dumping that gives the same bytes.
func dumpFixedPoint(t *testing.T, c *Config) {
	t.Helper()
	d1, err := c.Dump()
	if err != nil {
		t.Fatalf("Dump: %v", err)
	}
	c2, err := Parse(d1, nil)
	if err != nil {
		t.Fatalf("Dump output does not parse back: %v\n%s", err, d1)
	}
	d2, err := c2.Dump()
	if err != nil {
		t.Fatalf("Dump of the parsed dump: %v", err)
	}
	if !bytes.Equal(d1, d2) {
		t.Fatalf("Dump is not a fixed point:\n%s\n---\n%s", d1, d2)
	}
}

func fileSeeds(f *testing.F, names ...string) {
	for _, n := range names {
		if b, err := os.ReadFile(n); err == nil {
			f.Add(b)
		}
	}
}

// FuzzParse: no file makes the loader panic or hang; a refused file gets
// errors that each name a key and a line; an accepted one dumps to YAML
// that parses back to itself.
func FuzzParse(f *testing.F) {
	fileSeeds(f, "../config.example.yml", "../deploy/config.yml")
	for _, s := range []string{
		"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /r\n",
		"version: 0.1\nstorage: inmemory\nhttp:\n  addr: :5000\n  headers:\n    X-A: [b]\n",
		"version: 0.1\nstorage:\n  s3:\n    bucket: b\n    chunksize: 5242880\n    secretkey: s\n",
		"version: 0.1\nstorage:\n  inmemory:\n  delete: {enabled: yes}\nlog: {level: DEBUG, fields: {a: 1}}\n",
		"a: &a [*a]\n", "x: &x {a: 1}\ny: {<<: *x}\n", "---\n---\n", "version: 0.1\nstorage: {inmemory: {}, filesystem: {}}\n",
		"version: 0.1\nstorage:\n  inmemory:\nauth:\n  htpasswd: {realm: r, path: /p}\n",
		"version: 0.1\nstorage:\n  inmemory:\nnotifications:\n  endpoints:\n    - name: e\n      url: http://x/\n      headers: {Authorization: [s]}\n",
		"version: 0.1\nstorage:\n  inmemory:\nredis: {addr: x, password: p}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, nil)
		if err != nil {
			for _, e := range configErrors(t, err) {
				if e.File == "" || e.EnvVar != "" {
					t.Fatalf("error %q blames no file (or a variable)", e)
				}
			}
			return
		}
		if c.Storage.Driver == "" {
			t.Fatalf("accepted without a storage driver")
		}
		dumpFixedPoint(t, c)
	})
}

// fuzzEnvBase is the file FuzzEnv applies variables to: valid by itself.
const fuzzEnvBase = `version: 0.1
storage:
  filesystem:
    rootdirectory: /var/lib/registry
  delete:
    enabled: false
http:
  addr: :5000
  headers:
    X-Content-Type-Options: [nosniff]
notifications:
  endpoints:
    - name: hook
      url: http://hook.example/
`

// FuzzEnv: a REGISTRY_* variable that is wrong is blamed, by name, never
// the file it applies to; one that names no key is a warning; an accepted
// result dumps to YAML that parses back to itself.
func FuzzEnv(f *testing.F) {
	for _, kv := range [][2]string{
		{"STORAGE_DELETE_ENABLED", "true"}, {"STORAGE_DELETE_ENABLED", "maybe"}, {"STORAGE", "inmemory"}, {"STORAGE_INMEMORY", ""},
		{"HTTP_ADDR", ":5001"}, {"HTTP_ADDR", ""}, {"HTTP_HEADERS", "{X-A: [b]}"}, {"HTTP_TLS_CLIENTCAS_0", "/ca.pem"},
		{"HTTP_TLS_CLIENTCAS_7", "/ca.pem"}, {"LOG_FIELDS_SERVICE", "registry"}, {"NOTIFICATIONS_ENDPOINTS_0_TIMEOUT", "1s"},
		{"NOTIFICATIONS_ENDPOINTS_0_HEADERS", "[a"}, {"STORAGE_S3_BUCKET", "b"}, {"STORAGE_FILESYSTEM_ROOTDIRECTORY", "'#x: y'"},
		{"PORT", "tcp://10.0.0.1:5000"}, {"STORAGE_MAINTENANCE_UPLOADPURGING", "{enabled: false}"}, {"HTTP", "[]"}, {"", "x"},
		{"STORAGE_GCS_CREDENTIALS_PROJECT_ID", "p"}, {"CATALOG_MAXENTRIES", "-1"}, {"LOG_LEVEL", "*a"},
	} {
		f.Add(kv[0], kv[1])
	}
	f.Fuzz(func(t *testing.T, name, value string) {
		if strings.ContainsAny(name, "=\x00") {
			return // not a variable name the environment can hold
		}
		v := envPrefix + name
		c, err := Parse([]byte(fuzzEnvBase), []string{v + "=" + value})
		if err != nil {
			for _, e := range configErrors(t, err) {
				if e.EnvVar != v {
					t.Fatalf("%s=%q: error %q blames %q", v, value, e, e.EnvVar+e.File)
				}
			}
			return
		}
		dumpFixedPoint(t, c)
	})
}
