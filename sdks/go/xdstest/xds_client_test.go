package xdstest_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	configv1 "github.com/maxine-registry/maxine/sdks/go/gen/maxine/config/v1"
	registryv1 "github.com/maxine-registry/maxine/sdks/go/gen/maxine/registry/v1"
	"github.com/maxine-registry/maxine/sdks/go/internal/testserver"
)

// firstCallBound is how long grpc-go's xDS client may take to resolve a
// target (ADS stream, LDS, RDS, CDS, EDS, connect) before its first call;
// generous for a loaded 2-core machine under -race.
const firstCallBound = 15 * time.Second

// TestXdsNewInstanceGetsTrafficWithin1s: a client dialed xds:///payments
// and calling steadily sends calls to a new instance within 1 s of its
// Register (measured from the start of the Register call to the first call
// the new backend serves).
func TestXdsNewInstanceGetsTrafficWithin1s(t *testing.T) {
	m := startMaxine(t)
	m.addBackend(t, "a", &registryv1.Instance{Service: "payments"})
	cc := dialXDS(t, m, "xds:///payments", "")
	waitCalls(t, cc, firstCallBound, "a call answered by a", func(_ map[string]int, last string) bool { return last == "a" })

	tr := startTraffic(t, cc)
	registering := time.Now()
	b := m.addBackend(t, "b", &registryv1.Instance{Service: "payments"})
	registered := time.Since(registering)
	waitFor(t, 5*time.Second, "a call served by b", func() (bool, string) {
		return b.Calls() > 0, fmt.Sprint(summary(tr.since(registering)))
	})
	tr.halt()
	took := b.FirstCall().Sub(registering)
	t.Logf("b's first call %v after its Register started (the Register itself took %v)", took, registered)
	if took > time.Second {
		t.Fatalf("b got its first call %v after its Register started, want within 1 s; calls meanwhile: %v", took, summary(tr.since(registering)))
	}
	if s := summary(tr.since(registering)); !only(s, "a", "b") {
		t.Fatalf("calls failed while b was added: %v", s)
	}
}

