package config

import (
	"fmt"
	"strconv"
	"strings"
)

// ParseBytes reads a size or a rate: a number of bytes, with an optional
// unit (B, KB, MB, GB in powers of 1000; KiB, MiB, GiB in powers of 1024;
// case-insensitive) and, for rates, an optional "/s": "52428800",
// "50MiB", "50 MiB/s", "1.5GB". The result is not negative.
func ParseBytes(s string) (int64, error) {
	v := strings.TrimSpace(s)
	v = strings.TrimSuffix(strings.TrimSuffix(v, "/s"), "/S")
	i := 0
	for i < len(v) && (v[i] >= '0' && v[i] <= '9' || v[i] == '.') {
		i++
	}
	num, unit := v[:i], strings.ToLower(strings.TrimSpace(v[i:]))
	mult := map[string]float64{
		"": 1, "b": 1,
		"k": 1 << 10, "kb": 1e3, "kib": 1 << 10,
		"m": 1 << 20, "mb": 1e6, "mib": 1 << 20,
		"g": 1 << 30, "gb": 1e9, "gib": 1 << 30,
	}[unit]
	f, err := strconv.ParseFloat(num, 64)
	if num == "" || err != nil || mult == 0 {
		return 0, fmt.Errorf("%q is not a number of bytes (e.g. 52428800, 50MiB, 1GB)", s)
	}
	n := f * mult
	if n < 0 || n > 1<<62 {
		return 0, fmt.Errorf("%q is out of range", s)
	}
	return int64(n), nil
}
