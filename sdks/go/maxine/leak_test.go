package maxine_test

import (
	"runtime"
	"testing"
	"time"

	registryv1 "github.com/maxine-registry/maxine/sdks/go/gen/maxine/registry/v1"
	"github.com/maxine-registry/maxine/sdks/go/maxine"
)

// TestCloseLeavesNothingRunning: once a Session, a Watcher and their Client
// are closed, every goroutine they started has returned. It does not run in
// parallel, so the goroutine count is this test's alone.
func TestCloseLeavesNothingRunning(t *testing.T) {
	baseline := runtime.NumGoroutine()
	c, err := maxine.NewClient(serverURL())
	if err != nil {
		t.Fatal(err)
	}
	ns := uniqueNS(t)
	ctx := ctxT(t, 20*time.Second)
	s, err := maxine.NewSession(c)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Register(ctx, &registryv1.Instance{Namespace: ns, Service: "leak", Host: "127.0.0.1", Port: 1}); err != nil {
		t.Fatal(err)
	}
	w, err := c.Watch(ctx, maxine.WithNamespace(ns), maxine.WithServices("leak"))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	if runtime.NumGoroutine() <= baseline {
		t.Fatal("no goroutine running while a session and a watcher are open: the check below would prove nothing")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
	eventually(t, 5*time.Second, "the goroutines to return", func() bool { return runtime.NumGoroutine() <= baseline })
}
