package proxy_test

import (
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// distribution's registry_proxy_* counters, with an upstream label, and
// registryd's own, count what the pulls did.
func TestMetrics(t *testing.T) {
	up := startUpstream(t, upstreamOpts{})
	img := up.push(t, "team/app", "v1", 64<<10, 30)
	opts := single(up)
	reg := prometheus.NewRegistry()
	opts.Registerer = reg
	m := startMirror(t, opts)
	pull(t, m, "team/app", img)
	waitFor(t, "fills to end", func() bool { return m.fillsInFlight() == 0 })
	pull(t, m, "team/app", img)
	m.clock.add(2 * time.Minute)
	pull(t, m, "team/app", img)
	fams, err := reg.Gather()
	must(t, err)
	got := map[string]float64{}
	for _, f := range fams {
		for _, mt := range f.Metric {
			key := f.GetName()
			for _, l := range mt.Label {
				key += "," + l.GetName() + "=" + l.GetValue()
			}
			got[key] = value(mt)
		}
	}
	name := m.p.UpstreamNames()[0]
	want := map[string]float64{
		"registry_proxy_requests_total,type=manifest,upstream=" + name:         3,
		"registry_proxy_misses_total,type=manifest,upstream=" + name:           1,
		"registry_proxy_hits_total,type=manifest,upstream=" + name:             2,
		"registry_proxy_requests_total,type=blob,upstream=" + name:             6,
		"registry_proxy_misses_total,type=blob,upstream=" + name:               2,
		"registry_proxy_hits_total,type=blob,upstream=" + name:                 4,
		"registry_proxy_pulled_bytes_total,type=blob,upstream=" + name:         float64(len(img.blobs[img.layer]) + len(img.blobs[otherBlob(img)])),
		"registry_proxy_pushed_bytes_total,type=blob,upstream=" + name:         3 * float64(len(img.blobs[img.layer])+len(img.blobs[otherBlob(img)])),
		"registry_proxy_revalidations_total,result=unchanged,upstream=" + name: 1,
		"registry_proxy_fills_total,result=stored,upstream=" + name:            2,
		"registry_proxy_upstream_unavailable,upstream=" + name:                 0,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if got["registry_proxy_upstream_requests_total,code=200,upstream="+name] < 3 {
		t.Errorf("upstream requests: %v", got)
	}
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	return 0
}

func otherBlob(img image) digest.Digest {
	for k := range img.blobs {
		if k != img.layer {
			return k
		}
	}
	return ""
}
