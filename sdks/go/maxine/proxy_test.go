package maxine_test

import (
	"net"
	"sync"
	"testing"
)

// cutProxy is a loopback TCP proxy in front of a server whose connections
// a test can cut, to break a client's streams without touching the server.
type cutProxy struct {
	l      net.Listener
	target string
	mu     sync.Mutex
	conns  map[net.Conn]bool
	refuse bool
	frozen bool
	// accepted counts the connections clients opened through the proxy
	accepted int
	// stalled connections forward nothing and close nothing (stallOpen)
	stalled map[net.Conn]bool
	thawed  *sync.Cond
	wg      sync.WaitGroup
}

func newCutProxy(t testing.TB, target string) *cutProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{l: l, target: target, conns: map[net.Conn]bool{}, stalled: map[net.Conn]bool{}}
	p.thawed = sync.NewCond(&p.mu)
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *cutProxy) URL() string { return "http://" + p.l.Addr().String() }

func (p *cutProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		refuse := p.refuse
		p.accepted++
		p.mu.Unlock()
		if refuse {
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[up] = true, true
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(c, up)
		go p.pipe(up, c)
	}
}

func (p *cutProxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	buf := make([]byte, 32*1024)
	for {
		n, err := src.Read(buf)
		p.mu.Lock()
		for p.frozen {
			p.thawed.Wait()
		}
		stalled := p.stalled[src]
		p.mu.Unlock()
		if n > 0 && !stalled {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	p.mu.Lock()
	stalled := p.stalled[src]
	p.mu.Unlock()
	if stalled { // a dead path does not tell the other end either
		return
	}
	dst.Close()
	src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}

// opened reports how many connections clients opened through the proxy.
func (p *cutProxy) opened() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepted
}

// cut closes every open connection and, while refuse is set, every new one.
func (p *cutProxy) cut(refuse bool) {
	p.mu.Lock()
	p.refuse = refuse
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
}

// freeze holds every byte in flight (connections stay open, silent) until
// freeze(false): a hung network, not a broken one.
func (p *cutProxy) freeze(on bool) {
	p.mu.Lock()
	p.frozen = on
	p.mu.Unlock()
	p.thawed.Broadcast()
}

// stallOpen makes every connection open now forward nothing and close
// nothing, for good (a dead network path); connections opened later work.
func (p *cutProxy) stallOpen() {
	p.mu.Lock()
	for c := range p.conns {
		p.stalled[c] = true
	}
	p.mu.Unlock()
}

func (p *cutProxy) close() {
	p.l.Close()
	p.freeze(false)
	p.cut(true)
	p.wg.Wait()
}
