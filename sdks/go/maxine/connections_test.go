package maxine_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	registryv1 "github.com/maxine-registry/maxine/sdks/go/gen/maxine/registry/v1"
	"github.com/maxine-registry/maxine/sdks/go/maxine"
)

// TestReconnectingSessionsShareConnections: the connection of a Client
// holding 300 Sessions is cut; every session reconnects at once, and they
// share one new connection (the server allows 1,000 streams on one) instead
// of dialing one each. net/http's HTTP/2 transport dialed a connection per
// call waiting while none was open: after a server restart a busy process
// opened hundreds and ran into the server's per-address limit.
func TestReconnectingSessionsShareConnections(t *testing.T) {
	t.Parallel()
	// The server allows 100 Heartbeat streams on a connection by default;
	// 1,000 here (as the reconnect-storm bench does) so that the HTTP/2
	// stream limit, which a client sees, is the only one.
	srv := startServer(t, map[string]string{"MAXINE_MAX_HEARTBEATS_PER_CONNECTION": "1000"})
	proxy := newCutProxy(t, fmt.Sprintf("127.0.0.1:%d", srv.Port))
	c := newClient(t, proxy.URL())
	ns := uniqueNS(t)
	ctx := ctxT(t, 60*time.Second)
	const n = 300
	var reconnected atomic.Int64
	sessions := make([]*maxine.Session, n)
	for i := range sessions {
		s, err := maxine.NewSession(c,
			maxine.WithSessionBackoff(maxine.Backoff{Base: time.Millisecond, Max: 5 * time.Millisecond}),
			maxine.WithSessionEvents(func(ev maxine.SessionEvent) {
				if ev.Kind == maxine.SessionReconnected {
					reconnected.Add(1)
				}
			}))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close(ctx)
		if _, err := s.Register(ctx, &registryv1.Instance{Namespace: ns, Service: "conns", InstanceId: fmt.Sprintf("c-%d", i), Host: "127.0.0.1", Port: 9000}); err != nil {
			t.Fatal(err)
		}
		sessions[i] = s
	}
	if got := proxy.opened(); got > 2 {
		t.Fatalf("%d sessions opened %d connections, want 1 (2 at most)", n, got)
	}
	before := proxy.opened()
	proxy.cut(false)
	eventually(t, 20*time.Second, "every session reconnected", func() bool { return reconnected.Load() >= n })
	if dialed := proxy.opened() - before; dialed > 3 {
		t.Errorf("%d sessions reconnecting together opened %d connections, want 1 (3 at most)", n, dialed)
	}
	if got := len(discoverAll(t, newClient(t, srv.URL), ns, "conns")); got != n {
		t.Errorf("%d instances after the reconnect, want %d", got, n)
	}
}
