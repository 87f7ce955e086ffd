package proxy

// SetFillRetries sets how often a broken blob download is resumed.
func (p *Proxy) SetFillRetries(n int) {
	for _, u := range p.upstreams {
		u.maxRetries = n
	}
}

// FillsInFlight is the number of blob fills under way.
func (p *Proxy) FillsInFlight() int {
	p.fills.mu.Lock()
	defer p.fills.mu.Unlock()
	return len(p.fills.m)
}

// UpstreamNames are the upstreams' names, in order.
func (p *Proxy) UpstreamNames() []string {
	var out []string
	for _, u := range p.upstreams {
		out = append(out, u.name)
	}
	return out
}
