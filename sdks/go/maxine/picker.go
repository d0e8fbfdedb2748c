package maxine

import (
	"errors"
	"math/rand/v2"
	"sync/atomic"

	registryv1 "github.com/maxine-registry/maxine/sdks/go/gen/maxine/registry/v1"
)

// ErrNoInstance is returned by Pick when the service has no SERVING
// instance in the view.
var ErrNoInstance = errors.New("maxine: no SERVING instance")

// candidates are one service's SERVING instances in instance_id order, with
// the hash ring built on first use; rebuilt when the service changes.
type candidates struct {
	version uint64
	list    []*registryv1.Instance
	ids     []string
	ring    atomic.Pointer[HashRing]
	next    atomic.Uint64 // round-robin counter
}

func newCandidates(version uint64, sorted []*registryv1.Instance, prev *candidates) *candidates {
	c := &candidates{version: version}
	for _, inst := range sorted {
		if inst.GetStatus() == registryv1.ServingStatus_SERVING_STATUS_SERVING {
			c.list = append(c.list, inst)
			c.ids = append(c.ids, inst.GetInstanceId())
		}
	}
	if prev != nil {
		c.next.Store(prev.next.Load())
		// A change that left the SERVING set as it was (metadata, say) keeps the ring.
		if same(prev.ids, c.ids) {
			c.ring.Store(prev.ring.Load())
		}
	}
	return c
}

func same(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// pick chooses among c with strategy, using the same algorithms and order
// as the server's Discover.
func (c *candidates) pick(strategy registryv1.Strategy, hashKey string, r *rand.Rand) (*registryv1.Instance, error) {
	switch strategy {
	case registryv1.Strategy_STRATEGY_CONSISTENT_HASH, registryv1.Strategy_STRATEGY_RENDEZVOUS:
		if hashKey == "" {
			return nil, invalid("hashKey", "is required by %s", strategy)
		}
	case registryv1.Strategy_STRATEGY_LEAST_LOADED:
		return nil, invalid("strategy", "LEAST_LOADED needs the loads only the server knows; call Discover instead")
	case registryv1.Strategy_STRATEGY_UNSPECIFIED, registryv1.Strategy_STRATEGY_ROUND_ROBIN,
		registryv1.Strategy_STRATEGY_RANDOM, registryv1.Strategy_STRATEGY_WEIGHTED:
	default:
		return nil, invalid("strategy", "unknown strategy %d", int32(strategy))
	}
	n := len(c.list)
	if n == 0 {
		return nil, ErrNoInstance
	}
	switch strategy {
	case registryv1.Strategy_STRATEGY_RANDOM:
		return c.list[randN(r, n)], nil
	case registryv1.Strategy_STRATEGY_WEIGHTED:
		return c.list[pickWeighted(n, func(i int) uint32 { return c.list[i].GetWeight() }, r)], nil
	case registryv1.Strategy_STRATEGY_CONSISTENT_HASH:
		ring := c.ring.Load()
		if ring == nil {
			ring = NewHashRing(c.ids)
			c.ring.Store(ring)
		}
		return c.list[ring.Lookup(hashKey)], nil
	case registryv1.Strategy_STRATEGY_RENDEZVOUS:
		return c.list[Rendezvous(c.ids, hashKey)], nil
	default:
		i := c.next.Add(1) - 1
		return c.list[i%uint64(n)], nil
	}
}

func randN(r *rand.Rand, n int) int {
	if r == nil {
		return rand.IntN(n)
	}
	return r.IntN(n)
}
