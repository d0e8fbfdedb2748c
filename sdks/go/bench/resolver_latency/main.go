// Command resolver_latency measures how long the grpc-go resolver takes to
// move traffic to a new instance: from the start of a Register to the first
// call the new instance receives from a client that keeps calling through
// "maxine:///...". It runs the built server (server/dist/main.js) and two
// health-service backends on loopback, repeats -n times and prints each
// sample and the median. It is a benchmark, not a test.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	registryv1 "github.com/maxine-registry/maxine/sdks/go/gen/maxine/registry/v1"
	"github.com/maxine-registry/maxine/sdks/go/internal/testserver"
	"github.com/maxine-registry/maxine/sdks/go/maxine"
)

func main() {
	n := flag.Int("n", 10, "samples")
	flag.Parse()
	srv, err := testserver.Start(nil)
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Stop()
	client, err := maxine.NewClient(srv.URL)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	var samples []time.Duration
	for i := range *n {
		d, err := sample(client, i)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("sample %2d: %v\n", i+1, d.Round(10*time.Microsecond))
		samples = append(samples, d)
	}
	slices.Sort(samples)
	median := samples[len(samples)/2]
	if len(samples)%2 == 0 {
		median = (samples[len(samples)/2-1] + samples[len(samples)/2]) / 2
	}
	fmt.Printf("resolver Register -> first call on the new instance: median %v of %d (min %v, max %v)\n",
		median.Round(10*time.Microsecond), len(samples), samples[0].Round(10*time.Microsecond), samples[len(samples)-1].Round(10*time.Microsecond))
}

func sample(client *maxine.Client, i int) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ns := fmt.Sprintf("bench-%d", i)
	a, err := testserver.StartBackend()
	if err != nil {
		return 0, err
	}
	defer a.Stop()
	b, err := testserver.StartBackend()
	if err != nil {
		return 0, err
	}
	defer b.Stop()
	session, err := maxine.NewSession(client)
	if err != nil {
		return 0, err
	}
	defer session.Close(ctx)
	if _, err := session.Register(ctx, &registryv1.Instance{Namespace: ns, Service: "svc", InstanceId: "a", Host: "127.0.0.1", Port: uint32(a.Port)}); err != nil {
		return 0, err
	}
	conn, err := grpc.NewClient("maxine:///svc?namespace="+ns,
		grpc.WithResolvers(maxine.NewResolverBuilder(client)),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	health := healthpb.NewHealthClient(conn)
	if _, err := health.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true)); err != nil {
		return 0, err
	}
	// Keep calling, as a busy client does, until b got a call.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			_, _ = health.Check(ctx, &healthpb.HealthCheckRequest{})
		}
	}()
	defer func() { close(stop); wg.Wait() }()
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	if _, err := session.Register(ctx, &registryv1.Instance{Namespace: ns, Service: "svc", InstanceId: "b", Host: "127.0.0.1", Port: uint32(b.Port)}); err != nil {
		return 0, err
	}
	for b.Calls() == 0 {
		if ctx.Err() != nil {
			return 0, fmt.Errorf("sample %d: b got no call within 30s", i)
		}
		time.Sleep(100 * time.Microsecond)
	}
	return b.FirstCall().Sub(start), nil
}
