package maxine_test

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	registryv1 "github.com/maxine-registry/maxine/sdks/go/gen/maxine/registry/v1"
	"github.com/maxine-registry/maxine/sdks/go/maxine"
)

func TestSessionKeepsInstancesAliveAndDeregistersOnClose(t *testing.T) {
	t.Parallel()
	for _, p := range []maxine.Protocol{maxine.ProtocolGRPC, maxine.ProtocolConnect} {
		t.Run(p.String(), func(t *testing.T) {
			t.Parallel()
			c := newClient(t, serverURL(), maxine.WithProtocol(p))
			ns := uniqueNS(t)
			s, err := maxine.NewSession(c)
			if err != nil {
				t.Fatal(err)
			}
			ctx := ctxT(t, 20*time.Second)
			var handles []*maxine.Instance
			for _, id := range []string{"a", "b"} {
				h, err := s.Register(ctx, &registryv1.Instance{Namespace: ns, Service: "svc", InstanceId: id, Host: "127.0.0.1", Port: 9000}, maxine.WithTTL(300*time.Millisecond))
				if err != nil {
					t.Fatal(err)
				}
				if h.LeaseExpiresAt().IsZero() {
					t.Fatalf("%s: no lease deadline after Register returned", id)
				}
				handles = append(handles, h)
			}
			// Three TTLs without a Register: only the heartbeats keep them,
			// renewing each lease past three TTLs from now.
			threeTTLs := time.Now().Add(900 * time.Millisecond)
			for _, h := range handles {
				eventually(t, 5*time.Second, h.ID()+"'s lease renewed past three TTLs", func() bool { return h.LeaseExpiresAt().After(threeTTLs) })
			}
			if got := len(discoverAll(t, c, ns, "svc")); got != 2 {
				t.Fatalf("after 3 TTLs: %d instances registered, want 2", got)
			}
			if err := handles[0].Drain(ctx); err != nil {
				t.Fatal(err)
			}
			for _, inst := range discoverAll(t, c, ns, "svc") {
				want := registryv1.ServingStatus_SERVING_STATUS_SERVING
				if inst.GetInstanceId() == "a" {
					want = registryv1.ServingStatus_SERVING_STATUS_DRAINING
				}
				if inst.GetStatus() != want {
					t.Fatalf("%s: status %s, want %s", inst.GetInstanceId(), inst.GetStatus(), want)
				}
			}
			// Discover answers NOT_FOUND when nothing is SERVING: serve a again.
			if err := handles[0].SetStatus(ctx, registryv1.ServingStatus_SERVING_STATUS_SERVING); err != nil {
				t.Fatal(err)
			}
			if err := handles[1].Deregister(ctx); err != nil {
				t.Fatal(err)
			}
			if got := discoverAll(t, c, ns, "svc"); len(got) != 1 || got[0].GetInstanceId() != "a" {
				t.Fatalf("after deregistering b: %v", got)
			}
			if err := s.Close(ctx); err != nil {
				t.Fatal(err)
			}
			if got := discoverAll(t, c, ns, "svc"); len(got) != 0 {
				t.Fatalf("after Close: %d instances left", len(got))
			}
			select {
			case <-s.Done():
			default:
				t.Fatal("Done not closed after Close")
			}
			if s.Err() != nil {
				t.Fatalf("Err after Close = %v, want nil", s.Err())
			}
			if _, err := s.Register(ctx, &registryv1.Instance{Namespace: ns, Service: "svc", Host: "h", Port: 1}); !errors.Is(err, maxine.ErrClosed) {
				t.Fatalf("Register after Close: %v, want ErrClosed", err)
			}
		})
	}
}

func TestSessionValidatesArguments(t *testing.T) {
	t.Parallel()
	c := newClient(t, serverURL())
	s, err := maxine.NewSession(c)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctxT(t, 5*time.Second))
	ctx := ctxT(t, 5*time.Second)
	cases := []struct {
		inst  *registryv1.Instance
		field string
	}{
		{nil, "instance"},
		{&registryv1.Instance{Host: "h", Port: 1}, "instance.service"},
		{&registryv1.Instance{Service: "s", Port: 1}, "instance.host"},
		{&registryv1.Instance{Service: "s", Host: "h", Port: 70000}, "instance.port"},
	}
	for _, tc := range cases {
		_, err := s.Register(ctx, tc.inst)
		var ve *maxine.ValidationError
		if !errors.As(err, &ve) || ve.Field != tc.field {
			t.Errorf("Register(%v) = %v, want a ValidationError on %s", tc.inst, err, tc.field)
		}
	}
	if _, err := maxine.NewSession(c, maxine.WithSessionBackoff(maxine.Backoff{Base: time.Second, Max: time.Millisecond})); err == nil {
		t.Error("NewSession accepted Max < Base")
	}
	if _, err := maxine.NewClient("127.0.0.1:7400"); err == nil {
		t.Error("NewClient accepted a URL without scheme")
	}
}

