package config

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// distribution's proxy keys move over unchanged and mean what they mean
// there; the defaults are distribution's where it has one.
func TestProxyDistributionKeys(t *testing.T) {
	c := mustParse(t, minimal+`proxy:
  remoteurl: https://registry-1.docker.io
  username: bob
  password: s3cret
  ttl: 72h
  exec:
    command: docker-credential-pass
    lifetime: 0s
`)
	p := c.Proxy
	if p == nil || p.RemoteURL != "https://registry-1.docker.io" || p.Username != "bob" || p.Password != "s3cret" || p.TTL != 72*time.Hour ||
		p.Exec == nil || p.Exec.Command != "docker-credential-pass" || p.Exec.Lifetime == nil || *p.Exec.Lifetime != 0 || len(c.Warnings) > 0 {
		t.Fatalf("%+v %v", p, c.Warnings)
	}
	if p.CacheWriteTimeout != DefaultProxyCacheWriteTimeout || p.Revalidate != DefaultProxyRevalidate || p.Timeout != DefaultProxyTimeout {
		t.Errorf("defaults: %+v", p)
	}
	c = mustParse(t, minimal, "REGISTRY_PROXY_REMOTEURL=https://r.example.com", "REGISTRY_PROXY_EXEC_COMMAND=helper")
	if c.Proxy == nil || c.Proxy.TTL != DefaultProxyTTL || c.Proxy.Exec.Lifetime != nil {
		t.Fatalf("env only: %+v", c.Proxy)
	}
	if c := mustParse(t, minimal); c.Proxy != nil {
		t.Fatalf("no proxy section: %+v", c.Proxy)
	}
}

func TestProxyUpstreams(t *testing.T) {
	c := mustParse(t, minimal+`proxy:
  revalidate: 5m
  timeout: 10s
  upstreams:
    - name: docker.io
      url: https://registry-1.docker.io
      revalidate: 0s
    - name: Registry.Example.com:5000
      url: http://10.0.0.1:5000/
      aliases: [registry]
      maxconcurrent: 4
      library: false
  defaultupstream: docker.io
  hosted: ["team/**"]
  cache:
    maxsize: 1.5GiB
`, "REGISTRY_PROXY_UPSTREAMS_1_USERNAME=ci", "REGISTRY_PROXY_UPSTREAMS_1_PASSWORD=pw")
	p := c.Proxy
	if len(p.Upstreams) != 2 || p.DefaultUpstream != "docker.io" || !reflect.DeepEqual(p.Hosted, []string{"team/**"}) {
		t.Fatalf("%+v", p)
	}
	d, r := p.Upstreams[0], p.Upstreams[1]
	if d.Namespace != "docker.io" || d.Revalidate != 0 || d.Timeout != 10*time.Second || d.Library != nil {
		t.Errorf("docker.io: %+v", d)
	}
	if r.Name != "registry.example.com:5000" || r.Namespace != "registry.example.com_5000" || r.Revalidate != 5*time.Minute ||
		r.MaxConcurrent != 4 || r.Library == nil || *r.Library || r.Username != "ci" || r.Password != "pw" {
		t.Errorf("registry: %+v", r)
	}
	if p.Cache.MaxSize != 3<<29 || p.Cache.HighWatermark != 90 || p.Cache.LowWatermark != 80 {
		t.Errorf("cache: %+v", p.Cache)
	}
	out, err := c.Dump()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "pw\n") {
		t.Errorf("dump shows the password:\n%s", out)
	}
	back, err := Parse(out, nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !reflect.DeepEqual(back, c.Redacted()) {
		t.Errorf("round trip:\n%+v\nwant\n%+v\n%s", back.Proxy, c.Redacted().Proxy, out)
	}
}

