package maxine_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	registryv1 "github.com/maxine-registry/maxine/sdks/go/gen/maxine/registry/v1"
	"github.com/maxine-registry/maxine/sdks/go/internal/testserver"
	"github.com/maxine-registry/maxine/sdks/go/maxine"
)

// replicas starts a private Redis and n Maxine replicas sharing it.
func replicas(t *testing.T, n int) []*testserver.Server {
	t.Helper()
	r, err := testserver.StartRedis()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Stop)
	out := make([]*testserver.Server, n)
	for i := range out {
		out[i] = startServer(t, map[string]string{
			"MAXINE_STORE": "redis", "MAXINE_REDIS_URL": r.URL, "MAXINE_GRACE": "1s",
			"MAXINE_REDIS_RENEW_INTERVAL": "50ms", "MAXINE_REDIS_SWEEP_INTERVAL": "50ms",
		})
	}
	return out
}

// TestFailoverMovesSessionAndWatcherToALiveReplica: a client given two
// replicas of one registry (Redis) keeps its session's instance and its
// watcher's view when the replica it uses is SIGKILLed: both move to the
// other replica; the instance is never removed, and the watcher sees every
// later change once, in revision order.
func TestFailoverMovesSessionAndWatcherToALiveReplica(t *testing.T) {
	t.Parallel()
	rs := replicas(t, 2)
	a, b := rs[0], rs[1]
	c := newClient(t, a.URL, maxine.WithReplicas(b.URL))
	onB := newClient(t, b.URL)
	ctx := ctxT(t, 60*time.Second)

	var mu sync.Mutex
	var seen []string
	var revisions []uint64
	w, err := c.Watch(ctx, maxine.WithServices("fo"),
		maxine.WithWatchBackoff(maxine.Backoff{Base: 20 * time.Millisecond, Max: 100 * time.Millisecond}),
		maxine.WithOnChange(func(ch maxine.Change) {
			mu.Lock()
			seen = append(seen, fmt.Sprintf("%s:%s", ch.Type, ch.Instance.GetInstanceId()))
			revisions = append(revisions, ch.Revision)
			mu.Unlock()
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	s, err := maxine.NewSession(c, maxine.WithHeartbeatInterval(200*time.Millisecond), maxine.WithAckTimeout(400*time.Millisecond),
		maxine.WithSessionBackoff(maxine.Backoff{Base: 20 * time.Millisecond, Max: 100 * time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	if _, err := s.Register(ctx, &registryv1.Instance{Service: "fo", InstanceId: "fo-1", Host: "127.0.0.1", Port: 9100}, maxine.WithTTL(5*time.Second)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "fo-1 on the watcher", func() bool { return w.Get("fo", "fo-1") != nil })
	if c.Replica() != a.URL {
		t.Fatalf("calls go to %s before any failure, want %s", c.Replica(), a.URL)
	}

	a.Kill()
	register(t, onB, &registryv1.Instance{Service: "fo", InstanceId: "fo-2", Host: "127.0.0.1", Port: 9101})
	eventually(t, 10*time.Second, "the watcher, moved to B, sees fo-2", func() bool { return w.Get("fo", "fo-2") != nil })
	if c.Replica() != b.URL || c.Failovers() < 1 {
		t.Fatalf("after A died: calls go to %s with %d failovers, want %s", c.Replica(), c.Failovers(), b.URL)
	}
	// the session beats on B: its lease is renewed past A's last renewal
	h := s.Instances()[0]
	before := h.LeaseExpiresAt()
	eventually(t, 10*time.Second, "a renewal through B", func() bool { return h.LeaseExpiresAt().After(before) })
	// past the lease TTL A last gave it (5 s), fo-1 is still there: B's stream holds it
	time.Sleep(5500 * time.Millisecond)
	if got := discoverAll(t, onB, "", "fo"); len(got) != 2 {
		t.Fatalf("%d instances of fo on B, want fo-1 and fo-2", len(got))
	}
	mu.Lock()
	defer mu.Unlock()
	for i := 1; i < len(revisions); i++ {
		if revisions[i] <= revisions[i-1] {
			t.Fatalf("revisions not increasing across the failover: %v (%v)", revisions, seen)
		}
	}
	for _, ev := range seen {
		if ev == "removed:fo-1" {
			t.Fatalf("fo-1 was removed during the failover: %v", seen)
		}
	}
}

// TestFailoverOnlyOnServerFailures: a refused call (the caller's error)
// does not move the client; an unreachable replica does.
func TestFailoverOnlyOnServerFailures(t *testing.T) {
	t.Parallel()
	srv := startServer(t, nil)
	dead, err := testserver.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	deadURL := fmt.Sprintf("http://127.0.0.1:%d", dead)
	c := newClient(t, srv.URL, maxine.WithReplicas(deadURL))
	ctx := ctxT(t, 10*time.Second)
	_, err = c.RPC.Discover(ctx, connect.NewRequest(&registryv1.DiscoverRequest{Service: "not a name!"}))
	if connect.CodeOf(err) != connect.CodeInvalidArgument || c.Failovers() != 0 {
		t.Fatalf("an invalid request: %v, %d failovers; want INVALID_ARGUMENT and none", err, c.Failovers())
	}
	// a cancelled call is the caller's doing, not the server's
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c.RPC.ListServices(cctx, connect.NewRequest(&registryv1.ListServicesRequest{})); err == nil || c.Failovers() != 0 {
		t.Fatalf("a cancelled call: %v, %d failovers; want an error and none", err, c.Failovers())
	}
	// round the list: the live server, then the dead one (a call fails there and moves back)
	c2 := newClient(t, deadURL, maxine.WithReplicas(srv.URL))
	_, err = c2.RPC.ListServices(ctx, connect.NewRequest(&registryv1.ListServicesRequest{}))
	if connect.CodeOf(err) != connect.CodeUnavailable || c2.Replica() != srv.URL {
		t.Fatalf("a call to a dead replica: %v, next goes to %s; want UNAVAILABLE and %s", err, c2.Replica(), srv.URL)
	}
	if _, err := c2.RPC.ListServices(ctx, connect.NewRequest(&registryv1.ListServicesRequest{})); err != nil {
		t.Fatalf("the next call, on the live replica: %v", err)
	}
}

func TestReplicasMustBeURLs(t *testing.T) {
	for _, bad := range [][]string{{}, {"127.0.0.1:7400"}, {"https://127.0.0.1:7401"}, {"http://127.0.0.1:7401/path"}} {
		_, err := maxine.NewClient("http://127.0.0.1:7400", maxine.WithReplicas(bad...))
		var v *maxine.ValidationError
		if !errors.As(err, &v) || v.Field != "replicas" {
			t.Fatalf("WithReplicas(%q): %v, want a ValidationError naming replicas", bad, err)
		}
	}
}
