package maxine_test

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"connectrpc.com/connect"

	registryv1 "github.com/maxine-registry/maxine/sdks/go/gen/maxine/registry/v1"
	"github.com/maxine-registry/maxine/sdks/go/internal/testserver"
	"github.com/maxine-registry/maxine/sdks/go/maxine"
	_ "github.com/maxine-registry/maxine/sdks/go/maxine/outlierdetection"
)

// registerBackends starts n real gRPC backends and registers them (unary
// Register, a 10-minute lease: the default 10 s would expire them during a
// slow run) as instances b0..b(n-1) of service in ns.
func registerBackends(t *testing.T, c *maxine.Client, ns, service string, n int) []*testserver.Backend {
	t.Helper()
	ctx := ctxT(t, 30*time.Second)
	var backends []*testserver.Backend
	for i := range n {
		b := startBackend(t)
		backends = append(backends, b)
		inst := &registryv1.Instance{Namespace: ns, Service: service, InstanceId: "b" + strconv.Itoa(i), Host: "127.0.0.1", Port: uint32(b.Port)}
		if _, err := c.RPC.Register(ctx, connect.NewRequest(&registryv1.RegisterRequest{Instance: inst, LeaseTtl: durationpb.New(10 * time.Minute)})); err != nil {
			t.Fatal(err)
		}
	}
	return backends
}

func hits(bs []*testserver.Backend) []int64 {
	out := make([]int64, len(bs))
	for i, b := range bs {
		out[i] = b.Calls()
	}
	return out
}

