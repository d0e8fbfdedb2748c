package xdstest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/xds"

	registryv1 "github.com/maxine-registry/maxine/sdks/go/gen/maxine/registry/v1"
	"github.com/maxine-registry/maxine/sdks/go/internal/testserver"
	"github.com/maxine-registry/maxine/sdks/go/maxine"
)

// grace is the server's MAXINE_GRACE in these tests: how long an instance
// outlives its heartbeat stream. Short, so that a SIGKILLed backend is
// dropped in well under a second.
const grace = 300 * time.Millisecond

// callTimeout bounds every call a test makes through an xDS channel.
const callTimeout = 2 * time.Second

// TestMain runs the test binary, or a helper child of a test when
// MAXINE_TEST_HELPER names one.
func TestMain(m *testing.M) {
	if helper := os.Getenv("MAXINE_TEST_HELPER"); helper != "" {
		os.Exit(runHelper(helper))
	}
	os.Exit(m.Run())
}

// maxineServer is one test's own Maxine server process with a Session on
// it (for the test's backends) and a Client (for Discover).
type maxineServer struct {
	*testserver.Server
	client  *maxine.Client
	session *maxine.Session
}

// startMaxine runs the built server on a free loopback port with the
// tests' grace and its service configuration in memory (a test's xds
// policy must not outlive it in a data directory another server opens),
// stopped with the test.
func startMaxine(t *testing.T) *maxineServer {
	t.Helper()
	srv, err := testserver.Start(map[string]string{"MAXINE_GRACE": grace.String(), "MAXINE_LEASE_TTL_MIN": "100ms", "MAXINE_DATA_DIR": "off"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Kill)
	c, err := maxine.NewClient(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	s, err := maxine.NewSession(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Close(ctx)
	})
	return &maxineServer{Server: srv, client: c, session: s}
}

// backend is a real gRPC server (the health service) of the test process,
// registered in Maxine through the Session.
type backend struct {
	*testserver.Backend
	inst *maxine.Instance
}

// addBackend starts a backend named name and registers it as an instance
// of proto.Service (host, port and instance_id filled in).
func (m *maxineServer) addBackend(t *testing.T, name string, proto *registryv1.Instance) *backend {
	t.Helper()
	b, err := testserver.StartNamedBackend(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Stop)
	proto.InstanceId, proto.Host, proto.Port = name, "127.0.0.1", uint32(b.Port)
	inst, err := m.session.Register(ctxT(t, 5*time.Second), proto)
	if err != nil {
		t.Fatalf("Register %s: %v", name, err)
	}
	return &backend{Backend: b, inst: inst}
}

// ids lists the instance ids of service in Maxine (namespace default).
func (m *maxineServer) ids(t *testing.T, service string) []string {
	t.Helper()
	res, err := m.client.RPC.Discover(ctxT(t, 5*time.Second), connect.NewRequest(&registryv1.DiscoverRequest{Service: service, IncludeAll: true}))
	if connect.CodeOf(err) == connect.CodeNotFound {
		return nil
	}
	if err != nil {
		t.Fatalf("Discover %s: %v", service, err)
	}
	var out []string
	for _, i := range res.Msg.GetInstances() {
		out = append(out, i.GetInstanceId())
	}
	return out
}

// bootstrap is a grpc-go xDS bootstrap pointing at the server on port, for
// a client node in zone (none when empty).
func bootstrap(port int, zone string) []byte {
	node := map[string]any{"id": "xdstest"}
	if zone != "" {
		node["locality"] = map[string]any{"zone": zone}
	}
	b, err := json.Marshal(map[string]any{
		"xds_servers": []any{map[string]any{
			"server_uri":      fmt.Sprintf("127.0.0.1:%d", port),
			"channel_creds":   []any{map[string]any{"type": "insecure"}},
			"server_features": []string{"xds_v3"},
		}},
		"node": node,
	})
	if err != nil {
		panic(err)
	}
	return b
}

// dialXDS opens a grpc-go channel to target (e.g. "xds:///payments") whose
// xDS client has its own bootstrap pointing at m, closed with the test.
func dialXDS(t *testing.T, m *maxineServer, target, zone string) *grpc.ClientConn {
	t.Helper()
	rb, err := xds.NewXDSResolverWithConfigForTesting(bootstrap(m.Port, zone))
	if err != nil {
		t.Fatalf("xDS resolver for %s: %v", target, err)
	}
	cc, err := grpc.NewClient(target, grpc.WithResolvers(rb), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("grpc.NewClient(%q): %v", target, err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// call makes one health Check through cc and returns the name of the
// backend that answered.
func call(cc *grpc.ClientConn) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	var md metadata.MD
	if _, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Header(&md)); err != nil {
		return "", err
	}
	names := md.Get(testserver.BackendHeader)
	if len(names) != 1 {
		return "", fmt.Errorf("answer without one %s header: %v", testserver.BackendHeader, md)
	}
	return names[0], nil
}

// tally counts n sequential calls by the backend that answered ("error:
// <code>" for a failed call).
func tally(cc *grpc.ClientConn, n int) map[string]int {
	out := map[string]int{}
	for i := 0; i < n; i++ {
		name, err := call(cc)
		if err != nil {
			name = "error: " + err.Error()
		}
		out[name]++
	}
	return out
}

// waitCalls calls through cc until ok holds for the backend of the last
// call (which may be "" when it failed) or d passes; it fails naming what
// was wanted and the answers seen meanwhile.
func waitCalls(t *testing.T, cc *grpc.ClientConn, d time.Duration, want string, ok func(seen map[string]int, last string) bool) map[string]int {
	t.Helper()
	seen := map[string]int{}
	deadline := time.Now().Add(d)
	for {
		name, err := call(cc)
		key := name
		if err != nil {
			key = "error: " + err.Error()
		}
		seen[key]++
		if ok(seen, name) {
			return seen
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: wanted %s; the calls were answered by %v", d, want, seen)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// only reports whether every key of seen is one of names.
func only(seen map[string]int, names ...string) bool {
	for k := range seen {
		found := false
		for _, n := range names {
			found = found || k == n
		}
		if !found {
			return false
		}
	}
	return true
}

// record is one call of a traffic loop.
type record struct {
	start   time.Time
	backend string
	err     error
}

// traffic calls through a channel, one call after another, until stopped,
// recording each call: what a client under steady load sees.
type traffic struct {
	mu      sync.Mutex
	records []record
	stop    chan struct{}
	done    chan struct{}
}

// startTraffic starts a traffic loop on cc, stopped with the test at the latest.
func startTraffic(t *testing.T, cc *grpc.ClientConn) *traffic {
	tr := &traffic{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(tr.done)
		for {
			select {
			case <-tr.stop:
				return
			default:
			}
			start := time.Now()
			name, err := call(cc)
			tr.mu.Lock()
			tr.records = append(tr.records, record{start: start, backend: name, err: err})
			tr.mu.Unlock()
			time.Sleep(time.Millisecond)
		}
	}()
	t.Cleanup(tr.halt)
	return tr
}

// halt stops the loop and waits for its last call.
func (tr *traffic) halt() {
	select {
	case <-tr.stop:
	default:
		close(tr.stop)
	}
	<-tr.done
}

// since returns the calls started at or after t0.
func (tr *traffic) since(t0 time.Time) []record {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var out []record
	for _, r := range tr.records {
		if !r.start.Before(t0) {
			out = append(out, r)
		}
	}
	return out
}

// summary counts records by backend, failures by error.
func summary(rs []record) map[string]int {
	out := map[string]int{}
	for _, r := range rs {
		if r.err != nil {
			out["error: "+r.err.Error()]++
		} else {
			out[r.backend]++
		}
	}
	return out
}

// waitFor polls cond every 5 ms for at most d; on timeout it fails with
// what was wanted and cond's last description of what it saw.
func waitFor(t *testing.T, d time.Duration, want string, cond func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		ok, saw := cond()
		if ok {
			return time.Since(start)
		}
		if time.Since(start) > d {
			t.Fatalf("after %v: wanted %s; saw %s", d, want, saw)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// runHelper is the body of a child process started by a test.
func runHelper(name string) int {
	switch name {
	case "xds-backend":
		return helperBackend()
	}
	fmt.Fprintln(os.Stderr, "unknown helper", name)
	return 2
}

// helperBackend serves a named backend (MAXINE_TEST_NAME), registers it
// as an instance of MAXINE_TEST_SERVICE in the server at MAXINE_URL with a
// Session of its own, prints "ready" and waits to be killed.
func helperBackend() int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "xds-backend helper:", err)
		return 1
	}
	name := os.Getenv("MAXINE_TEST_NAME")
	b, err := testserver.StartNamedBackend(name)
	if err != nil {
		return fail(err)
	}
	c, err := maxine.NewClient(os.Getenv("MAXINE_URL"))
	if err != nil {
		return fail(err)
	}
	s, err := maxine.NewSession(c)
	if err != nil {
		return fail(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = s.Register(ctx, &registryv1.Instance{Service: os.Getenv("MAXINE_TEST_SERVICE"), InstanceId: name, Host: "127.0.0.1", Port: uint32(b.Port)})
	if err != nil {
		return fail(err)
	}
	fmt.Printf("ready %d\n", b.Port)
	time.Sleep(time.Minute) // the test kills this process; a minute bounds it if not
	return fail(errors.New("not killed within a minute"))
}

// describe lists rs compactly for a failure message.
func describe(rs []record) string {
	var b strings.Builder
	for i, r := range rs {
		if i == 20 {
			fmt.Fprintf(&b, " ... (%d in all)", len(rs))
			break
		}
		if r.err != nil {
			fmt.Fprintf(&b, " [%s: %v]", r.start.Format("15:04:05.000"), r.err)
		} else {
			fmt.Fprintf(&b, " [%s: %s]", r.start.Format("15:04:05.000"), r.backend)
		}
	}
	return b.String()
}