// TestXdsDrainedInstanceGetsNoNewCalls: after b is drained (status
// DRAINING through its Session: endpoint health DRAINING), new calls go to
// a only; set SERVING again, b gets calls again.
func TestXdsDrainedInstanceGetsNoNewCalls(t *testing.T) {
	m := startMaxine(t)
	m.addBackend(t, "a", &registryv1.Instance{Service: "payments"})
	b := m.addBackend(t, "b", &registryv1.Instance{Service: "payments"})
	cc := dialXDS(t, m, "xds:///payments", "")
	waitCalls(t, cc, firstCallBound, "calls answered by both a and b", func(seen map[string]int, _ string) bool { return seen["a"] > 0 && seen["b"] > 0 })

	draining := time.Now()
	if err := b.inst.Drain(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	// stopped: 50 calls in a row answered by a
	run := 0
	waitCalls(t, cc, 2*time.Second, "50 calls in a row answered by a once b was drained", func(_ map[string]int, last string) bool {
		if last == "a" {
			run++
		} else {
			run = 0
		}
		return run == 50
	})
	t.Logf("b drained: 50 calls in a row on a %v after the drain started", time.Since(draining))
	before := b.Calls()
	if s := tally(cc, 200); s["a"] != 200 {
		t.Fatalf("200 calls after b was drained: want all on a, got %v", s)
	}
	if n := b.Calls() - before; n != 0 {
		t.Fatalf("drained b served %d new calls", n)
	}

	if err := b.inst.SetStatus(ctxT(t, 5*time.Second), registryv1.ServingStatus_SERVING_STATUS_SERVING); err != nil {
		t.Fatal(err)
	}
	waitCalls(t, cc, 2*time.Second, "a call answered by b once it serves again", func(_ map[string]int, last string) bool { return last == "b" })

	// NOT_SERVING (endpoint health UNHEALTHY) takes b out the same way
	if err := b.inst.SetStatus(ctxT(t, 5*time.Second), registryv1.ServingStatus_SERVING_STATUS_NOT_SERVING); err != nil {
		t.Fatal(err)
	}
	run = 0
	waitCalls(t, cc, 2*time.Second, "50 calls in a row answered by a once b was NOT_SERVING", func(_ map[string]int, last string) bool {
		if last == "a" {
			run++
		} else {
			run = 0
		}
		return run == 50
	})
	before = b.Calls()
	if s := tally(cc, 200); s["a"] != 200 || b.Calls() != before {
		t.Fatalf("200 calls after b went NOT_SERVING: want all on a and none served by b, got %v (b served %d)", s, b.Calls()-before)
	}
}

// TestXdsDialBeforeFirstBackend: a client dialed while payments has no
// instance (Maxine serves its resources with an empty ClusterLoadAssignment)
// fails its calls fast with UNAVAILABLE, and its calls succeed within 1 s
// of the first backend's Register.
func TestXdsDialBeforeFirstBackend(t *testing.T) {
	m := startMaxine(t)
	cc := dialXDS(t, m, "xds:///payments", "")
	waitFor(t, firstCallBound, "a call failing UNAVAILABLE while payments has no instance", func() (bool, string) {
		_, err := call(cc)
		return status.Code(err) == codes.Unavailable, fmt.Sprint(err)
	})
	registering := time.Now()
	m.addBackend(t, "a", &registryv1.Instance{Service: "payments"})
	waitCalls(t, cc, 3*time.Second, "a call answered by a once it registered", func(_ map[string]int, last string) bool { return last == "a" })
	took := time.Since(registering)
	t.Logf("first call answered %v after the first backend's Register started", took)
	if took > time.Second {
		t.Fatalf("the first call answered %v after the first backend's Register started, want within 1 s", took)
	}
}

// TestXdsKilledBackendProcessIsDropped: a backend in a child process (its
// own Session) is SIGKILLed; Maxine removes it after the grace, calls keep
// succeeding on the two others (only a call in flight at the kill may
// fail), and the client then never connects to the dead address again
// (a listener put on its port sees no connection for 3 s, where grpc-go
// would retry a kept endpoint within its 1 s reconnect backoff).
func TestXdsKilledBackendProcessIsDropped(t *testing.T) {
	m := startMaxine(t)
	m.addBackend(t, "a", &registryv1.Instance{Service: "payments"})
	m.addBackend(t, "b", &registryv1.Instance{Service: "payments"})

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "MAXINE_TEST_HELPER=xds-backend", "MAXINE_URL="+m.URL, "MAXINE_TEST_SERVICE=payments", "MAXINE_TEST_NAME=c")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	var port int
	if _, serr := fmt.Sscanf(strings.TrimSpace(line), "ready %d", &port); serr != nil {
		t.Fatalf("the backend child said %q (%v), want \"ready <port>\"", line, err)
	}

	cc := dialXDS(t, m, "xds:///payments", "")
	waitCalls(t, cc, firstCallBound, "calls answered by a, b and the child c", func(seen map[string]int, _ string) bool {
		return seen["a"] > 0 && seen["b"] > 0 && seen["c"] > 0
	})
	tr := startTraffic(t, cc)
	time.Sleep(50 * time.Millisecond) // some calls before the kill
	killed := time.Now()
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	waitFor(t, grace+2*time.Second, "c removed from Maxine after the grace", func() (bool, string) {
		ids := m.ids(t, "payments")
		for _, id := range ids {
			if id == "c" {
				return false, fmt.Sprint(ids)
			}
		}
		return true, ""
	})
	t.Logf("c removed from Maxine %v after the SIGKILL (grace %v)", time.Since(killed), grace)

	// the dead address must be gone from the client: nothing connects to it
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatalf("cannot listen on the killed backend's port %d to watch for reconnects: %v", port, err)
	}
	var accepted atomic.Int64
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			_ = conn.Close()
		}
	}()
	time.Sleep(3 * time.Second)
	_ = l.Close()
	tr.halt()

	after := tr.since(killed)
	s := summary(after)
	failed := 0
	for k, n := range s {
		if strings.HasPrefix(k, "error: ") {
			failed += n
		} else if k != "a" && k != "b" {
			t.Fatalf("a call after the SIGKILL was answered by %q: %v", k, s)
		}
	}
	if failed > 1 {
		t.Fatalf("%d calls failed after c was killed (only the one in flight at the kill may): %v;%s", failed, s, describe(after))
	}
	if s["a"] < 50 || s["b"] < 50 {
		t.Fatalf("after the kill, want steady traffic on a and b (50 calls each at least), got %v", s)
	}
	if n := accepted.Load(); n != 0 {
		t.Fatalf("the client connected %d times to the killed backend's address after Maxine removed it: the endpoint was not dropped", n)
	}
	t.Logf("after the kill: %v", s)
}

