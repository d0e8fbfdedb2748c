package maxine

import (
	"errors"
	"math/rand/v2"
	"strings"
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
	// for candidates narrowed by ejection: the full set's counter, and
	// where the ring over the allowed ids is kept
	rr        *atomic.Uint64
	ejectRing *atomic.Pointer[keyedRing]
	ringKey   string
	kept      atomic.Pointer[keyedRing]
	// narrow is these candidates as ejection narrowed them at generation
	// narrowGen of the service's ejector (read and written under Watcher.mu)
	narrow    *candidates
	narrowGen uint64
}

// allowedBy returns c as ej allows it now, reusing the last narrowing
// while ej's generation holds; ej is up to date (advanced).
func (c *candidates) allowedBy(ej *outlierEjector) *candidates {
	if ej.notHealthy == 0 {
		return c
	}
	if c.narrow != nil && c.narrowGen == ej.gen {
		return c.narrow
	}
	n := c
	if allowed := ej.allowed(c.ids); len(allowed) < len(c.ids) {
		n = c.narrowed(allowed)
	}
	c.narrow, c.narrowGen = n, ej.gen
	return n
}

// keyedRing is a hash ring over a subset of the candidates, named by its ids.
type keyedRing struct {
	key  string
	ring *HashRing
}

// narrowed returns the candidates whose ids are in allowed (a subsequence
// of c.ids), sharing c's round-robin counter and keeping their hash ring
// in c while the allowed set holds.
func (c *candidates) narrowed(allowed []string) *candidates {
	n := &candidates{version: c.version, rr: &c.next, ejectRing: &c.kept, ringKey: strings.Join(allowed, "\x00")}
	j := 0
	for i, id := range c.ids {
		if j < len(allowed) && allowed[j] == id {
			n.list = append(n.list, c.list[i])
			n.ids = append(n.ids, id)
			j++
		}
	}
	if k := c.kept.Load(); k != nil && k.key == n.ringKey {
		n.ring.Store(k.ring)
	}
	return n
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
			if c.ejectRing != nil {
				c.ejectRing.Store(&keyedRing{key: c.ringKey, ring: ring})
			}
		}
		return c.list[ring.Lookup(hashKey)], nil
	case registryv1.Strategy_STRATEGY_RENDEZVOUS:
		return c.list[Rendezvous(c.ids, hashKey)], nil
	default:
		next := &c.next
		if c.rr != nil {
			next = c.rr
		}
		i := next.Add(1) - 1
		return c.list[i%uint64(n)], nil
	}
}

func randN(r *rand.Rand, n int) int {
	if r == nil {
		return rand.IntN(n)
	}
	return r.IntN(n)
}
