package maxine_test

import (
	"context"
	"fmt"
	"log"
	"net"
	"os"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	registryv1 "github.com/maxine-registry/maxine/sdks/go/gen/maxine/registry/v1"
	"github.com/maxine-registry/maxine/sdks/go/maxine"
)

// The examples talk to the Maxine server at $MAXINE_URL, e.g.
// http://127.0.0.1:7400 (`go test` starts one and sets it).

// A Session keeps instances registered for as long as the process holds it;
// Close deregisters them.
func ExampleSession() {
	ctx := context.Background()
	client, err := maxine.NewClient(os.Getenv("MAXINE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	session, err := maxine.NewSession(client)
	if err != nil {
		log.Fatal(err)
	}
	inst, err := session.Register(ctx, &registryv1.Instance{
		Namespace:  "example-session",
		Service:    "payments",
		InstanceId: "payments-1",
		Host:       "10.0.0.7",
		Port:       8080,
		Zone:       "eu-1a",
	}, maxine.WithTTL(10*time.Second))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("registered", inst.ID(), "lease", inst.TTL())

	// Drain before shutting down: the instance stays registered but is no
	// longer picked, then Close deregisters it.
	if err := inst.Drain(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println("status", inst.Status())
	if err := session.Close(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println("closed")
	// Output:
	// registered payments-1 lease 10s
	// status SERVING_STATUS_DRAINING
	// closed
}

// A Watcher keeps a live view of a service and picks locally: consistent
// hashing chooses what the server's Discover (and every other SDK) would.
func ExampleWatcher_Pick() {
	ctx := context.Background()
	client, err := maxine.NewClient(os.Getenv("MAXINE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	session, err := maxine.NewSession(client)
	if err != nil {
		log.Fatal(err)
	}
	defer session.Close(ctx)
	for i := 1; i <= 3; i++ {
		_, err := session.Register(ctx, &registryv1.Instance{
			Namespace: "example-watch", Service: "cart", InstanceId: fmt.Sprintf("cart-%d", i),
			Host: "10.0.1." + strconv.Itoa(i), Port: 8080,
		})
		if err != nil {
			log.Fatal(err)
		}
	}

	watcher, err := client.Watch(ctx, maxine.WithNamespace("example-watch"), maxine.WithServices("cart"))
	if err != nil {
		log.Fatal(err)
	}
	defer watcher.Close()
	if err := watcher.Ready(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(watcher.Instances("cart")), "instances")
	for _, user := range []string{"user-1", "user-2", "user-1"} {
		inst, err := watcher.Pick(registryv1.Strategy_STRATEGY_CONSISTENT_HASH, user)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(user, "->", inst.GetInstanceId())
	}
	// Output:
	// 3 instances
	// user-1 -> cart-2
	// user-2 -> cart-3
	// user-1 -> cart-2
}

// The resolver lets a grpc-go client follow a service's instances: here a
// health service registers itself and a client calls it by service name.
func ExampleNewResolverBuilder() {
	ctx := context.Background()
	client, err := maxine.NewClient(os.Getenv("MAXINE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	// A backend: the standard gRPC health service on a loopback port.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	server := grpc.NewServer()
	healthpb.RegisterHealthServer(server, health.NewServer())
	go server.Serve(lis)
	defer server.Stop()

	session, err := maxine.NewSession(client)
	if err != nil {
		log.Fatal(err)
	}
	defer session.Close(ctx)
	port := lis.Addr().(*net.TCPAddr).Port
	if _, err := session.Register(ctx, &registryv1.Instance{
		Namespace: "prod", Service: "health-example", Host: "127.0.0.1", Port: uint32(port),
	}); err != nil {
		log.Fatal(err)
	}

	conn, err := grpc.NewClient("maxine:///health-example?namespace=prod",
		grpc.WithResolvers(maxine.NewResolverBuilder(client)),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	res, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.GetStatus())
	// Output: SERVING
}