// TestSessionSurvivesServerRestart restarts the server (losing its memory
// store) on the same port: the session reconnects, and the new stream's
// first beat, which carries each instance whole, registers them again (no
// Register call).
func TestSessionSurvivesServerRestart(t *testing.T) {
	t.Parallel()
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"MAXINE_PORT": port}
	srv := startServer(t, env)
	c := newClient(t, srv.URL)
	var mu sync.Mutex
	var events []maxine.SessionEvent
	rereg := make(chan string, 10)
	s, err := maxine.NewSession(c,
		maxine.WithSessionBackoff(maxine.Backoff{Base: 50 * time.Millisecond, Max: 200 * time.Millisecond}),
		maxine.WithSessionEvents(func(ev maxine.SessionEvent) {
			mu.Lock()
			events = append(events, ev)
			mu.Unlock()
			if ev.Kind == maxine.SessionReregistered {
				rereg <- ev.Instance.ID()
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t, 30*time.Second)
	defer s.Close(ctx)
	// A watcher of the same server sees the restart as a reset snapshot.
	syncs := make(chan maxine.SyncInfo, 10)
	w, err := c.Watch(ctx, maxine.WithServices("payments"),
		maxine.WithWatchBackoff(maxine.Backoff{Base: 50 * time.Millisecond, Max: 200 * time.Millisecond}),
		maxine.WithOnSync(func(si maxine.SyncInfo) { syncs <- si }))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for _, id := range []string{"p-1", "p-2"} {
		if _, err := s.Register(ctx, &registryv1.Instance{Service: "payments", InstanceId: id, Host: "127.0.0.1", Port: 9100}, maxine.WithTTL(time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	srv2 := startServer(t, env)
	got := map[string]bool{}
	for len(got) < 2 {
		select {
		case id := <-rereg:
			got[id] = true
		case <-ctx.Done():
			t.Fatalf("re-registered %v before the deadline, want p-1 and p-2", got)
		}
	}
	c2 := newClient(t, srv2.URL)
	eventually(t, 5*time.Second, "both instances on the restarted server", func() bool { return len(discoverAll(t, c2, "", "payments")) == 2 })
	if n := metric(t, srv2.URL, "maxine_beats_registered_total"); n != 2 {
		t.Errorf("maxine_beats_registered_total = %v on the new server, want 2 (both registered from the first beat)", n)
	}
	if n := metricSum(t, srv2.URL, `maxine_rpc_requests_total{method="Register",`); n != 0 {
		t.Errorf("Register calls = %v on the new server, want 0", n)
	}
	if first := <-syncs; first.Reset {
		t.Fatalf("first snapshot flagged reset: %+v", first)
	}
	select {
	case si := <-syncs:
		if !si.Reset || si.Reason != registryv1.ResetReason_RESET_REASON_REGISTRY_CHANGED {
			t.Fatalf("snapshot after the restart: %+v, want a reset for REGISTRY_CHANGED", si)
		}
	case <-ctx.Done():
		t.Fatal("the watcher got no snapshot from the restarted server")
	}
	eventually(t, 5*time.Second, "the watcher to hold both re-registered instances", func() bool { return len(w.Instances("payments")) == 2 })
	// Still alive past their TTL: the new stream carries the heartbeats,
	// renewing both leases past two TTLs from now.
	twoTTLs := time.Now().Add(2 * time.Second)
	for _, h := range s.Instances() {
		eventually(t, 5*time.Second, h.ID()+"'s lease renewed past two TTLs", func() bool { return h.LeaseExpiresAt().After(twoTTLs) })
	}
	if n := len(discoverAll(t, c2, "", "payments")); n != 2 {
		t.Fatalf("%d instances a TTL after the restart, want 2", n)
	}
	select {
	case <-s.Done():
		t.Fatalf("session lost: %v", s.Err())
	default:
	}
	mu.Lock()
	kinds := map[maxine.SessionEventKind]int{}
	for _, ev := range events {
		kinds[ev.Kind]++
	}
	mu.Unlock()
	if kinds[maxine.SessionDisconnected] == 0 || kinds[maxine.SessionReconnected] == 0 {
		t.Fatalf("events %v: want disconnected and reconnected", kinds)
	}
}

// TestSessionLostAfterMaxDowntime: with the server gone for good, the
// session gives up and says so through Done and Err.
func TestSessionLostAfterMaxDowntime(t *testing.T) {
	t.Parallel()
	srv := startServer(t, nil)
	c := newClient(t, srv.URL)
	s, err := maxine.NewSession(c, maxine.WithMaxDowntime(300*time.Millisecond),
		maxine.WithSessionBackoff(maxine.Backoff{Base: 20 * time.Millisecond, Max: 100 * time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t, 20*time.Second)
	h, err := s.Register(ctx, &registryv1.Instance{Service: "lost", Host: "127.0.0.1", Port: 1}, maxine.WithTTL(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if h.ID() == "" {
		t.Fatal("no server-assigned instance_id")
	}
	srv.Kill()
	select {
	case <-s.Done():
	case <-ctx.Done():
		t.Fatal("session not lost 20s after its server died")
	}
	if !errors.Is(s.Err(), maxine.ErrSessionLost) {
		t.Fatalf("Err = %v, want ErrSessionLost", s.Err())
	}
	if h.Registered() {
		t.Fatal("handle still live after the session was lost")
	}
	if _, err := s.Register(ctx, &registryv1.Instance{Service: "lost", Host: "h", Port: 1}); !errors.Is(err, maxine.ErrSessionLost) {
		t.Fatalf("Register after loss: %v, want ErrSessionLost", err)
	}
	_ = s.Close(ctx)
}

// TestSessionReconnectWithinGraceCausesNoEvent cuts the session's
// connection: it reconnects and beats within the server's grace, so the
// instance is never removed and a watcher sees nothing.
func TestSessionReconnectWithinGraceCausesNoEvent(t *testing.T) {
	t.Parallel()
	srv := startServer(t, map[string]string{"MAXINE_GRACE": "3s"})
	direct := newClient(t, srv.URL)
	proxy := newCutProxy(t, fmt.Sprintf("127.0.0.1:%d", srv.Port))
	viaProxy := newClient(t, proxy.URL())
	ctx := ctxT(t, 30*time.Second)
	var changes atomic.Int32
	w, err := direct.Watch(ctx, maxine.WithServices("steady"), maxine.WithOnChange(func(maxine.Change) { changes.Add(1) }))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	reconnected := make(chan maxine.SessionEvent, 4)
	s, err := maxine.NewSession(viaProxy,
		maxine.WithSessionBackoff(maxine.Backoff{Base: 20 * time.Millisecond, Max: 50 * time.Millisecond}),
		maxine.WithSessionEvents(func(ev maxine.SessionEvent) {
			if ev.Kind == maxine.SessionReconnected {
				reconnected <- ev
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	if _, err := s.Register(ctx, &registryv1.Instance{Service: "steady", InstanceId: "s-1", Host: "127.0.0.1", Port: 9600}, maxine.WithTTL(time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := w.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the instance in the view", func() bool { return len(w.Instances("steady")) == 1 })
	before := changes.Load()
	rev := w.Revision()
	proxy.cut(false)
	select {
	case <-reconnected:
	case <-ctx.Done():
		t.Fatal("the session did not reconnect")
	}
	// Past the old stream's grace (3 s) the instance would be gone had
	// the new stream not claimed it: a sleep that proves nothing happens.
	time.Sleep(3500 * time.Millisecond)
	if n := changes.Load() - before; n != 0 || w.Revision() != rev {
		t.Fatalf("%d changes (revision %d -> %d) after a reconnect within the grace, want none", n, rev, w.Revision())
	}
	if got := discoverAll(t, direct, "", "steady"); len(got) != 1 {
		t.Fatalf("%d instances after the reconnect, want 1", len(got))
	}
}

// TestSessionDropsASilentStream: when heartbeats go unanswered (a hung
// connection, not a closed one), the session gives up on the stream after
// the ack timeout and opens a new one.
func TestSessionDropsASilentStream(t *testing.T) {
	t.Parallel()
	srv := startServer(t, nil)
	direct := newClient(t, srv.URL)
	proxy := newCutProxy(t, fmt.Sprintf("127.0.0.1:%d", srv.Port))
	viaProxy := newClient(t, proxy.URL())
	ctx := ctxT(t, 30*time.Second)
	disconnects := make(chan error, 8)
	s, err := maxine.NewSession(viaProxy,
		maxine.WithHeartbeatInterval(100*time.Millisecond), maxine.WithAckTimeout(300*time.Millisecond),
		maxine.WithSessionBackoff(maxine.Backoff{Base: 20 * time.Millisecond, Max: 50 * time.Millisecond}),
		maxine.WithSessionEvents(func(ev maxine.SessionEvent) {
			if ev.Kind == maxine.SessionDisconnected {
				select {
				case disconnects <- ev.Err:
				default:
				}
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	if _, err := s.Register(ctx, &registryv1.Instance{Service: "hung", InstanceId: "h-1", Host: "127.0.0.1", Port: 9700}, maxine.WithTTL(5*time.Second)); err != nil {
		t.Fatal(err)
	}
	proxy.freeze(true)
	select {
	case err := <-disconnects:
		if connect.CodeOf(err) != connect.CodeDeadlineExceeded {
			t.Fatalf("the silent stream ended with %v, want DeadlineExceeded from the ack timeout", err)
		}
	case <-ctx.Done():
		t.Fatal("the session kept a silent stream")
	}
	proxy.cut(false) // drop the hung connections
	proxy.freeze(false)
	h := s.Instances()[0]
	before := h.LeaseExpiresAt()
	eventually(t, 10*time.Second, "a renewal on a new stream", func() bool { return h.LeaseExpiresAt().After(before) })
	if got := discoverAll(t, direct, "", "hung"); len(got) != 1 {
		t.Fatalf("%d instances after the new stream, want 1", len(got))
	}
}

// TestSessionRegisteringUnderOperatorDrainReportsItsOwnStatus registers an
// instance while an operator's override drains it (a restarted process):
// the session's beats must report the status it asked for, not the
// override shown in the answer, so that clearing the override brings the
// instance back to SERVING.
func TestSessionRegisteringUnderOperatorDrainReportsItsOwnStatus(t *testing.T) {
	t.Parallel()
	c := newClient(t, serverURL())
	ns := uniqueNS(t)
	ctx := ctxT(t, 30*time.Second)
	inst := &registryv1.Instance{Namespace: ns, Service: "restarted", InstanceId: "r1", Host: "127.0.0.1", Port: 9000}
	register(t, c, inst)
	key := &registryv1.InstanceKey{Namespace: ns, Service: "restarted", InstanceId: "r1"}
	set := func(s registryv1.OperatorStatus) {
		t.Helper()
		if _, err := c.RPC.SetOperatorStatus(ctx, connect.NewRequest(&registryv1.SetOperatorStatusRequest{Key: key, Status: s})); err != nil {
			t.Fatalf("SetOperatorStatus %s: %v", s, err)
		}
	}
	set(registryv1.OperatorStatus_OPERATOR_STATUS_DRAINING)
	s, err := maxine.NewSession(c)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close(ctx) }()
	h, err := s.Register(ctx, inst, maxine.WithTTL(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if got := h.Status(); got != registryv1.ServingStatus_SERVING_STATUS_SERVING {
		t.Fatalf("session reports %s under an operator's drain, want SERVING (its own)", got)
	}
	// two beats at a third of the TTL: one renewal moves the deadline by at most 367 ms
	renewedFrom := h.LeaseExpiresAt()
	eventually(t, 5*time.Second, "two heartbeats", func() bool { return h.LeaseExpiresAt().After(renewedFrom.Add(550 * time.Millisecond)) })
	set(registryv1.OperatorStatus_OPERATOR_STATUS_UNSPECIFIED)
	res, err := c.RPC.Discover(ctx, connect.NewRequest(&registryv1.DiscoverRequest{Namespace: ns, Service: "restarted"}))
	if err != nil {
		t.Fatalf("Discover after undrain: %v", err)
	}
	if got := res.Msg.GetInstance().GetStatus(); got != registryv1.ServingStatus_SERVING_STATUS_SERVING {
		t.Fatalf("status %s after undrain, want SERVING", got)
	}
}
