package main

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/registryd/registryd/config"
)

func TestS3StorageRegistrydParses(t *testing.T) {
	p := s3Params{Endpoint: "http://127.0.0.1:9000", Bucket: "regbench-registryd-r1", AccessKey: "ak", SecretKey: "sk", RootDir: "/registry"}
	c, err := config.Parse([]byte(configYAML(s3Storage(flavorRegistryd, p), "127.0.0.1:5000", "")), nil)
	if err != nil {
		t.Fatalf("registryd rejects the s3 config: %v", err)
	}
	s := c.Storage.S3
	if s.Bucket != p.Bucket || s.RegionEndpoint != p.Endpoint || !s.ForcePathStyle || s.AccessKey != "ak" || s.SecretKey != "sk" || s.RootDirectory != "/registry" {
		t.Errorf("parsed storage.s3 = %+v", s)
	}
	if !c.Storage.Redirect.Disable {
		t.Error("redirects not disabled")
	}
}

func TestS3StorageFlavors(t *testing.T) {
	p := s3Params{Endpoint: "http://127.0.0.1:9000", Bucket: "b", AccessKey: "ak", SecretKey: "sk"}
	for _, tc := range []struct {
		name      string
		want, not []string
	}{
		{"registryd", []string{"forcepathstyle"}, []string{"v4auth", "secure", "rootdirectory"}},
		{"docker-registry 2.8", []string{"v4auth", "secure"}, []string{"forcepathstyle"}},
		{"distribution v3", []string{"forcepathstyle", "secure"}, []string{"v4auth"}},
	} {
		var doc map[string]any
		if err := yaml.Unmarshal([]byte(configYAML(s3Storage(flavorOf(tc.name), p), "127.0.0.1:5000", "")), &doc); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		storage := doc["storage"].(map[string]any)
		s3 := storage["s3"].(map[string]any)
		for _, k := range append([]string{"region", "regionendpoint", "bucket", "accesskey", "secretkey"}, tc.want...) {
			if _, ok := s3[k]; !ok {
				t.Errorf("%s: storage.s3.%s missing", tc.name, k)
			}
		}
		for _, k := range tc.not {
			if _, ok := s3[k]; ok {
				t.Errorf("%s: storage.s3.%s set", tc.name, k)
			}
		}
		if s3["regionendpoint"] != p.Endpoint || s3["bucket"] != "b" {
			t.Errorf("%s: storage.s3 = %v", tc.name, s3)
		}
		if r := storage["redirect"].(map[string]any); r["disable"] != true {
			t.Errorf("%s: redirect = %v", tc.name, r)
		}
		if d := storage["delete"].(map[string]any); d["enabled"] != true {
			t.Errorf("%s: delete = %v", tc.name, d)
		}
	}
}

func TestBucketName(t *testing.T) {
	valid := regexp.MustCompile(`^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$`)
	for name, want := range map[string]string{
		"registryd":           "regbench-registryd-r1",
		"docker-registry 2.8": "regbench-docker-registry-2-8-r1",
		"distribution v3":     "regbench-distribution-v3-r1",
	} {
		if got := bucketName(name, 1); got != want {
			t.Errorf("bucketName(%q) = %q, want %q", name, got, want)
		}
	}
	for _, name := range []string{"x", strings.Repeat("Ab_", 40), "--", "é registry"} {
		if got := bucketName(name, 12); !valid.MatchString(got) || strings.Contains(got, "--") {
			t.Errorf("bucketName(%q) = %q: not a valid bucket name", name, got)
		}
	}
}

func TestFormatCompare(t *testing.T) {
	m := &metric{Name: "push", Unit: "MB/s", Higher: true}
	m.add("registryd", 60)
	m.add("distribution v3", 40)
	m.add("registryd filesystem", 400)
	got := formatCompare([]*metric{m}, "registryd", []string{"docker-registry 2.8", "distribution v3"},
		[]string{"registryd filesystem"}, map[string]string{"docker-registry 2.8": "exited at startup"})
	want := `| workload | unit | registryd | docker-registry 2.8 | distribution v3 | registryd / best ref | registryd filesystem |
| -------- | ---- | --------: | ------------------: | --------------: | -------------------: | -------------------: |
| push     | MB/s |      60.0 |                 n/a |            40.0 |                1.50× |                  400 |
`
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestFailReason(t *testing.T) {
	err := errors.New("docker-registry 2.8 exited at startup:\ngoroutine 1 [running]:\nmain.main()")
	log := "time=x level=info msg=start\npanic: failed to create new session with aws config: LoadCustomCABundleError\n\ngoroutine 1 [running]:\n"
	if got, want := failReason(err, log), "docker-registry 2.8 exited at startup: panic: failed to create new session with aws config: LoadCustomCABundleError"; got != want {
		t.Errorf("failReason = %q, want %q", got, want)
	}
	if got, want := failReason(errors.New("PUT /v2/x: 500\nserver log:\n..."), "level=info\n"), "PUT /v2/x: 500"; got != want {
		t.Errorf("failReason = %q, want %q", got, want)
	}
	if got := failReason(errors.New(strings.Repeat("x", 400)), ""); len(got) != 303 {
		t.Errorf("failReason did not shorten: %d", len(got))
	}
}
