package e2e

import (
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// faultProxy is a TCP proxy on loopback between registryd and MinIO that
// passes bytes through, delays them, or drops connections, as a slow or
// flaky network between a registry and its object store would. Its
// target can change (MinIO restarted on another port).
type faultProxy struct {
	ln     net.Listener
	target atomic.Value // string: host:port
	mode   atomic.Int32 // proxyPass, proxyDelay, proxyDrop

	// Connections refused at accept, and cut while they carried bytes.
	refused, cut atomic.Int64

	mu    sync.Mutex
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

const (
	proxyPass = iota
	proxyDelay
	proxyDrop
)

func startFaultProxy(t *testing.T, target string) *faultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	p := &faultProxy{ln: ln, conns: map[net.Conn]bool{}}
	p.target.Store(target)
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *faultProxy) addr() string { return p.ln.Addr().String() }

func (p *faultProxy) setTarget(t string) { p.target.Store(t) }

func (p *faultProxy) setMode(m int32) { p.mode.Store(m) }

func (p *faultProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *faultProxy) track(c net.Conn, on bool) {
	p.mu.Lock()
	if on {
		p.conns[c] = true
	} else {
		delete(p.conns, c)
	}
	p.mu.Unlock()
}

func (p *faultProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.handle(c)
		}()
	}
}

// reset closes c so that the peer sees a reset, not an orderly end.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

func (p *faultProxy) handle(client net.Conn) {
	p.track(client, true)
	defer p.track(client, false)
	defer client.Close()
	mode := p.mode.Load()
	switch mode {
	case proxyDrop:
		if rand.IntN(10) < 3 {
			p.refused.Add(1)
			reset(client)
			return
		}
	case proxyDelay:
		time.Sleep(time.Duration(100+rand.IntN(400)) * time.Millisecond)
	}
	up, err := net.DialTimeout("tcp", p.target.Load().(string), 5*time.Second)
	if err != nil {
		// The store is down: the registry sees its connection refused.
		reset(client)
		return
	}
	p.track(up, true)
	defer p.track(up, false)
	defer up.Close()
	done := make(chan error, 2)
	pipe := func(dst, src net.Conn) {
		buf := make([]byte, 32<<10)
		// In drop mode, some connections are cut after a random number
		// of bytes, in the middle of a request or an answer.
		cutAfter := int64(-1)
		if p.mode.Load() == proxyDrop && rand.IntN(10) == 0 {
			cutAfter = rand.Int64N(256 << 10)
		}
		var n int64
		for {
			k, err := src.Read(buf)
			if k > 0 {
				if m := p.mode.Load(); m == proxyDelay && rand.IntN(20) == 0 {
					time.Sleep(time.Duration(50+rand.IntN(150)) * time.Millisecond)
				}
				if cutAfter >= 0 && n+int64(k) > cutAfter {
					p.cut.Add(1)
					done <- io.ErrUnexpectedEOF
					return
				}
				if _, werr := dst.Write(buf[:k]); werr != nil {
					done <- werr
					return
				}
				n += int64(k)
			}
			if err == io.EOF {
				// An orderly end of one direction: pass it on, and let
				// the other finish.
				if tc, ok := dst.(*net.TCPConn); ok {
					tc.CloseWrite()
				}
				done <- nil
				return
			}
			if err != nil {
				done <- err
				return
			}
		}
	}
	go pipe(up, client)
	go pipe(client, up)
	if err := <-done; err != nil {
		// A reset, a cut, a dead peer: both sides see the connection
		// die, as on a real network.
		reset(client)
		reset(up)
	}
	<-done
}
