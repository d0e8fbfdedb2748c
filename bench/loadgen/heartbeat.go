package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	registryv1 "github.com/maxine-registry/maxine/sdks/go/gen/maxine/registry/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/durationpb"
)

// heartbeatResult is what one heartbeat-capacity run measured.
type heartbeatResult struct {
	Streams    int     `json:"streams"`
	Conns      int     `json:"conns"`
	TTLSeconds float64 `json:"ttl_s"`
	Client     string  `json:"client"`
	Opened     int     `json:"opened"`     // streams that got their first ack
	SettleSec  float64 `json:"settle_s"`   // untimed wait between the last stream opening and the hold
	Failed     int64   `json:"failed"`     // streams that ended with an error
	Beats      int     `json:"beats"`      // acks timed during the hold
	AckP50     float64 `json:"ack_p50_ms"` // send -> ack, every beat of the hold
	AckP99     float64 `json:"ack_p99_ms"` //
	AckMax     float64 `json:"ack_max_ms"` //
	// AckMaxBySecond is the slowest ack of each second of the hold, to tell a stall from a steady tail.
	AckMaxBySecond []float64 `json:"ack_max_by_second_ms"`
	Unknown        int64     `json:"unknown_acks"` // acks that said BEAT_RESULT_UNKNOWN (should be 0)
	RegisterSec    float64   `json:"register_s"`
	OpenSec        float64   `json:"open_s"`
	HoldSec        float64   `json:"hold_s"`
}

