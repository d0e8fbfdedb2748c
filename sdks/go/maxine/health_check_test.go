package maxine_test

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	registryv1 "github.com/maxine-registry/maxine/sdks/go/gen/maxine/registry/v1"
	"github.com/maxine-registry/maxine/sdks/go/maxine"
)

// TestActiveCheckVisibleInWatcher: an instance registered with an HTTP
// check (issue 20) shows the check's result in the Go SDK's Watcher, from
// the generated types: PENDING, then PASSING with the probe's message, then
// FAILING with the 503 once the target (httptest on 127.0.0.1) fails,
// NOT_SERVING and never picked.
func TestActiveCheckVisibleInWatcher(t *testing.T) {
	t.Parallel()
	ns := uniqueNS(t)
	var status atomic.Int32
	status.Store(http.StatusOK)
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(int(status.Load()))
	}))
	defer target.Close()
	port, err := strconv.Atoi(target.URL[strings.LastIndex(target.URL, ":")+1:])
	if err != nil {
		t.Fatal(err)
	}
	client := newClient(t, serverURL())
	ctx := ctxT(t, 20*time.Second)
	check := &registryv1.HealthCheck{
		Http:               &registryv1.HttpCheck{Path: "/healthz"},
		Interval:           durationpb.New(time.Second),
		Timeout:            durationpb.New(500 * time.Millisecond),
		UnhealthyThreshold: 1,
	}
	reg, err := client.RPC.Register(ctx, connect.NewRequest(&registryv1.RegisterRequest{Instance: &registryv1.Instance{
		Namespace: ns, Service: "checked", InstanceId: "c-1", Host: "127.0.0.1", Port: uint32(port), HealthCheck: check,
	}}))
	if err != nil {
		t.Fatal(err)
	}
	if got := reg.Msg.GetInstance().GetCheckResult().GetStatus(); got != registryv1.CheckStatus_CHECK_STATUS_PENDING {
		t.Fatalf("registered with check status %v, want PENDING", got)
	}
	if reg.Msg.GetLeaseExpiresAt() != nil {
		t.Fatalf("an instance with a check has no lease, got lease_expires_at %v", reg.Msg.GetLeaseExpiresAt())
	}
	w, err := client.Watch(ctx, maxine.WithNamespace(ns), maxine.WithServices("checked"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	waitFor := func(what string, ok func(*registryv1.Instance) bool) *registryv1.Instance {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for {
			if inst := w.Get("checked", "c-1"); inst != nil && ok(inst) {
				return inst
			}
			select {
			case <-w.Updates():
			case <-deadline:
				t.Fatalf("timed out waiting for %s; have %v", what, w.Get("checked", "c-1"))
			}
		}
	}
	passing := waitFor("PASSING", func(i *registryv1.Instance) bool {
		return i.GetCheckResult().GetStatus() == registryv1.CheckStatus_CHECK_STATUS_PASSING
	})
	if passing.GetCheckResult().GetMessage() != "HTTP 200 from /healthz" || passing.GetStatus() != registryv1.ServingStatus_SERVING_STATUS_SERVING {
		t.Fatalf("passing instance = %v", passing)
	}
	if inst, err := w.Pick(registryv1.Strategy_STRATEGY_ROUND_ROBIN, ""); err != nil || inst.GetInstanceId() != "c-1" {
		t.Fatalf("Pick = %v, %v", inst, err)
	}
	status.Store(http.StatusServiceUnavailable)
	failing := waitFor("FAILING", func(i *registryv1.Instance) bool {
		return i.GetCheckResult().GetStatus() == registryv1.CheckStatus_CHECK_STATUS_FAILING
	})
	if failing.GetCheckResult().GetMessage() != "HTTP 503 from /healthz" || failing.GetStatus() != registryv1.ServingStatus_SERVING_STATUS_NOT_SERVING {
		t.Fatalf("failing instance = %v", failing)
	}
	if inst, err := w.Pick(registryv1.Strategy_STRATEGY_ROUND_ROBIN, ""); err == nil {
		t.Fatalf("Pick chose %v, a failing instance", inst)
	}
}
