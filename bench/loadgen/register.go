package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	registryv1 "github.com/maxine-registry/maxine/sdks/go/gen/maxine/registry/v1"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/durationpb"
)

// registerCommand runs c concurrent writers, each creating a new leased
// entry per call, for a duration after a warm-up: a Maxine Register of a
// new instance with a lease TTL (gRPC on one HTTP/2 connection, or Connect
// JSON on HTTP/1.1 with a connection per writer), or etcd's equivalent
// over gRPC (clientv3, one client): a lease Grant, then a Put of a new key
// attached to it. Every call writes a distinct id, so each one creates
// (none renews or updates).
func registerCommand(ctx context.Context, args []string) (any, error) {
	fs := flag.NewFlagSet("register", flag.ContinueOnError)
	target := fs.String("target", "maxine", "maxine or etcd")
	addr := fs.String("addr", "127.0.0.1:7400", "server address (loopback only)")
	proto := fs.String("protocol", "grpc", "maxine: grpc (HTTP/2) or json (Connect JSON over HTTP/1.1); etcd: grpc")
	c := fs.Int("c", 20, "concurrent writers")
	d := fs.Duration("duration", 10*time.Second, "measured time")
	warm := fs.Duration("warmup", 2*time.Second, "unmeasured time first")
	ttl := fs.Duration("ttl", 60*time.Second, "lease TTL of each entry (long enough that none expires during the run)")
	conns := fs.Int("conns", 1, "maxine grpc: HTTP/2 connections the writers are spread over (a server of several worker processes serves each connection in one of them)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	// next names a new entry: its id, and (Maxine) its service, one of 100
	// (a service holds at most MAXINE_MAX_INSTANCES_PER_SERVICE instances);
	// etcd's keys go under one prefix
	var seq atomic.Int64
	next := func() (service, id string) {
		n := seq.Add(1)
		return fmt.Sprintf("register-bench-%d", n%100), fmt.Sprintf("r-%d", n)
	}
	var call func(ctx context.Context) error
	client := ""
	switch {
	case *target == "maxine" && *proto == "grpc":
		clients := make([]registryv1.RegistryServiceClient, max(1, *conns))
		for i := range clients {
			cc, err := grpc.NewClient(*addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				return nil, err
			}
			defer cc.Close()
			clients[i] = registryv1.NewRegistryServiceClient(cc)
		}
		lease := durationpb.New(*ttl)
		var turn atomic.Int64
		call = func(ctx context.Context) error {
			service, id := next()
			rc := clients[int(turn.Add(1))%len(clients)]
			_, err := rc.Register(ctx, &registryv1.RegisterRequest{
				Instance: &registryv1.Instance{Service: service, InstanceId: id, Host: "10.0.0.1", Port: 8080, Zone: "z1"},
				LeaseTtl: lease,
			})
			return err
		}
		client = "grpc-go"
	case *target == "maxine" && *proto == "json":
		hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *c, MaxConnsPerHost: *c}}
		url := fmt.Sprintf("http://%s/maxine.registry.v1.RegistryService/Register", *addr)
		ttlJSON := fmt.Sprintf("%.0fs", ttl.Seconds())
		call = func(ctx context.Context) error {
			service, id := next()
			body := fmt.Sprintf(`{"instance":{"service":%q,"instanceId":%q,"host":"10.0.0.1","port":8080,"zone":"z1"},"leaseTtl":%q}`, service, id, ttlJSON)
			return postJSON(ctx, hc, url, []byte(body))
		}
		client = "Go net/http"
	case *target == "etcd" && *proto == "grpc":
		ec, err := clientv3.New(clientv3.Config{Endpoints: []string{*addr}, DialTimeout: 5 * time.Second})
		if err != nil {
			return nil, err
		}
		defer ec.Close()
		secs := int64(ttl.Seconds())
		call = func(ctx context.Context) error {
			l, err := ec.Grant(ctx, secs)
			if err != nil {
				return err
			}
			_, id := next()
			_, err = ec.Put(ctx, "/register-bench/"+id, "10.0.0.1:8080", clientv3.WithLease(l.ID))
			return err
		}
		client = "clientv3 (grpc-go)"
	default:
		return nil, fmt.Errorf("-target %q with -protocol %q: want maxine with grpc or json, or etcd with grpc", *target, *proto)
	}
	res := &throughputResult{Protocol: *proto, Concurrency: *c, Client: client}
	measure(ctx, *c, *warm, *d, call, res)
	return res, nil
}
