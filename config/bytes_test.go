package config

import "testing"

func TestParseBytes(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"52428800", 52428800, true}, {"50MiB", 50 << 20, true}, {"50 MiB/s", 50 << 20, true}, {"1.5GB", 1500000000, true},
		{"10k", 10 << 10, true}, {"7B", 7, true}, {"0", 0, true}, {"2KB/s", 2000, true},
		{"", 0, false}, {"MiB", 0, false}, {"-5", 0, false}, {"5 TiB", 0, false}, {"1e3", 0, false}, {"9999999999GiB", 0, false},
	} {
		got, err := ParseBytes(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d ok=%v", c.in, got, err, c.want, c.ok)
		}
	}
}