// TestXdsWeightsSplitTraffic: instances of weight 1 and 3 get about 25 % and
// 75 % of 1,000 calls. grpc-go's round_robin ignores endpoint weights;
// Maxine puts each weight in a locality of its own whose weight carries it,
// and grpc-go's weighted_target picks a locality at random by weight, so
// b's count is binomial(1000, 0.75): standard deviation 13.7 calls. The
// tolerance, 60 calls (6 points), is 4.4 standard deviations (a correct
// server fails about once in 100,000 runs), while an equal split (500)
// or weights read the wrong way round (250) are far outside it.
func TestXdsWeightsSplitTraffic(t *testing.T) {
	m := startMaxine(t)
	m.addBackend(t, "a", &registryv1.Instance{Service: "payments", Weight: 1})
	m.addBackend(t, "b", &registryv1.Instance{Service: "payments", Weight: 3})
	cc := dialXDS(t, m, "xds:///payments", "")
	waitCalls(t, cc, firstCallBound, "calls answered by both a and b", func(seen map[string]int, _ string) bool { return seen["a"] > 0 && seen["b"] > 0 })

	s := tally(cc, 1000)
	t.Logf("1,000 calls: %v", s)
	if s["a"]+s["b"] != 1000 {
		t.Fatalf("1,000 calls: want all answered by a or b, got %v", s)
	}
	if s["b"] < 750-60 || s["b"] > 750+60 {
		t.Fatalf("1,000 calls with weights a=1, b=3: want b 750 ± 60, got %v", s)
	}
}

