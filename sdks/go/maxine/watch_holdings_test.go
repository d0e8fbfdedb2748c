package maxine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	registryv1 "github.com/maxine-registry/maxine/sdks/go/gen/maxine/registry/v1"
	"github.com/maxine-registry/maxine/sdks/go/maxine"
)

// TestInstanceDigestVectors reproduces testdata/instance-digest.json, the
// content digests every SDK and the server compute alike.
func TestInstanceDigestVectors(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "..", "testdata", "instance-digest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var vectors struct {
		Instances []struct {
			Instance struct {
				Service, InstanceID, Host, Version, Zone, Owner string
				Port, Weight, Status, OperatorStatus            int
				Tags                                            []string
				Metadata                                        map[string]string
			} `json:"instance"`
			Digest string `json:"digest"`
		} `json:"instances"`
	}
	if err := json.Unmarshal(raw, &vectors); err != nil {
		t.Fatal(err)
	}
	if len(vectors.Instances) < 10 {
		t.Fatalf("only %d vectors", len(vectors.Instances))
	}
	for _, v := range vectors.Instances {
		i := v.Instance
		got := maxine.InstanceDigest(&registryv1.Instance{
			Service: i.Service, InstanceId: i.InstanceID, Host: i.Host, Port: uint32(i.Port), Version: i.Version, Zone: i.Zone,
			Tags: i.Tags, Metadata: i.Metadata, Weight: uint32(i.Weight), Status: registryv1.ServingStatus(i.Status),
			Owner: i.Owner, OperatorStatus: registryv1.OperatorStatus(i.OperatorStatus),
		})
		want, err := strconv.ParseUint(v.Digest, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%+v: digest %d, want %d", i, got, want)
		}
	}
}

// watchTap records the WatchServices requests a client sends and the
// messages it receives.
type watchTap struct {
	mu       sync.Mutex
	requests []*registryv1.WatchServicesRequest
	received []*registryv1.WatchServicesResponse
}

func (tp *watchTap) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc { return next }
func (tp *watchTap) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}
func (tp *watchTap) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		return &tappedConn{StreamingClientConn: next(ctx, spec), tap: tp}
	}
}

type tappedConn struct {
	connect.StreamingClientConn
	tap *watchTap
}

func (c *tappedConn) Send(m any) error {
	if r, ok := m.(*registryv1.WatchServicesRequest); ok {
		c.tap.mu.Lock()
		c.tap.requests = append(c.tap.requests, r)
		c.tap.mu.Unlock()
	}
	return c.StreamingClientConn.Send(m)
}

func (c *tappedConn) Receive(m any) error {
	err := c.StreamingClientConn.Receive(m)
	if r, ok := m.(*registryv1.WatchServicesResponse); ok && err == nil {
		c.tap.mu.Lock()
		c.tap.received = append(c.tap.received, r)
		c.tap.mu.Unlock()
	}
	return err
}

