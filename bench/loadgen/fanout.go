package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	registryv1 "github.com/maxine-registry/maxine/sdks/go/gen/maxine/registry/v1"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// fanoutTarget is one system under test for the watch fan-out: it opens n
// watchers on one service (Maxine) or one key prefix (etcd), reports every
// watcher's receipt of a change named by id, and makes that change.
type fanoutTarget interface {
	// open starts n watchers and returns once all of them are live
	// (Maxine: snapshot received; etcd: watch created).
	open(ctx context.Context, n int, onEvent func(watcher int, id string)) error
	// change registers (Maxine) or puts (etcd) one new item named id.
	change(ctx context.Context, id string) error
	close()
}

// fanoutResult is what one fan-out run measured, in milliseconds.
type fanoutResult struct {
	Target   string      `json:"target"`
	Watchers int         `json:"watchers"`
	Conns    int         `json:"conns"`
	Client   string      `json:"client"`
	All      []float64   `json:"all_ms"`      // per trial: change call -> receipt on the last watcher
	Warmup   []float64   `json:"warmup_ms"`   // the same, for the unmeasured changes made first (the first change after a server starts runs cold code)
	Receipts []float64   `json:"receipts_ms"` // every watcher of every trial: change call -> its receipt
	Setup    float64     `json:"setup_ms"`
	Extra    interface{} `json:"extra,omitempty"`
}

// runFanout opens n watchers, makes warmup unmeasured changes (their
// times go to Warmup), then trials measured ones.
func runFanout(ctx context.Context, t fanoutTarget, name string, n, conns, warmup, trials int, gap time.Duration) (*fanoutResult, error) {
	res := &fanoutResult{Target: name, Watchers: n, Conns: conns, Client: "Go grpc-go (" + name + ")"}
	var (
		mu       sync.Mutex
		target   atomic.Value
		start    time.Time
		pending  atomic.Int64
		done     = make(chan struct{}, 1)
		receipts []float64
	)
	target.Store("")
	onEvent := func(_ int, id string) {
		if id != target.Load().(string) {
			return
		}
		ms := float64(time.Since(start).Microseconds()) / 1000
		mu.Lock()
		receipts = append(receipts, ms)
		mu.Unlock()
		if pending.Add(-1) == 0 {
			done <- struct{}{}
		}
	}
	setupStart := time.Now()
	if err := t.open(ctx, n, onEvent); err != nil {
		return nil, err
	}
	res.Setup = float64(time.Since(setupStart).Milliseconds())
	for i := 0; i < warmup+trials; i++ {
		id := fmt.Sprintf("fan-%d-%d", time.Now().UnixNano(), i)
		mu.Lock()
		receipts = receipts[:0]
		mu.Unlock()
		pending.Store(int64(n))
		start = time.Now()
		target.Store(id)
		if err := t.change(ctx, id); err != nil {
			return nil, err
		}
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			return nil, fmt.Errorf("%s: trial %d: %d of %d watchers had not received the change after 60 s", name, i, pending.Load(), n)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		mu.Lock()
		if i < warmup {
			res.Warmup = append(res.Warmup, receipts[len(receipts)-1])
		} else {
			res.All = append(res.All, receipts[len(receipts)-1])
			res.Receipts = append(res.Receipts, receipts...)
		}
		mu.Unlock()
		time.Sleep(gap) // let both sides settle between trials
	}
	return res, nil
}

// maxineFanout watches with WatchServices streams, spread over conns
// HTTP/2 connections, and changes with Register on a connection of its own
// (the writer is another process; a watcher connection may be full: the
// server allows MAXINE_MAX_STREAMS_PER_CONNECTION concurrent streams).
type maxineFanout struct {
	addr    string
	conns   int
	service string
	watchConns
}

func (m *maxineFanout) open(ctx context.Context, n int, onEvent func(int, string)) error {
	var err error
	if m.writer, m.cc, err = dialWatchers(m.addr, m.conns); err != nil {
		return err
	}
	wctx, cancel := context.WithCancel(ctx)
	m.cancel = cancel
	ready := make(chan error, n)
	for w := 0; w < n; w++ {
		client := registryv1.NewRegistryServiceClient(m.cc[w%len(m.cc)])
		m.wg.Add(1)
		go func(w int) {
			defer m.wg.Done()
			stream, err := client.WatchServices(wctx, &registryv1.WatchServicesRequest{Services: []string{m.service}})
			if err != nil {
				ready <- err
				return
			}
			synced := false
			for {
				msg, err := stream.Recv()
				if err != nil {
					if !synced {
						ready <- fmt.Errorf("maxine watcher %d: %w", w, err)
					}
					return
				}
				if !synced && msg.GetSnapshotEnd() != nil {
					synced = true
					ready <- nil
				}
				if ev := msg.GetEvent(); ev != nil && ev.GetType() == registryv1.EventType_EVENT_TYPE_ADDED {
					onEvent(w, ev.GetInstance().GetInstanceId())
				}
			}
		}(w)
	}
	return waitReady(ctx, "maxine", ready, n)
}

