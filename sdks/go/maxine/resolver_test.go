package maxine_test

import (
	"context"
	"net/url"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	registryv1 "github.com/maxine-registry/maxine/sdks/go/gen/maxine/registry/v1"
	"github.com/maxine-registry/maxine/sdks/go/internal/testserver"
	"github.com/maxine-registry/maxine/sdks/go/maxine"
)

func startBackend(t testing.TB) *testserver.Backend {
	t.Helper()
	b, err := testserver.StartBackend()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Stop)
	return b
}

// TestResolverFollowsInstances: a grpc-go client with round_robin on
// "maxine:///payments?namespace=..." sends its calls to a newly registered
// instance, and stops sending to a deregistered one.
func TestResolverFollowsInstances(t *testing.T) {
	t.Parallel()
	c := newClient(t, serverURL())
	ns := uniqueNS(t)
	a, b := startBackend(t), startBackend(t)
	s, err := maxine.NewSession(c)
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t, 60*time.Second)
	defer s.Close(ctx)
	regA, err := s.Register(ctx, &registryv1.Instance{Namespace: ns, Service: "payments", InstanceId: "a", Host: "127.0.0.1", Port: uint32(a.Port)})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient("maxine:///payments?namespace="+url.QueryEscape(ns),
		grpc.WithResolvers(maxine.NewResolverBuilder(c)),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	health := healthpb.NewHealthClient(conn)
	call := func() {
		t.Helper()
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if _, err := health.Check(cctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true)); err != nil {
			t.Fatalf("Check: %v", err)
		}
	}
	call()
	if a.Calls() != 1 || b.Calls() != 0 {
		t.Fatalf("first call: a %d, b %d calls; want it on a, the only instance", a.Calls(), b.Calls())
	}

	if _, err := s.Register(ctx, &registryv1.Instance{Namespace: ns, Service: "payments", InstanceId: "b", Host: "127.0.0.1", Port: uint32(b.Port)}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "calls to reach the new instance b", func() bool { call(); return b.Calls() > 0 })
	// round_robin now alternates: both get calls.
	a0, b0 := a.Calls(), b.Calls()
	for range 20 {
		call()
	}
	if a.Calls()-a0 < 5 || b.Calls()-b0 < 5 {
		t.Fatalf("20 calls over a and b: a got %d, b %d; round_robin should spread them", a.Calls()-a0, b.Calls()-b0)
	}

	if err := regA.Deregister(ctx); err != nil {
		t.Fatal(err)
	}
	// Once the removal reached the client, every call goes to b.
	eventually(t, 10*time.Second, "calls to leave the deregistered instance a", func() bool {
		before := a.Calls()
		for range 10 {
			call()
		}
		return a.Calls() == before
	})
	a0 = a.Calls()
	for range 30 {
		call()
	}
	if a.Calls() != a0 {
		t.Fatalf("a got %d calls after it left", a.Calls()-a0)
	}
}

func TestParseTarget(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"maxine:///", "maxine:///a/b", "maxine:///svc?color=red", "dns:///svc", "maxine://10.0.0.1:7400/svc"} {
		u, _ := url.Parse(bad)
		if _, _, err := maxine.ParseTarget(*u); err == nil {
			t.Errorf("ParseTarget(%q) accepted it", bad)
		}
	}
	u, _ := url.Parse("maxine:///payments?namespace=prod&tag=v2&tag=eu")
	svc, opts, err := maxine.ParseTarget(*u)
	if err != nil || svc != "payments" || len(opts) == 0 {
		t.Fatalf("ParseTarget: %q, %d options, %v", svc, len(opts), err)
	}
}