// TestWatcherResumesWithHoldings restarts the registry (a new registry id)
// while a namespace-wide Watcher is cut off: the watcher names what it holds
// on its resume and gets a differential reset of only the differences.
func TestWatcherResumesWithHoldings(t *testing.T) {
	t.Parallel()
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, map[string]string{"MAXINE_PORT": port})
	proxy := newCutProxy(t, "127.0.0.1:"+port)
	tap := &watchTap{}
	viaProxy := newClient(t, proxy.URL(), maxine.WithConnectOptions(connect.WithInterceptors(tap)))
	inst := func(service, id string, port uint32) *registryv1.Instance {
		return &registryv1.Instance{Service: service, InstanceId: id, Host: "127.0.0.1", Port: port, Metadata: map[string]string{"k": id}}
	}
	registerAll := func(c *maxine.Client, list []*registryv1.Instance) {
		for _, i := range list {
			register(t, c, i)
		}
	}
	var before []*registryv1.Instance
	for _, s := range []string{"alpha", "beta"} {
		for i := range 12 {
			before = append(before, inst(s, fmt.Sprintf("i%d", i), 9000))
		}
	}
	registerAll(newClient(t, srv.URL), before)

	var mu sync.Mutex
	var changes []string
	var syncs []maxine.SyncInfo
	ctx := ctxT(t, 30*time.Second)
	w, err := viaProxy.Watch(ctx,
		maxine.WithWatchBackoff(maxine.Backoff{Base: 20 * time.Millisecond, Max: 100 * time.Millisecond}),
		maxine.WithOnChange(func(ch maxine.Change) {
			mu.Lock()
			changes = append(changes, ch.Type.String()+":"+ch.Instance.GetService()+"/"+ch.Instance.GetInstanceId())
			mu.Unlock()
		}),
		maxine.WithOnSync(func(s maxine.SyncInfo) {
			mu.Lock()
			syncs = append(syncs, s)
			mu.Unlock()
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "24 instances in the view", func() bool { return len(w.Instances("")) == 24 })
	oldID := w.RegistryID()

	// the registry restarts on the same port while the watcher is cut off
	proxy.cut(true)
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	srv = startServer(t, map[string]string{"MAXINE_PORT": port})
	direct := newClient(t, srv.URL)
	changed := map[string]bool{"alpha/i0": true, "alpha/i1": true}
	gone := map[string]bool{"beta/i10": true, "beta/i11": true}
	for _, i := range before {
		k := i.GetService() + "/" + i.GetInstanceId()
		if gone[k] {
			continue
		}
		if changed[k] {
			i = inst(i.GetService(), i.GetInstanceId(), 9001)
		}
		register(t, direct, i)
	}
	register(t, direct, inst("gamma", "n1", 9000))
	mu.Lock()
	changes, syncs = nil, nil
	mu.Unlock()
	tap.mu.Lock()
	seen := len(tap.received)
	tap.mu.Unlock()
	proxy.cut(false)
	eventually(t, 10*time.Second, "the reset", func() bool { mu.Lock(); defer mu.Unlock(); return len(syncs) > 0 })

	mu.Lock()
	if !syncs[0].Reset || syncs[0].Reason != registryv1.ResetReason_RESET_REASON_REGISTRY_CHANGED || syncs[0].RegistryID == oldID {
		t.Errorf("sync %+v: want a REGISTRY_CHANGED reset to a new registry", syncs[0])
	}
	sort.Strings(changes)
	want := []string{"added:gamma/n1", "removed:beta/i10", "removed:beta/i11", "updated:alpha/i0", "updated:alpha/i1"}
	if fmt.Sprint(changes) != fmt.Sprint(want) {
		t.Errorf("changes %v, want %v", changes, want)
	}
	mu.Unlock()

	tap.mu.Lock()
	resume := tap.requests[len(tap.requests)-1]
	held := 0
	for _, s := range resume.GetHeld().GetServices() {
		held += len(s.GetInstances())
	}
	if resume.GetRegistryId() != oldID || held != 24 {
		t.Errorf("the resume named registry %q and %d held instances, want %q and 24", resume.GetRegistryId(), held, oldID)
	}
	var sent, removed []string
	differential := false
	for _, m := range tap.received[seen:] {
		for _, i := range m.GetSnapshot().GetInstances() {
			sent = append(sent, i.GetService()+"/"+i.GetInstanceId())
		}
		for _, k := range m.GetSnapshot().GetRemoved() {
			removed = append(removed, k.GetService()+"/"+k.GetInstanceId())
		}
		if e := m.GetSnapshotEnd(); e != nil {
			differential = e.GetDifferential()
			break
		}
	}
	tap.mu.Unlock()
	sort.Strings(sent)
	sort.Strings(removed)
	if !differential || fmt.Sprint(sent) != "[alpha/i0 alpha/i1 gamma/n1]" || fmt.Sprint(removed) != "[beta/i10 beta/i11]" {
		t.Errorf("differential %v, sent %v, removed %v: want only the differences", differential, sent, removed)
	}

	// the view equals the registry in what a client acts on
	server := map[string]uint64{}
	for _, s := range []string{"alpha", "beta", "gamma"} {
		for _, i := range discoverAll(t, direct, "", s) {
			server[i.GetService()+"/"+i.GetInstanceId()] = maxine.InstanceDigest(i)
		}
	}
	view := map[string]uint64{}
	for _, i := range w.Instances("") {
		view[i.GetService()+"/"+i.GetInstanceId()] = maxine.InstanceDigest(i)
	}
	if len(view) != 23 || fmt.Sprint(view) != fmt.Sprint(server) {
		t.Errorf("view %v\nserver %v", view, server)
	}
}