// TestWatcherEjectsFailingBackend: five real gRPC backends registered in a
// real server; the Watcher's Pick chooses, and UnaryOutcomeInterceptor on
// each backend's connection reports every call. One backend starts
// answering UNAVAILABLE: after three failures no pick chooses it until its ejection time is over, then one
// trial (five picks at once: one gets it); it returns once it heals; a
// second failing backend is not ejected while the first is out
// (max_ejection_percent 20 % of 5: one).
func TestWatcherEjectsFailingBackend(t *testing.T) {
	t.Parallel()
	c := newClient(t, serverURL())
	ns := uniqueNS(t)
	backends := registerBackends(t, c, ns, "eject", 5)
	var mu sync.Mutex
	var events []maxine.EjectionEvent
	w, err := c.Watch(context.Background(), maxine.WithNamespace(ns), maxine.WithServices("eject"),
		maxine.WithEjection(maxine.EjectionConfig{ConsecutiveFailures: 3, BaseEjectionTime: 300 * time.Millisecond, MaxEjectionPercent: 20, Interval: time.Minute}),
		maxine.WithOnEjection(func(e maxine.EjectionEvent) { mu.Lock(); events = append(events, e); mu.Unlock() }))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Ready(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	conns := map[string]healthpb.HealthClient{}
	for _, inst := range w.Instances("eject") {
		cc, err := grpc.NewClient(fmt.Sprintf("127.0.0.1:%d", inst.GetPort()), grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithUnaryInterceptor(w.UnaryOutcomeInterceptor("eject", inst.GetInstanceId())))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		conns[inst.GetInstanceId()] = healthpb.NewHealthClient(cc)
	}
	type pick struct {
		id string
		at time.Time
	}
	var picks []pick
	maxEjected := 0
	batch := func() {
		chosen := make([]*registryv1.Instance, 5)
		for i := range chosen {
			inst, err := w.Pick(registryv1.Strategy_STRATEGY_ROUND_ROBIN, "")
			if err != nil {
				t.Fatal(err)
			}
			chosen[i] = inst
			picks = append(picks, pick{inst.GetInstanceId(), time.Now()})
		}
		var wg sync.WaitGroup
		for _, inst := range chosen {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_, _ = conns[inst.GetInstanceId()].Check(ctx, &healthpb.HealthCheckRequest{}) // reported by the interceptor
			}()
		}
		wg.Wait()
		maxEjected = max(maxEjected, w.EjectionStats("eject").Ejected)
	}
	got := func() []maxine.EjectionEvent {
		mu.Lock()
		defer mu.Unlock()
		return append([]maxine.EjectionEvent(nil), events...)
	}
	// batches until the n-th event, for at most 10 s (a batch can take well under a millisecond)
	until := func(n int, what string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for len(got()) < n {
			if time.Now().After(deadline) {
				t.Fatalf("no %s within 10 s; events %+v", what, got())
			}
			batch()
		}
	}

	batch()
	if h := hits(backends); fmt.Sprint(h) != "[1 1 1 1 1]" {
		t.Fatalf("first batch: hits %v, want one each", h)
	}
	backends[1].SetFailing(true)
	until(1, "ejection of b1")
	if e := got()[0]; e.InstanceID != "b1" || !e.Ejected || e.Reason != maxine.ReasonConsecutiveFailures || e.Ejections != 1 || e.Duration != 300*time.Millisecond {
		t.Fatalf("first event %+v", e)
	}
	if n := backends[1].Calls(); n != 4 {
		t.Fatalf("b1 got %d calls, want 1 + 3 failures", n)
	}
	backends[2].SetFailing(true)
	until(2, "b1's trial")
	first := got()[0]
	var b1 []pick
	for _, p := range picks {
		if p.id == "b1" && p.at.After(first.At) {
			b1 = append(b1, p)
		}
	}
	if len(b1) != 1 || b1[0].at.Before(first.At.Add(300*time.Millisecond)) {
		t.Fatalf("picks of b1 after its ejection: %+v; want one trial after %v", b1, first.At.Add(300*time.Millisecond))
	}
	if e := got()[1]; e.InstanceID != "b1" || e.Reason != maxine.ReasonTrialFailed || e.Ejections != 2 || e.Duration != 600*time.Millisecond {
		t.Fatalf("second event %+v", e)
	}
	backends[1].SetFailing(false)
	until(4, "b1 restored and b2 ejected")
	if e := got()[2]; e.InstanceID != "b1" || e.Ejected {
		t.Fatalf("third event %+v, want b1 restored", e)
	}
	if e := got()[3]; e.InstanceID != "b2" || !e.Ejected || e.Reason != maxine.ReasonConsecutiveFailures {
		t.Fatalf("fourth event %+v, want b2 ejected", e)
	}
	backends[2].SetFailing(false)
	until(5, "b2 restored")
	before := hits(backends)
	batch()
	after := hits(backends)
	for i := range after {
		if after[i]-before[i] != 1 {
			t.Fatalf("after both healed: a batch went %v -> %v, want one call each", before, after)
		}
	}
	if s := w.EjectionStats(""); s != (maxine.EjectionStats{EjectedTotal: 3, RestoredTotal: 2}) || maxEjected != 1 {
		t.Fatalf("stats %+v, most ejected at once %d; want 3 ejections, 2 restorations, never more than 1", s, maxEjected)
	}
}

