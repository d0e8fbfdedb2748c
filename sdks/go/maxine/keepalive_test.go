package maxine_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	registryv1 "github.com/maxine-registry/maxine/sdks/go/gen/maxine/registry/v1"
	"github.com/maxine-registry/maxine/sdks/go/maxine"
)

// The client's keepalive against a network path that goes silent without
// closing. The server's own PINGs are off (MAXINE_KEEPALIVE_INTERVAL 0ms),
// so only the client's can find the dead path.

// watchThroughStall opens a Watcher of service "ka" through a proxy, stalls
// the watcher's connection, registers id directly, and reports whether the
// watcher saw it within wait, with the errors its stream reported.
func watchThroughStall(t *testing.T, ka maxine.Keepalive, id string, wait time.Duration) (bool, []error) {
	t.Helper()
	srv := startServer(t, map[string]string{"MAXINE_KEEPALIVE_INTERVAL": "0ms"})
	direct := newClient(t, srv.URL)
	proxy := newCutProxy(t, fmt.Sprintf("127.0.0.1:%d", srv.Port))
	viaProxy := newClient(t, proxy.URL(), maxine.WithKeepalive(ka))
	ctx := ctxT(t, 30*time.Second)
	var mu sync.Mutex
	var errs []error
	w, err := viaProxy.Watch(ctx, maxine.WithServices("ka"),
		maxine.WithWatchBackoff(maxine.Backoff{Base: 20 * time.Millisecond, Max: 100 * time.Millisecond}),
		maxine.WithOnWatchError(func(err error) {
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	proxy.stallOpen()
	register(t, direct, &registryv1.Instance{Service: "ka", InstanceId: id, Host: "127.0.0.1", Port: 9001})
	deadline := time.Now().Add(wait)
	seen := false
	for !seen && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		seen = w.Get("ka", id) != nil
	}
	mu.Lock()
	defer mu.Unlock()
	return seen, append([]error(nil), errs...)
}

// TestKeepaliveFindsASilentPath: the watcher's connection goes silent; its
// unanswered PING closes it and the watcher resumes on a new connection,
// getting the change it missed.
func TestKeepaliveFindsASilentPath(t *testing.T) {
	t.Parallel()
	seen, errs := watchThroughStall(t, maxine.Keepalive{Interval: 200 * time.Millisecond, Timeout: 300 * time.Millisecond}, "ka-1", 10*time.Second)
	if !seen {
		t.Fatalf("the watcher never saw ka-1 after its path went silent (stream errors: %v)", errs)
	}
	if len(errs) == 0 {
		t.Fatal("the watcher saw ka-1 without its stream failing: the path was not silent")
	}
}

// TestNoKeepaliveStaysOnASilentPath is the control: with no PINGs the same
// watcher stays on the dead connection and misses the change.
func TestNoKeepaliveStaysOnASilentPath(t *testing.T) {
	t.Parallel()
	seen, errs := watchThroughStall(t, maxine.Keepalive{Interval: 0, Timeout: time.Second}, "ka-2", 2*time.Second)
	if seen || len(errs) != 0 {
		t.Fatalf("without PINGs: seen %v, stream errors %v; want the watcher stuck on the dead path", seen, errs)
	}
}

func TestKeepaliveRefusesBadSettings(t *testing.T) {
	_, err := maxine.NewClient("http://127.0.0.1:1", maxine.WithKeepalive(maxine.Keepalive{Interval: time.Second}))
	var v *maxine.ValidationError
	if !errors.As(err, &v) || v.Field != "keepalive" || !strings.Contains(v.Rule, "Timeout > 0") {
		t.Fatalf("NewClient with a zero keepalive Timeout: %v, want a ValidationError naming keepalive", err)
	}
}