// TestXdsZonePreference: a client in zone z1 (bootstrap node.locality.zone)
// sends every call to the z1 backends while they serve; when they are
// drained, and again when they go, calls fail over to z2; when z1 serves
// again, calls return to z1.
func TestXdsZonePreference(t *testing.T) {
	m := startMaxine(t)
	a1 := m.addBackend(t, "a1", &registryv1.Instance{Service: "payments", Zone: "z1"})
	a2 := m.addBackend(t, "a2", &registryv1.Instance{Service: "payments", Zone: "z1"})
	m.addBackend(t, "b1", &registryv1.Instance{Service: "payments", Zone: "z2"})
	cc := dialXDS(t, m, "xds:///payments", "z1")
	waitCalls(t, cc, firstCallBound, "calls answered by both z1 backends", func(seen map[string]int, _ string) bool { return seen["a1"] > 0 && seen["a2"] > 0 })
	if s := tally(cc, 200); !only(s, "a1", "a2") {
		t.Fatalf("200 calls from a client in z1: want all on z1 (a1, a2), got %v", s)
	}

	// drained, still registered: z1's endpoints are all DRAINING
	for _, b := range []*backend{a1, a2} {
		if err := b.inst.Drain(ctxT(t, 5*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	waitCalls(t, cc, 3*time.Second, "calls failing over to z2 (b1) once z1's backends were drained", func(_ map[string]int, last string) bool { return last == "b1" })
	if s := tally(cc, 100); s["b1"] != 100 {
		t.Fatalf("100 calls while z1's backends are drained: want all on b1 (z2), got %v", s)
	}
	for _, b := range []*backend{a1, a2} {
		if err := b.inst.SetStatus(ctxT(t, 5*time.Second), registryv1.ServingStatus_SERVING_STATUS_SERVING); err != nil {
			t.Fatal(err)
		}
	}
	waitCalls(t, cc, 3*time.Second, "calls back on z1 once its backends serve again", func(_ map[string]int, last string) bool { return last == "a1" || last == "a2" })

	for _, b := range []*backend{a1, a2} {
		if err := b.inst.Deregister(ctxT(t, 5*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	gone := time.Now()
	seen := waitCalls(t, cc, 3*time.Second, "calls failing over to z2 (b1) once z1's backends went", func(_ map[string]int, last string) bool { return last == "b1" })
	t.Logf("failover to z2 %v after the z1 backends were deregistered; calls meanwhile %v", time.Since(gone), seen)
	if s := tally(cc, 100); s["b1"] != 100 {
		t.Fatalf("100 calls after z1's backends went: want all on b1 (z2), got %v", s)
	}

	m.addBackend(t, "a3", &registryv1.Instance{Service: "payments", Zone: "z1"})
	waitCalls(t, cc, 3*time.Second, "calls back on z1 (a3) once a z1 backend is back", func(_ map[string]int, last string) bool { return last == "a3" })
	if s := tally(cc, 100); s["a3"] != 100 {
		t.Fatalf("100 calls after a3 came in z1: want all on a3, got %v", s)
	}
}

// TestXdsFilteredName: xds:///payments;version=2 reaches only the
// instances of version 2, while xds:///payments reaches all three.
func TestXdsFilteredName(t *testing.T) {
	m := startMaxine(t)
	m.addBackend(t, "v1", &registryv1.Instance{Service: "payments", Version: "1"})
	m.addBackend(t, "v2a", &registryv1.Instance{Service: "payments", Version: "2"})
	m.addBackend(t, "v2b", &registryv1.Instance{Service: "payments", Version: "2"})

	filtered := dialXDS(t, m, "xds:///payments;version=2", "")
	waitCalls(t, filtered, firstCallBound, "calls answered by both version-2 backends", func(seen map[string]int, _ string) bool { return seen["v2a"] > 0 && seen["v2b"] > 0 })
	if s := tally(filtered, 200); !only(s, "v2a", "v2b") || s["v2a"] == 0 || s["v2b"] == 0 {
		t.Fatalf("200 calls to xds:///payments;version=2: want all on v2a and v2b (both), got %v", s)
	}

	all := dialXDS(t, m, "xds:///payments", "")
	waitCalls(t, all, firstCallBound, "xds:///payments reaching v1, v2a and v2b", func(seen map[string]int, _ string) bool {
		return seen["v1"] > 0 && seen["v2a"] > 0 && seen["v2b"] > 0
	})
}

// TestXdsNamespaceAndTagNames: xds:///team/payments reaches the payments
// of namespace team only, and xds:///payments;tag=canary only the
// instances of the default namespace's payments that carry tag canary.
func TestXdsNamespaceAndTagNames(t *testing.T) {
	m := startMaxine(t)
	m.addBackend(t, "team-1", &registryv1.Instance{Namespace: "team", Service: "payments"})
	m.addBackend(t, "canary-1", &registryv1.Instance{Service: "payments", Tags: []string{"canary", "eu"}})
	m.addBackend(t, "plain-1", &registryv1.Instance{Service: "payments", Tags: []string{"eu"}})

	team := dialXDS(t, m, "xds:///team/payments", "")
	waitCalls(t, team, firstCallBound, "a call to xds:///team/payments answered by team-1", func(_ map[string]int, last string) bool { return last == "team-1" })
	if s := tally(team, 100); s["team-1"] != 100 {
		t.Fatalf("100 calls to xds:///team/payments: want all on team-1 (namespace team), got %v", s)
	}

	canary := dialXDS(t, m, "xds:///payments;tag=canary", "")
	waitCalls(t, canary, firstCallBound, "a call to xds:///payments;tag=canary answered by canary-1", func(_ map[string]int, last string) bool { return last == "canary-1" })
	if s := tally(canary, 100); s["canary-1"] != 100 {
		t.Fatalf("100 calls to xds:///payments;tag=canary: want all on canary-1, got %v", s)
	}
}

// TestXdsRingHashAndLeastRequest: a service whose configuration (key xds)
// asks for RING_HASH on header x-user-id sends every call of one user to
// one backend and spreads users over the backends; a service whose
// instances' metadata asks for LEAST_REQUEST is served by grpc-go's
// least_request balancer over all of them.
func TestXdsRingHashAndLeastRequest(t *testing.T) {
	m := startMaxine(t)
	if _, err := m.client.Config.Put(ctxT(t, 5*time.Second), connect.NewRequest(&configv1.PutRequest{Service: "payments", Key: "xds", Value: []byte(`{"lbPolicy":"RING_HASH","hashHeader":"x-user-id"}`), ContentType: "application/json"})); err != nil {
		t.Fatalf("Put payments' xds configuration: %v", err)
	}
	for _, n := range []string{"r1", "r2", "r3"} {
		m.addBackend(t, n, &registryv1.Instance{Service: "payments"})
	}
	cc := dialXDS(t, m, "xds:///payments", "")
	callAs := func(user string) (string, error) {
		ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(context.Background(), "x-user-id", user), callTimeout)
		defer cancel()
		var md metadata.MD
		if _, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Header(&md)); err != nil {
			return "", err
		}
		return strings.Join(md.Get(testserver.BackendHeader), ","), nil
	}
	waitFor(t, firstCallBound, "a call to the ring-hash service to succeed", func() (bool, string) {
		_, err := callAs("warm-up")
		return err == nil, fmt.Sprint(err)
	})
	used := map[string]bool{}
	for u := 0; u < 30; u++ {
		user := fmt.Sprintf("user-%d", u)
		first := ""
		for i := 0; i < 10; i++ {
			got, err := callAs(user)
			if err != nil {
				t.Fatalf("call %d of %s: %v", i, user, err)
			}
			if first == "" {
				first = got
			} else if got != first {
				t.Fatalf("ring hash on x-user-id: %s's calls went to %s and then to %s", user, first, got)
			}
		}
		used[first] = true
	}
	if len(used) < 2 {
		t.Fatalf("ring hash: 30 users all landed on %v, want them spread over r1, r2, r3", used)
	}

	for _, n := range []string{"l1", "l2"} {
		m.addBackend(t, n, &registryv1.Instance{Service: "orders", Metadata: map[string]string{"xds-lb-policy": "LEAST_REQUEST"}})
	}
	lr := dialXDS(t, m, "xds:///orders", "")
	waitCalls(t, lr, firstCallBound, "calls to the least-request service answered by l1 and l2", func(seen map[string]int, _ string) bool { return seen["l1"] > 0 && seen["l2"] > 0 })
	if s := tally(lr, 100); !only(s, "l1", "l2") {
		t.Fatalf("100 calls to the least-request service: want all answered by l1 or l2, got %v", s)
	}
}
