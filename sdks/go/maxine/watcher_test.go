package maxine_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	registryv1 "github.com/maxine-registry/maxine/sdks/go/gen/maxine/registry/v1"
	"github.com/maxine-registry/maxine/sdks/go/maxine"
)

func register(t testing.TB, c *maxine.Client, inst *registryv1.Instance) *registryv1.RegisterResponse {
	t.Helper()
	res, err := c.RPC.Register(context.Background(), connect.NewRequest(&registryv1.RegisterRequest{Instance: inst, LeaseTtl: durationpb.New(time.Hour)}))
	if err != nil {
		t.Fatalf("Register %s: %v", inst.GetInstanceId(), err)
	}
	return res.Msg
}

func deregister(t testing.TB, c *maxine.Client, ns, service, id string) uint64 {
	t.Helper()
	res, err := c.RPC.Deregister(context.Background(), connect.NewRequest(&registryv1.DeregisterRequest{Key: &registryv1.InstanceKey{Namespace: ns, Service: service, InstanceId: id}}))
	if err != nil {
		t.Fatalf("Deregister %s: %v", id, err)
	}
	return res.Msg.GetRevision()
}

// TestWatcherResumesWithoutLosingEvents cuts the watcher's connection,
// changes the registry while it is away, and checks that on reconnect it
// resumed (no new snapshot) and saw every revision exactly once.
func TestWatcherResumesWithoutLosingEvents(t *testing.T) {
	t.Parallel()
	srv := startServer(t, nil) // its own registry: revisions are all ours
	direct := newClient(t, srv.URL)
	proxy := newCutProxy(t, fmt.Sprintf("127.0.0.1:%d", srv.Port))
	viaProxy := newClient(t, proxy.URL())

	var mu sync.Mutex
	var revisions []uint64
	var syncs []maxine.SyncInfo
	errs := 0
	ctx := ctxT(t, 30*time.Second)
	w, err := viaProxy.Watch(ctx,
		maxine.WithWatchBackoff(maxine.Backoff{Base: 20 * time.Millisecond, Max: 100 * time.Millisecond}),
		maxine.WithOnChange(func(ch maxine.Change) {
			mu.Lock()
			revisions = append(revisions, ch.Revision)
			mu.Unlock()
		}),
		maxine.WithOnSync(func(s maxine.SyncInfo) {
			mu.Lock()
			syncs = append(syncs, s)
			mu.Unlock()
		}),
		maxine.WithOnWatchError(func(error) {
			mu.Lock()
			errs++
			mu.Unlock()
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	var last uint64
	for i := range 5 {
		last = register(t, direct, &registryv1.Instance{Service: "orders", InstanceId: fmt.Sprintf("o-%d", i), Host: "127.0.0.1", Port: uint32(9300 + i)}).GetRevision()
	}
	eventually(t, 5*time.Second, "the first 5 events", func() bool { return w.Revision() == last })

	proxy.cut(true)
	eventually(t, 5*time.Second, "the watcher to notice the cut", func() bool { mu.Lock(); defer mu.Unlock(); return errs > 0 })
	for i := 5; i < 10; i++ {
		register(t, direct, &registryv1.Instance{Service: "orders", InstanceId: fmt.Sprintf("o-%d", i), Host: "127.0.0.1", Port: uint32(9300 + i)})
	}
	register(t, direct, &registryv1.Instance{Service: "orders", InstanceId: "o-0", Host: "127.0.0.1", Port: 9300, Zone: "z-2"}) // an update
	deregister(t, direct, "", "orders", "o-1")
	last = deregister(t, direct, "", "orders", "o-7")
	if w.Revision() >= last {
		t.Fatal("the watcher saw changes through a cut connection")
	}
	proxy.cut(false)
	eventually(t, 10*time.Second, "the watcher to catch up", func() bool { return w.Revision() == last })

	mu.Lock()
	defer mu.Unlock()
	if len(syncs) != 1 || syncs[0].Reset {
		t.Fatalf("snapshots %+v: want only the first, and no reset (a resume replays events)", syncs)
	}
	if len(revisions) != int(last) {
		t.Fatalf("saw %d changes for %d revisions: %v", len(revisions), last, revisions)
	}
	for i, r := range revisions {
		if r != uint64(i+1) {
			t.Fatalf("revisions %v: a gap or a repeat at index %d", revisions, i)
		}
	}
	want := map[string]bool{}
	for _, inst := range discoverAll(t, direct, "", "orders") {
		want[inst.GetInstanceId()] = true
	}
	got := w.Instances("orders")
	if len(got) != len(want) || len(got) != 8 {
		t.Fatalf("view holds %d instances, server %d, want 8", len(got), len(want))
	}
	for _, inst := range got {
		if !want[inst.GetInstanceId()] {
			t.Fatalf("view holds %s, the server does not", inst.GetInstanceId())
		}
	}
	if z := w.Get("orders", "o-0").GetZone(); z != "z-2" {
		t.Fatalf("o-0 zone %q after the missed update, want z-2", z)
	}
}

// TestWatcherSeesKilledSessionLeave kills a process that holds a session:
// its heartbeat stream dies with it, and after the server's grace its
// instances leave the watcher's view as STREAM_CLOSED.
func TestWatcherSeesKilledSessionLeave(t *testing.T) {
	t.Parallel()
	c := newClient(t, serverURL())
	ns := uniqueNS(t)
	removed := make(chan maxine.Change, 4)
	ctx := ctxT(t, 30*time.Second)
	w, err := c.Watch(ctx, maxine.WithNamespace(ns), maxine.WithServices("killed"), maxine.WithOnChange(func(ch maxine.Change) {
		if ch.Type == maxine.ChangeRemoved {
			removed <- ch
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "MAXINE_TEST_HELPER=session", "MAXINE_TEST_NS="+ns)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	line, err := bufio.NewReader(out).ReadString('\n')
	if strings.TrimSpace(line) != "registered" {
		t.Fatalf("helper said %q (%v)", line, err)
	}
	eventually(t, 5*time.Second, "the helper's instances in the view", func() bool { return len(w.Instances("killed")) == 2 })
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	for i := 0; i < 2; i++ {
		select {
		case ch := <-removed:
			if ch.RemovalReason != registryv1.RemovalReason_REMOVAL_REASON_STREAM_CLOSED {
				t.Fatalf("%s removed as %s, want STREAM_CLOSED", ch.Instance.GetInstanceId(), ch.RemovalReason)
			}
		case <-ctx.Done():
			t.Fatalf("instances still in the view 30s after the kill: %v", w.Instances("killed"))
		}
	}
	if n := len(w.Instances("killed")); n != 0 {
		t.Fatalf("%d instances left in the view", n)
	}
}

// TestWatcherSeesOperatorDrain drains an instance with SetOperatorStatus
// and checks that the watcher's view carries the override (status DRAINING,
// operator_status DRAINING), that Pick skips it, and that clearing it
// restores the reported status.
func TestWatcherSeesOperatorDrain(t *testing.T) {
	t.Parallel()
	c := newClient(t, serverURL())
	ns := uniqueNS(t)
	ctx := ctxT(t, 30*time.Second)
	register(t, c, &registryv1.Instance{Namespace: ns, Service: "drained", InstanceId: "d1", Host: "127.0.0.1", Port: 9000})
	w, err := c.Watch(ctx, maxine.WithNamespace(ns), maxine.WithServices("drained"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	key := &registryv1.InstanceKey{Namespace: ns, Service: "drained", InstanceId: "d1"}
	set := func(s registryv1.OperatorStatus) {
		t.Helper()
		if _, err := c.RPC.SetOperatorStatus(ctx, connect.NewRequest(&registryv1.SetOperatorStatusRequest{Key: key, Status: s})); err != nil {
			t.Fatalf("SetOperatorStatus %s: %v", s, err)
		}
	}
	set(registryv1.OperatorStatus_OPERATOR_STATUS_DRAINING)
	eventually(t, 5*time.Second, "the override in the view", func() bool {
		return w.Get("drained", "d1").GetOperatorStatus() == registryv1.OperatorStatus_OPERATOR_STATUS_DRAINING
	})
	if s := w.Get("drained", "d1").GetStatus(); s != registryv1.ServingStatus_SERVING_STATUS_DRAINING {
		t.Fatalf("status %s while drained, want DRAINING", s)
	}
	if i, err := w.PickFrom("drained", registryv1.Strategy_STRATEGY_ROUND_ROBIN, ""); err == nil {
		t.Fatalf("picked %s while it is drained", i.GetInstanceId())
	}
	set(registryv1.OperatorStatus_OPERATOR_STATUS_UNSPECIFIED)
	eventually(t, 5*time.Second, "the reported status back", func() bool {
		return w.Get("drained", "d1").GetStatus() == registryv1.ServingStatus_SERVING_STATUS_SERVING
	})
	if i, err := w.PickFrom("drained", registryv1.Strategy_STRATEGY_ROUND_ROBIN, ""); err != nil || i.GetInstanceId() != "d1" {
		t.Fatalf("pick after undrain: %v %v", i, err)
	}
}

// TestWatcherLifecycle: NewWatcher describes a watch; Ready starts it and
// waits for the snapshot; Start after that does nothing; Close is
// idempotent; a watcher closed before it started never starts.
func TestWatcherLifecycle(t *testing.T) {
	t.Parallel()
	c := newClient(t, serverURL())
	ns := uniqueNS(t)
	register(t, c, &registryv1.Instance{Namespace: ns, Service: "life", InstanceId: "l-1", Host: "127.0.0.1", Port: 9000})
	w, err := c.NewWatcher(maxine.WithNamespace(ns), maxine.WithServices("life"))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Ready(ctxT(t, 10*time.Second)); err != nil {
		t.Fatalf("Ready of a watcher not started: %v, want it started and ready", err)
	}
	w.Start(context.Background())
	if w.Get("life", "l-1") == nil {
		t.Fatal("l-1 is not in the view after Ready")
	}
	_ = w.Close()
	_ = w.Close()

	never, err := c.NewWatcher(maxine.WithServices("life"))
	if err != nil {
		t.Fatal(err)
	}
	_ = never.Close()
	never.Start(context.Background())
	if err := never.Ready(ctxT(t, time.Second)); err != maxine.ErrClosed {
		t.Fatalf("Ready of a watcher closed before it started: %v, want ErrClosed", err)
	}
	if _, err := c.NewWatcher(maxine.WithServices("")); err == nil {
		t.Fatal("NewWatcher with an empty service name: no error")
	}
}
