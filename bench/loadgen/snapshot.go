package main

import (
	"context"
	"flag"
	"fmt"
	"sync"
	"time"

	registryv1 "github.com/maxine-registry/maxine/sdks/go/gen/maxine/registry/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/durationpb"
)

// snapshotResult is what one snapshot run measured.
type snapshotResult struct {
	Instances int       `json:"instances"`
	Client    string    `json:"client"`
	Samples   []float64 `json:"samples_ms"` // per trial: WatchServices call -> snapshot_end received
	Received  int       `json:"received"`   // instances in the last snapshot (must equal instances)
}

// snapshotCommand registers n instances of one service (with a little
// metadata, like real ones), then opens trials new watchers one after the
// other and times each from the call to its end-of-snapshot marker.
func snapshotCommand(ctx context.Context, args []string) (any, error) {
	fs := flag.NewFlagSet("snapshot", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:7400", "server address (loopback only)")
	n := fs.Int("instances", 10000, "instances in the service")
	trials := fs.Int("trials", 10, "new watchers to time")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	cc, err := grpc.NewClient(*addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		return nil, err
	}
	defer cc.Close()
	rc := registryv1.NewRegistryServiceClient(cc)
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var regErr error
	for i := 0; i < *n; i++ {
		sem <- struct{}{}
		wg.Add(1)
		go func(i int) {
			defer func() { <-sem; wg.Done() }()
			_, err := rc.Register(ctx, &registryv1.RegisterRequest{
				Instance: &registryv1.Instance{
					Service: "snapshot-bench", InstanceId: fmt.Sprintf("s%05d", i), Host: fmt.Sprintf("10.6.%d.%d", i/250, i%250), Port: 8080,
					Zone: fmt.Sprintf("z%d", i%3), Version: "1.4.2", Tags: []string{"http", "v1"}, Metadata: map[string]string{"team": "payments", "build": "2026-11-23"},
				},
				LeaseTtl: durationpb.New(time.Hour),
			})
			if err != nil {
				mu.Lock()
				regErr = err
				mu.Unlock()
			}
		}(i)
	}
	wg.Wait()
	if regErr != nil {
		return nil, fmt.Errorf("register: %w", regErr)
	}
	res := &snapshotResult{Instances: *n, Client: "Go grpc-go"}
	for t := 0; t < *trials; t++ {
		wctx, cancel := context.WithCancel(ctx)
		start := time.Now()
		stream, err := rc.WatchServices(wctx, &registryv1.WatchServicesRequest{Services: []string{"snapshot-bench"}})
		if err != nil {
			cancel()
			return nil, err
		}
		got := 0
		for {
			msg, err := stream.Recv()
			if err != nil {
				cancel()
				return nil, fmt.Errorf("watch: %w", err)
			}
			if s := msg.GetSnapshot(); s != nil {
				got += len(s.GetInstances())
			}
			if msg.GetSnapshotEnd() != nil {
				break
			}
		}
		res.Samples = append(res.Samples, float64(time.Since(start).Microseconds())/1000)
		res.Received = got
		cancel()
		time.Sleep(100 * time.Millisecond)
	}
	return res, nil
}