// heartbeatCommand registers n instances, opens one Heartbeat stream per
// instance (as n separate service processes would), beats every TTL/3 with
// jittered phases, and times every ack while the streams are held. It
// prints "REGISTERED" on stderr (then waits a second) once the instances are
// registered, and "READY" once all streams are open, so that the caller can
// read the server's memory at both points.
func heartbeatCommand(ctx context.Context, args []string) (any, error) {
	fs := flag.NewFlagSet("heartbeat", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:7400", "server address (loopback only)")
	n := fs.Int("streams", 1000, "heartbeat streams (one instance each)")
	perConn := fs.Int("per-conn", 1000, "streams per HTTP/2 connection")
	ttl := fs.Duration("ttl", 10*time.Second, "the lease TTL the beats are paced for: every TTL/3")
	// A real service opens its stream right after registering. Here all
	// instances are registered first (to read the server's memory without
	// streams), which at 50,000 takes longer than a 10-s lease: a lease that
	// ran out before its stream opened would make every later beat UNKNOWN
	// and measure the wrong path. The longer registration lease keeps every
	// instance; the beat rate, the load measured, is paced by -ttl.
	registerTTL := fs.Duration("register-ttl", 10*time.Minute, "lease TTL of the Registers")
	hold := fs.Duration("hold", 15*time.Second, "how long all streams are held and timed")
	settle := fs.Duration("settle", 0, "untimed wait once all streams are open (default TTL/3: one round of beats after the opening burst)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	conns := (*n + *perConn - 1) / *perConn
	res := &heartbeatResult{Streams: *n, Conns: conns, TTLSeconds: ttl.Seconds(), Client: "Go grpc-go, one Heartbeat stream per instance"}
	ccs := make([]*grpc.ClientConn, conns)
	for i := range ccs {
		cc, err := grpc.NewClient(*addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return nil, err
		}
		defer cc.Close()
		ccs[i] = cc
	}
	client := func(i int) registryv1.RegistryServiceClient {
		return registryv1.NewRegistryServiceClient(ccs[i%conns])
	}

	// Register every instance, 64 at a time.
	start := time.Now()
	sem := make(chan struct{}, 64)
	var regErr atomic.Value
	var wg sync.WaitGroup
	for i := 0; i < *n; i++ {
		sem <- struct{}{}
		wg.Add(1)
		go func(i int) {
			defer func() { <-sem; wg.Done() }()
			_, err := client(i).Register(ctx, &registryv1.RegisterRequest{
				Instance: &registryv1.Instance{Service: fmt.Sprintf("hb-%d", i%100), InstanceId: fmt.Sprintf("i%d", i), Host: "10.8.0.1", Port: uint32(1000 + i%60000)},
				LeaseTtl: durationpb.New(*registerTTL),
			})
			if err != nil {
				regErr.Store(err)
			}
		}(i)
	}
	wg.Wait()
	if err, _ := regErr.Load().(error); err != nil {
		return nil, fmt.Errorf("register: %w", err)
	}
	res.RegisterSec = time.Since(start).Seconds()
	// The caller reads the server's memory with the instances registered and no stream open.
	fmt.Fprintln(stderr, "REGISTERED")
	time.Sleep(time.Second)

	// Open the streams; each beats at once, then every TTL/3 from a random phase.
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		opened    sync.WaitGroup
		mu        sync.Mutex
		latencies []float64
		bySecond  []float64
		holdStart time.Time
		timing    atomic.Bool
		failed    atomic.Int64
		unknown   atomic.Int64
		openCount atomic.Int64
	)
	interval := *ttl / 3
	start = time.Now()
	var streams sync.WaitGroup
	for i := 0; i < *n; i++ {
		opened.Add(1)
		streams.Add(1)
		go func(i int) {
			defer streams.Done()
			first := true
			defer func() {
				if first {
					opened.Done()
				}
			}()
			stream, err := client(i).Heartbeat(sctx)
			if err != nil {
				failed.Add(1)
				return
			}
			key := &registryv1.InstanceKey{Service: fmt.Sprintf("hb-%d", i%100), InstanceId: fmt.Sprintf("i%d", i)}
			sent := make(map[uint64]time.Time)
			var smu sync.Mutex
			go func() {
				seq := uint64(0)
				timer := time.NewTimer(0)
				defer timer.Stop()
				for {
					select {
					case <-sctx.Done():
						_ = stream.CloseSend()
						return
					case <-timer.C:
					}
					seq++
					smu.Lock()
					sent[seq] = time.Now()
					smu.Unlock()
					if err := stream.Send(&registryv1.HeartbeatRequest{Sequence: seq, Beats: []*registryv1.Beat{{Key: key}}}); err != nil {
						return
					}
					if seq == 1 {
						timer.Reset(time.Duration(rand.Int64N(int64(interval))))
					} else {
						// ±10% per beat, as independent processes drift: one
						// client process would otherwise keep every beat that
						// a stall delayed in step with the others.
						timer.Reset(interval*9/10 + time.Duration(rand.Int64N(int64(interval/5))))
					}
				}
			}()
			for {
				resp, err := stream.Recv()
				if err != nil {
					if sctx.Err() == nil {
						failed.Add(1)
					}
					return
				}
				smu.Lock()
				at, ok := sent[resp.GetSequence()]
				delete(sent, resp.GetSequence())
				smu.Unlock()
				for _, a := range resp.GetAcks() {
					if a.GetResult() == registryv1.BeatResult_BEAT_RESULT_UNKNOWN {
						unknown.Add(1)
					}
				}
				if first {
					first = false
					openCount.Add(1)
					opened.Done()
				} else if ok && timing.Load() && at.After(holdStart) {
					// Only beats sent during the hold count: a beat sent while
					// thousands of streams were still opening measures the
					// opening burst (reported as open_s), not the steady state.
					ms := float64(time.Since(at).Microseconds()) / 1000
					mu.Lock()
					latencies = append(latencies, ms)
					if sec := int(time.Since(holdStart).Seconds()); sec >= 0 && sec < len(bySecond) {
						bySecond[sec] = max(bySecond[sec], ms)
					}
					mu.Unlock()
				}
			}
		}(i)
	}
	opened.Wait()
	res.OpenSec = time.Since(start).Seconds()
	res.Opened = int(openCount.Load())
	fmt.Fprintln(stderr, "READY")
	if *settle == 0 {
		*settle = interval
	}
	select {
	case <-time.After(*settle):
	case <-ctx.Done():
	}
	mu.Lock()
	holdStart = time.Now()
	bySecond = make([]float64, int(hold.Seconds())+1)
	mu.Unlock()
	timing.Store(true)
	select {
	case <-time.After(*hold):
	case <-ctx.Done():
	}
	timing.Store(false)
	res.HoldSec = time.Since(holdStart).Seconds()
	res.SettleSec = settle.Seconds()
	cancel()
	streams.Wait()
	res.Failed = failed.Load()
	res.Unknown = unknown.Load()
	sort.Float64s(latencies)
	res.Beats = len(latencies)
	res.AckMaxBySecond = bySecond
	if len(latencies) > 0 {
		q := func(p float64) float64 { return latencies[min(len(latencies)-1, int(p*float64(len(latencies))))] }
		res.AckP50, res.AckP99, res.AckMax = q(0.5), q(0.99), latencies[len(latencies)-1]
	}
	return res, nil
}
