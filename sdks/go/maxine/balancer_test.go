package maxine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"connectrpc.com/connect"

	registryv1 "github.com/maxine-registry/maxine/sdks/go/gen/maxine/registry/v1"
	"github.com/maxine-registry/maxine/sdks/go/maxine"
)

// hashVectors is testdata/hash-vectors.json, shared by every language.
type hashVectors struct {
	Fmix32 []struct{ Input, Output uint32 } `json:"fmix32"`
	Hash32 []struct {
		Input   string `json:"input"`
		FNV1a32 uint32 `json:"fnv1a32"`
		Hash32  uint32 `json:"hash32"`
	} `json:"hash32"`
	ConsistentHash []pickVectors `json:"consistent_hash"`
	Rendezvous     []pickVectors `json:"rendezvous"`
}

type pickVectors struct {
	Instances []string `json:"instances"`
	Picks     []struct {
		Key      string `json:"key"`
		Instance string `json:"instance"`
	} `json:"picks"`
}

func loadVectors(t *testing.T) hashVectors {
	t.Helper()
	path := filepath.Join("..", "..", "..", "testdata", "hash-vectors.json")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("the shared vectors: %v", err)
	}
	var v hashVectors
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(v.Fmix32) == 0 || len(v.Hash32) == 0 || len(v.ConsistentHash) == 0 || len(v.Rendezvous) == 0 {
		t.Fatalf("%s: a vector list is empty", path)
	}
	return v
}

func TestHashVectors(t *testing.T) {
	t.Parallel()
	v := loadVectors(t)
	for _, c := range v.Fmix32 {
		if got := maxine.Fmix32(c.Input); got != c.Output {
			t.Errorf("Fmix32(%d) = %d, want %d", c.Input, got, c.Output)
		}
	}
	for _, c := range v.Hash32 {
		if got := maxine.FNV1a32(c.Input); got != c.FNV1a32 {
			t.Errorf("FNV1a32(%q) = %d, want %d", c.Input, got, c.FNV1a32)
		}
		if got := maxine.Hash32(c.Input); got != c.Hash32 {
			t.Errorf("Hash32(%q) = %d, want %d", c.Input, got, c.Hash32)
		}
	}
	picks := 0
	for _, set := range v.ConsistentHash {
		ring := maxine.NewHashRing(set.Instances)
		for _, p := range set.Picks {
			picks++
			if got := set.Instances[ring.Lookup(p.Key)]; got != p.Instance {
				t.Errorf("ring of %d: key %q -> %s, want %s", len(set.Instances), p.Key, got, p.Instance)
			}
		}
	}
	for _, set := range v.Rendezvous {
		for _, p := range set.Picks {
			picks++
			if got := set.Instances[maxine.Rendezvous(set.Instances, p.Key)]; got != p.Instance {
				t.Errorf("rendezvous of %d: key %q -> %s, want %s", len(set.Instances), p.Key, got, p.Instance)
			}
		}
	}
	if picks == 0 {
		t.Fatal("no pick vectors")
	}
	if maxine.NewHashRing(nil).Lookup("k") != -1 || maxine.Rendezvous(nil, "k") != -1 {
		t.Error("an empty set must give -1")
	}
}

