package maxine_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	registryv1 "github.com/maxine-registry/maxine/sdks/go/gen/maxine/registry/v1"
	"github.com/maxine-registry/maxine/sdks/go/internal/testserver"
	"github.com/maxine-registry/maxine/sdks/go/maxine"
)

// sharedEnv are the settings of the server most tests share: a short grace
// and TTL floor so that liveness tests take a second, not ten.
var sharedEnv = map[string]string{"MAXINE_GRACE": "300ms", "MAXINE_LEASE_TTL_MIN": "100ms"}

// TestMain runs the built server once for the package (the examples find
// it in MAXINE_URL) unless the process is a helper child of a test.
func TestMain(m *testing.M) {
	if helper := os.Getenv("MAXINE_TEST_HELPER"); helper != "" {
		os.Exit(runHelper(helper))
	}
	srv, err := testserver.Start(sharedEnv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: cannot start the Maxine server for the Go SDK tests:", err)
		os.Exit(1)
	}
	os.Setenv("MAXINE_URL", srv.URL)
	code := m.Run()
	if err := srv.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: stopping the shared server:", err)
		code = 1
	}
	os.Exit(code)
}

// serverURL is the shared server's address.
func serverURL() string { return os.Getenv("MAXINE_URL") }

// newClient returns a Client of url closed with the test.
func newClient(t testing.TB, url string, opts ...maxine.ClientOption) *maxine.Client {
	t.Helper()
	c, err := maxine.NewClient(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// startServer runs a server of the test's own, stopped with the test.
func startServer(t testing.TB, env map[string]string) *testserver.Server {
	t.Helper()
	merged := map[string]string{}
	for k, v := range sharedEnv {
		merged[k] = v
	}
	for k, v := range env {
		merged[k] = v
	}
	srv, err := testserver.Start(merged)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Kill() })
	return srv
}

// uniqueNS returns a namespace no other test uses.
func uniqueNS(t testing.TB) string {
	name := strings.NewReplacer("/", "-", "_", "-").Replace(t.Name())
	if len(name) > 100 {
		name = name[:100]
	}
	return fmt.Sprintf("%s-%d", name, time.Now().UnixNano()%1_000_000)
}

// eventually polls cond every 10 ms until it holds or d passes.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// discoverAll lists every instance of a service through Discover.
func discoverAll(t testing.TB, c *maxine.Client, ns, service string) []*registryv1.Instance {
	t.Helper()
	res, err := c.RPC.Discover(context.Background(), connect.NewRequest(&registryv1.DiscoverRequest{Namespace: ns, Service: service, IncludeAll: true}))
	if connect.CodeOf(err) == connect.CodeNotFound {
		return nil
	}
	if err != nil {
		t.Fatalf("Discover %s/%s: %v", ns, service, err)
	}
	return res.Msg.GetInstances()
}

// metric reads one unlabelled counter or gauge from the server's /metrics.
func metric(t testing.TB, url, name string) float64 {
	t.Helper()
	return metricSum(t, url, name+" ")
}

// metricSum sums the /metrics lines that start with prefix (a metric name and
// the start of its labels), failing when there is none.
func metricSum(t testing.TB, url, prefix string) float64 {
	t.Helper()
	res, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sum, found := 0.0, false
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		f, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("/metrics %s: %v", line, err)
		}
		sum, found = sum+f, true
	}
	if !found {
		t.Fatalf("/metrics has no %s", prefix)
	}
	return sum
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func freePort() (string, error) {
	p, err := testserver.FreePort()
	return fmt.Sprint(p), err
}

// runHelper is the body of a child process started by a test.
func runHelper(name string) int {
	switch name {
	case "session":
		return helperSession()
	case "hold":
		return helperHold()
	}
	fmt.Fprintln(os.Stderr, "unknown helper", name)
	return 2
}