func TestProxyErrors(t *testing.T) {
	cases := []struct{ yml, want string }{
		{"proxy:\n  ttl: 1h\n", "needs proxy.remoteurl or proxy.upstreams"},
		{"proxy:\n  remoteurl: registry-1.docker.io\n", "proxy.remoteurl: must be an http(s) URL"},
		{"proxy:\n  remoteurl: https://r/v2/\n", "proxy.remoteurl: must be an http(s) URL"},
		{"proxy:\n  remoteurl: https://r\n  upstreams:\n    - name: a\n      url: https://a\n", "exclude each other"},
		{"proxy:\n  upstreams:\n    - url: https://a\n", "needs a name"},
		{"proxy:\n  upstreams:\n    - name: a\n", "needs url"},
		{"proxy:\n  upstreams:\n    - name: a/b\n      url: https://a\n", "must be a registry host"},
		{"proxy:\n  upstreams:\n    - name: a\n      url: https://a\n    - name: b\n      url: https://b\n      aliases: [A]\n", `"a" already names`},
		{"proxy:\n  upstreams:\n    - name: a\n      url: https://a\n      namespace: c\n    - name: b\n      url: https://b\n      namespace: c/d\n", "lies inside"},
		{"proxy:\n  upstreams:\n    - name: a\n      url: https://a\n      namespace: Upper\n", "proxy.upstreams[0].namespace: must be a repository name prefix"},
		{"proxy:\n  upstreams:\n    - name: a\n      url: https://a\n  defaultupstream: b\n", `"b" is not the name of an upstream`},
		{"proxy:\n  remoteurl: https://r\n  hosted: [a]\n", "needs proxy.upstreams"},
		{"proxy:\n  remoteurl: https://r\n  cache:\n    maxsize: lots\n", "proxy.cache.maxsize: must be a size"},
		{"proxy:\n  remoteurl: https://r\n  cache:\n    lowwatermark: 95\n", "watermarks"},
		{"proxy:\n  remoteurl: https://r\n  exec:\n    lifetime: 1h\n", "proxy.exec.command: is required"},
		{"proxy:\n  remoteurl: https://r\n  timeout: 0s\n", "proxy.timeout: must be positive"},
	}
	for _, tc := range cases {
		_, err := Parse([]byte(minimal+tc.yml), nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.yml, err, tc.want)
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "1024": 1024, "10GiB": 10 << 30, "500MB": 500e6, "2g": 2 << 30, "1.5 KiB": 1536, "7 b": 7} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "x", "-1", "5 parsecs", "1e3GiB"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) succeeded", in)
		}
	}
}

// The commented proxy block of config.example.yml parses, with every key
// registryd implements in it.
func TestExampleProxyBlock(t *testing.T) {
	example := exampleFile(t)
	_, block, _ := strings.Cut(example, "# --- proxy:")
	block, _, ok := strings.Cut(block, "# --- end of proxy")
	if !ok {
		t.Fatal("no commented proxy section")
	}
	var yml strings.Builder
	yml.WriteString(minimal)
	for _, line := range strings.Split(block, "\n")[1:] {
		if rest, ok := strings.CutPrefix(line, "# "); ok {
			yml.WriteString(rest + "\n")
		}
	}
	// remoteurl and upstreams exclude each other: the example shows both.
	text := strings.Replace(yml.String(), `remoteurl: ""`, "", 1)
	c, err := Parse([]byte(text), nil)
	if err != nil {
		t.Fatalf("the proxy example:\n%s\n%v", text, err)
	}
	if len(c.Warnings) > 0 || c.Proxy == nil || len(c.Proxy.Upstreams) != 1 || c.Proxy.DefaultUpstream != "docker.io" {
		t.Fatalf("%v %+v", c.Warnings, c.Proxy)
	}
	var visit func(path, indent string, k *key)
	visit = func(path, indent string, k *key) {
		for name, ck := range k.children {
			if !ck.implemented {
				continue
			}
			if !strings.Contains(block, "\n#"+indent+name+":") && !strings.Contains(block, "\n#"+indent[:len(indent)-2]+"- "+name+":") {
				t.Errorf("the proxy example lacks %s.%s", path, name)
			}
			switch {
			case ck.kind == kSection:
				visit(path+"."+name, indent+"  ", ck)
			case ck.kind == kList && ck.elem.kind == kSection:
				visit(path+"."+name, indent+"    ", ck.elem)
			}
		}
	}
	visit("proxy", "   ", schema().children["proxy"])
}
