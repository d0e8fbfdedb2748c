package main

import (
	"context"
	"flag"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	configv1 "github.com/maxine-registry/maxine/sdks/go/gen/maxine/config/v1"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// configFanout watches one service's configuration with ConfigService.Watch
// streams, spread over conns HTTP/2 connections, and changes it with a Put
// of one key (whose value names the change) on a connection of its own.
type configFanout struct {
	addr    string
	conns   int
	service string
	watchConns
}

func (m *configFanout) open(ctx context.Context, n int, onEvent func(int, string)) error {
	var err error
	if m.writer, m.cc, err = dialWatchers(m.addr, m.conns); err != nil {
		return err
	}
	wctx, cancel := context.WithCancel(ctx)
	m.cancel = cancel
	ready := make(chan error, n)
	for w := 0; w < n; w++ {
		client := configv1.NewConfigServiceClient(m.cc[w%len(m.cc)])
		m.wg.Add(1)
		go func(w int) {
			defer m.wg.Done()
			stream, err := client.Watch(wctx, &configv1.WatchRequest{Services: []string{m.service}})
			if err != nil {
				ready <- err
				return
			}
			synced := false
			for {
				msg, err := stream.Recv()
				if err != nil {
					if !synced {
						ready <- fmt.Errorf("config watcher %d: %w", w, err)
					}
					return
				}
				if !synced && msg.GetSnapshotEnd() != nil {
					synced = true
					ready <- nil
				}
				if ev := msg.GetEvent(); ev != nil {
					onEvent(w, string(ev.GetEntry().GetValue()))
				}
			}
		}(w)
	}
	return waitReady(ctx, "maxine-config", ready, n)
}

func (m *configFanout) change(ctx context.Context, id string) error {
	_, err := configv1.NewConfigServiceClient(m.writer).Put(ctx, &configv1.PutRequest{Service: m.service, Key: "settings", Value: []byte(id)})
	return err
}

// putResult is what one Put throughput run measured.
type putResult struct {
	Target     string    `json:"target"`
	Writers    int       `json:"writers"`
	Conns      int       `json:"conns"`
	DurationMs float64   `json:"duration_ms"`
	Puts       int64     `json:"puts"`
	PerSecond  float64   `json:"per_second"`
	LatencyMs  []float64 `json:"latency_ms"` // p50, p99, max
	ValueBytes int       `json:"value_bytes"`
}

// putCommand runs c concurrent writers, each putting its own key in a loop
// (a new version each time) for a duration, against Maxine's ConfigService
// (grpc-go) or etcd (clientv3), and reports acknowledged puts per second.
func putCommand(ctx context.Context, args []string) (any, error) {
	fs := flag.NewFlagSet("put", flag.ContinueOnError)
	target := fs.String("target", "maxine", "maxine or etcd")
	addr := fs.String("addr", "127.0.0.1:7400", "server address (loopback only)")
	writers := fs.Int("c", 64, "concurrent writers")
	conns := fs.Int("conns", 4, "client connections")
	duration := fs.Duration("duration", 5*time.Second, "how long to write")
	size := fs.Int("size", 256, "value bytes")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	value := make([]byte, *size)
	for i := range value {
		value[i] = 'a' + byte(i%26)
	}
	var put func(ctx context.Context, w int, key string) error
	var closeAll func()
	switch *target {
	case "maxine":
		var ccs []*grpc.ClientConn
		for i := 0; i < *conns; i++ {
			cc, err := grpc.NewClient(*addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				return nil, err
			}
			ccs = append(ccs, cc)
		}
		put = func(ctx context.Context, w int, key string) error {
			_, err := configv1.NewConfigServiceClient(ccs[w%len(ccs)]).Put(ctx, &configv1.PutRequest{Service: "bench", Key: key, Value: value})
			return err
		}
		closeAll = func() {
			for _, cc := range ccs {
				_ = cc.Close()
			}
		}
	case "etcd":
		var cs []*clientv3.Client
		for i := 0; i < *conns; i++ {
			c, err := clientv3.New(clientv3.Config{Endpoints: []string{*addr}, DialTimeout: 5 * time.Second})
			if err != nil {
				return nil, err
			}
			cs = append(cs, c)
		}
		put = func(ctx context.Context, w int, key string) error {
			_, err := cs[w%len(cs)].Put(ctx, "/bench/"+key, string(value))
			return err
		}
		closeAll = func() {
			for _, c := range cs {
				_ = c.Close()
			}
		}
	default:
		return nil, fmt.Errorf("-target must be maxine or etcd, got %q", *target)
	}
	defer closeAll()
	// one warm-up put per writer (connections, first batch), not counted
	for w := 0; w < *writers; w++ {
		if err := put(ctx, w, fmt.Sprintf("k%d", w)); err != nil {
			return nil, err
		}
	}
	var (
		count    atomic.Int64
		mu       sync.Mutex
		lat      []float64
		wg       sync.WaitGroup
		firstErr atomic.Value
	)
	start := time.Now()
	deadline := start.Add(*duration)
	for w := 0; w < *writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			key := fmt.Sprintf("k%d", w)
			var mine []float64
			for time.Now().Before(deadline) {
				t0 := time.Now()
				if err := put(ctx, w, key); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				mine = append(mine, float64(time.Since(t0).Microseconds())/1000)
				count.Add(1)
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}(w)
	}
	wg.Wait()
	if err, ok := firstErr.Load().(error); ok {
		return nil, err
	}
	elapsed := time.Since(start)
	sort.Float64s(lat)
	q := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return lat[int(p*float64(len(lat)-1))]
	}
	return &putResult{
		Target: *target, Writers: *writers, Conns: *conns, DurationMs: float64(elapsed.Milliseconds()), Puts: count.Load(),
		PerSecond: float64(count.Load()) / elapsed.Seconds(), LatencyMs: []float64{q(0.5), q(0.99), q(1)}, ValueBytes: *size,
	}, nil
}