// TestResolverOutlierDetection: the maxine:/// resolver with
// WithOutlierDetection hands grpc-go its outlier_detection policy: of two
// backends answering UNAVAILABLE, one stops getting calls after a sweep,
// and only one is ever out (20 % of 5); once healed, every backend gets
// calls again.
func TestResolverOutlierDetection(t *testing.T) {
	t.Parallel()
	c := newClient(t, serverURL())
	ns := uniqueNS(t)
	backends := registerBackends(t, c, ns, "od", 5)
	// MaxEjectionTime keeps the ejections of backends that fail on and off short, so that they are back soon after healing
	cfg := maxine.EjectionConfig{Interval: 200 * time.Millisecond, BaseEjectionTime: 600 * time.Millisecond, MaxEjectionTime: 1200 * time.Millisecond, MaxEjectionPercent: 20,
		FailurePercentageThreshold: 50, FailurePercentageMinimumHosts: 5, FailurePercentageRequestVolume: 3}
	conn, err := grpc.NewClient("maxine:///od?namespace="+url.QueryEscape(ns),
		grpc.WithResolvers(maxine.NewResolverBuilder(c, maxine.WithOutlierDetection(cfg, ""))),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	health := healthpb.NewHealthClient(conn)
	call := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := health.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true))
		if err != nil && status.Code(err) != codes.Unavailable {
			t.Fatalf("Check: %v", err)
		}
	}
	// rounds of 25 calls: round_robin over what is not ejected
	round := func() []int64 {
		before := hits(backends)
		for range 25 {
			call()
		}
		after := hits(backends)
		for i := range after {
			after[i] -= before[i]
		}
		return after
	}
	eventually(t, 10*time.Second, "calls on all five backends", func() bool {
		r := round()
		return r[0] > 0 && r[1] > 0 && r[2] > 0 && r[3] > 0 && r[4] > 0
	})
	backends[1].SetFailing(true)
	backends[2].SetFailing(true)
	// rounds until one of them is seen out, then 2 s more: never two out at once
	sawOut := map[int]bool{}
	deadline := time.Now().Add(15 * time.Second)
	var checkUntil time.Time
	for time.Now().Before(deadline) && (checkUntil.IsZero() || time.Now().Before(checkUntil)) {
		r := round()
		out := 0
		for i, n := range r {
			if n == 0 {
				out++
				sawOut[i] = true
			}
		}
		if out > 1 {
			t.Fatalf("a round of 25 calls reached %v: more than one backend ejected (max 20 %% of 5)", r)
		}
		if out == 1 && checkUntil.IsZero() {
			checkUntil = time.Now().Add(2 * time.Second)
		}
	}
	// which of the two failing ones grpc-go ejects (and keeps ejecting) depends on its map order
	if !(sawOut[1] || sawOut[2]) || sawOut[0] || sawOut[3] || sawOut[4] {
		t.Fatalf("backends seen ejected: %v; want b1 or b2 and no other", sawOut)
	}
	backends[1].SetFailing(false)
	backends[2].SetFailing(false)
	eventually(t, 10*time.Second, "calls on all five backends once healed", func() bool {
		r := round()
		return r[0] > 0 && r[1] > 0 && r[2] > 0 && r[3] > 0 && r[4] > 0
	})
}

// TestResolverOutlierDetectionConfig: the service config names the policy
// with the defaults, and bad settings are refused naming the field.
func TestResolverOutlierDetectionConfig(t *testing.T) {
	t.Parallel()
	c := newClient(t, serverURL())
	conn, err := grpc.NewClient("maxine:///svc",
		grpc.WithResolvers(maxine.NewResolverBuilder(c, maxine.WithOutlierDetection(maxine.EjectionConfig{MaxEjectionPercent: 101}, ""))),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if want := "ejection.MaxEjectionPercent: must be 0..100 (or Off), got 101"; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("a call through a resolver with MaxEjectionPercent 101: %v; want an error naming %q", err, want)
	}
}

// TestWatcherRefusesBadEjection: NewWatcher names the field and the rule.
func TestWatcherRefusesBadEjection(t *testing.T) {
	t.Parallel()
	c := newClient(t, serverURL())
	_, err := c.NewWatcher(maxine.WithServices("x"), maxine.WithEjection(maxine.EjectionConfig{Interval: -time.Second}))
	if want := "maxine: ejection.Interval: must be >= 0 (0: the default), got -1s"; err == nil || err.Error() != want {
		t.Fatalf("NewWatcher with Interval -1s: %v; want %q", err, want)
	}
	if _, err := c.NewWatcher(maxine.WithServices("x"), maxine.WithoutEjection(), maxine.WithEjection(maxine.EjectionConfig{})); err != nil {
		t.Fatal(err)
	}
}

// TestOutcome: which call errors count against an instance.
func TestOutcome(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err              error
		success, reports bool
	}{
		{nil, true, true},
		{status.Error(codes.Unavailable, "x"), false, true},
		{status.Error(codes.DeadlineExceeded, "x"), false, true},
		{status.Error(codes.NotFound, "x"), true, true},
		{status.Error(codes.Canceled, "x"), false, false},
		{context.Canceled, false, false},
		{connect.NewError(connect.CodeUnavailable, nil), false, true},
		{connect.NewError(connect.CodeInvalidArgument, nil), true, true},
		{fmt.Errorf("dial: %w", context.DeadlineExceeded), false, true},
	} {
		if s, r := maxine.Outcome(tc.err); s != tc.success || r != tc.reports {
			t.Errorf("Outcome(%v) = %v, %v; want %v, %v", tc.err, s, r, tc.success, tc.reports)
		}
	}
}
