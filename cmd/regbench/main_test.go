package main

import "testing"

func TestParseSize(t *testing.T) {
	for s, want := range map[string]int64{"1GiB": 1 << 30, "256MiB": 256 << 20, "8M": 8 << 20, "4K": 4096, "1048576": 1 << 20, "12B": 12} {
		if got, err := parseSize(s); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"", "GiB", "-1M", "1.5G", "0"} {
		if _, err := parseSize(s); err == nil {
			t.Errorf("parseSize(%q) accepted", s)
		}
	}
	if got := fmtBytes(1 << 30); got != "1 GiB" {
		t.Errorf("fmtBytes(1 GiB) = %q", got)
	}
}

func TestNextLink(t *testing.T) {
	base := "http://127.0.0.1:5000"
	for h, want := range map[string]string{
		`</v2/_catalog?last=b&n=100>; rel="next"`:                base + "/v2/_catalog?last=b&n=100",
		`<http://127.0.0.1:5000/v2/x/tags/list?n=1>; rel="next"`: base + "/v2/x/tags/list?n=1",
		``:                     "",
		`</v2/_catalog?n=100>`: "",
	} {
		if got := nextLink(base, h); got != want {
			t.Errorf("nextLink(%q) = %q, want %q", h, got, want)
		}
	}
}