// waitReady waits for n watchers to report ready (nil) or an error, for at most a minute.
func waitReady(ctx context.Context, name string, ready <-chan error, n int) error {
	timeout := time.After(time.Minute)
	for i := 0; i < n; i++ {
		select {
		case err := <-ready:
			if err != nil {
				return err
			}
		case <-timeout:
			return fmt.Errorf("%s: only %d of %d watchers were live after a minute", name, i, n)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (m *maxineFanout) change(ctx context.Context, id string) error {
	client := registryv1.NewRegistryServiceClient(m.writer)
	_, err := client.Register(ctx, &registryv1.RegisterRequest{Instance: &registryv1.Instance{
		Service: m.service, InstanceId: id, Host: "10.9.0.1", Port: 80,
	}})
	return err
}

// etcdFanout watches one key prefix with clientv3 watchers, spread over
// conns clients (clientv3 multiplexes a client's watchers on its gRPC
// streams), and changes with Put on a client of its own.
type etcdFanout struct {
	endpoint string
	conns    int
	prefix   string
	clients  []*clientv3.Client
	writer   *clientv3.Client
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

func (e *etcdFanout) open(ctx context.Context, n int, onEvent func(int, string)) error {
	writer, err := clientv3.New(clientv3.Config{Endpoints: []string{e.endpoint}, DialTimeout: 5 * time.Second})
	if err != nil {
		return err
	}
	e.writer = writer
	for i := 0; i < e.conns; i++ {
		c, err := clientv3.New(clientv3.Config{Endpoints: []string{e.endpoint}, DialTimeout: 5 * time.Second})
		if err != nil {
			return err
		}
		e.clients = append(e.clients, c)
	}
	wctx, cancel := context.WithCancel(ctx)
	e.cancel = cancel
	ready := make(chan error, n)
	for w := 0; w < n; w++ {
		c := e.clients[w%len(e.clients)]
		e.wg.Add(1)
		go func(w int) {
			defer e.wg.Done()
			// A distinct context per watcher gives each its own watch stream
			// entry, as independent watchers in separate processes would have.
			ch := c.Watch(clientv3.WithRequireLeader(wctx), e.prefix, clientv3.WithPrefix(), clientv3.WithCreatedNotify())
			created := false
			for resp := range ch {
				if !created && resp.Created {
					created = true
					ready <- nil
					continue
				}
				for _, ev := range resp.Events {
					if ev.Type == clientv3.EventTypePut && ev.IsCreate() {
						onEvent(w, string(ev.Kv.Key[len(e.prefix):]))
					}
				}
			}
			if !created {
				ready <- fmt.Errorf("etcd watcher %d: channel closed before the watch was created", w)
			}
		}(w)
	}
	return waitReady(ctx, "etcd", ready, n)
}

func (e *etcdFanout) change(ctx context.Context, id string) error {
	_, err := e.writer.Put(ctx, e.prefix+id, "10.9.0.1:80")
	return err
}

func (e *etcdFanout) close() {
	if e.cancel != nil {
		e.cancel()
	}
	e.wg.Wait()
	for _, c := range e.clients {
		_ = c.Close()
	}
	if e.writer != nil {
		_ = e.writer.Close()
	}
}

// watchConns is what each Maxine fan-out holds: the writer's connection,
// the watchers' connections, and the watchers' goroutines with their
// cancel; close ends them all.
type watchConns struct {
	cc     []*grpc.ClientConn
	writer *grpc.ClientConn
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func (w *watchConns) close() {
	if w.cancel != nil {
		w.cancel()
	}
	w.wg.Wait()
	for _, cc := range w.cc {
		_ = cc.Close()
	}
	if w.writer != nil {
		_ = w.writer.Close()
	}
}

// dialWatchers opens a writer's connection and conns connections for watch
// streams to addr (cleartext HTTP/2, loopback only).
func dialWatchers(addr string, conns int) (*grpc.ClientConn, []*grpc.ClientConn, error) {
	writer, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, nil, err
	}
	cc := make([]*grpc.ClientConn, 0, conns)
	for i := 0; i < conns; i++ {
		c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			_ = writer.Close()
			for _, open := range cc {
				_ = open.Close()
			}
			return nil, nil, err
		}
		cc = append(cc, c)
	}
	return writer, cc, nil
}