// TestPickAgreesWithDiscover: the watcher's local pick and the server's
// Discover choose the same instance for the same key.
func TestPickAgreesWithDiscover(t *testing.T) {
	t.Parallel()
	c := newClient(t, serverURL())
	ns := uniqueNS(t)
	for i := range 7 {
		register(t, c, &registryv1.Instance{Namespace: ns, Service: "cart", InstanceId: fmt.Sprintf("cart-%d", i), Host: "127.0.0.1", Port: uint32(9400 + i), Weight: uint32(1 + i*10)})
	}
	register(t, c, &registryv1.Instance{Namespace: ns, Service: "cart", InstanceId: "cart-x", Host: "127.0.0.1", Port: 9499, Status: registryv1.ServingStatus_SERVING_STATUS_NOT_SERVING})
	ctx := ctxT(t, 20*time.Second)
	w, err := c.Watch(ctx, maxine.WithNamespace(ns), maxine.WithServices("cart"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	for _, strategy := range []registryv1.Strategy{registryv1.Strategy_STRATEGY_CONSISTENT_HASH, registryv1.Strategy_STRATEGY_RENDEZVOUS} {
		for i := range 50 {
			key := fmt.Sprintf("user-%d", i)
			local, err := w.Pick(strategy, key)
			if err != nil {
				t.Fatal(err)
			}
			res, err := c.RPC.Discover(ctx, connect.NewRequest(&registryv1.DiscoverRequest{Namespace: ns, Service: "cart", Strategy: strategy, HashKey: key}))
			if err != nil {
				t.Fatal(err)
			}
			if local.GetInstanceId() != res.Msg.GetInstance().GetInstanceId() {
				t.Fatalf("%s key %q: Pick %s, Discover %s", strategy, key, local.GetInstanceId(), res.Msg.GetInstance().GetInstanceId())
			}
		}
	}
	// Round robin visits the SERVING instances in instance_id order.
	first, _ := w.Pick(registryv1.Strategy_STRATEGY_ROUND_ROBIN, "")
	seen := map[string]int{}
	for range 14 {
		inst, err := w.Pick(registryv1.Strategy_STRATEGY_ROUND_ROBIN, "")
		if err != nil {
			t.Fatal(err)
		}
		seen[inst.GetInstanceId()]++
	}
	if len(seen) != 7 || seen["cart-x"] != 0 || first == nil {
		t.Fatalf("round robin over 14 picks: %v, want each SERVING instance twice", seen)
	}
	for id, n := range seen {
		if n != 2 {
			t.Fatalf("round robin picked %s %d times in 14, want 2", id, n)
		}
	}
	for _, s := range []registryv1.Strategy{registryv1.Strategy_STRATEGY_RANDOM, registryv1.Strategy_STRATEGY_WEIGHTED} {
		inst, err := w.Pick(s, "")
		if err != nil || inst.GetStatus() != registryv1.ServingStatus_SERVING_STATUS_SERVING {
			t.Fatalf("%s: %v, %v", s, inst, err)
		}
	}
	if _, err := w.Pick(registryv1.Strategy_STRATEGY_CONSISTENT_HASH, ""); err == nil {
		t.Fatal("CONSISTENT_HASH without a key was accepted")
	}
	if _, err := w.PickFrom("nothing-here", registryv1.Strategy_STRATEGY_ROUND_ROBIN, ""); err != maxine.ErrNoInstance {
		t.Fatalf("pick from an empty service: %v, want ErrNoInstance", err)
	}
}

// BenchmarkPick measures a local pick from a live watcher of 20 instances:
// with outlier ejection off, on (the default) with nothing ejected, and on
// with one instance ejected (the pick narrows the candidates).
func BenchmarkPick(b *testing.B) {
	c := newClient(b, serverURL())
	ns := uniqueNS(b)
	for i := range 20 {
		register(b, c, &registryv1.Instance{Namespace: ns, Service: "bench", InstanceId: fmt.Sprintf("bench-%02d", i), Host: "127.0.0.1", Port: uint32(9500 + i)})
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	modes := []struct {
		name string
		opt  maxine.WatchOption
	}{
		{"no-ejection", maxine.WithoutEjection()},
		{"ejection", maxine.WithEjection(maxine.EjectionConfig{})},
		{"one-ejected", maxine.WithEjection(maxine.EjectionConfig{ConsecutiveFailures: 1, BaseEjectionTime: time.Hour})},
	}
	for _, mode := range modes {
		w, err := c.Watch(ctx, maxine.WithNamespace(ns), maxine.WithServices("bench"), mode.opt)
		if err != nil {
			b.Fatal(err)
		}
		defer w.Close()
		if err := w.Ready(ctx); err != nil {
			b.Fatal(err)
		}
		if mode.name == "one-ejected" {
			w.Report("bench", "bench-03", false)
			if w.EjectionStats("bench").Ejected != 1 {
				b.Fatal("bench-03 was not ejected")
			}
		}
		for _, s := range []registryv1.Strategy{
			registryv1.Strategy_STRATEGY_ROUND_ROBIN, registryv1.Strategy_STRATEGY_RANDOM, registryv1.Strategy_STRATEGY_WEIGHTED,
			registryv1.Strategy_STRATEGY_CONSISTENT_HASH, registryv1.Strategy_STRATEGY_RENDEZVOUS,
		} {
			b.Run(mode.name+"/"+s.String(), func(b *testing.B) {
				keys := make([]string, 1024)
				for i := range keys {
					keys[i] = fmt.Sprintf("user-%d", i)
				}
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					if _, err := w.Pick(s, keys[i&1023]); err != nil {
						b.Fatal(err)
					}
					i++
				}
			})
		}
	}
}
