package maxine

import (
	"math/rand/v2"
	"sort"
	"strconv"
)

// Load-balancing algorithms shared with the server's Discover and the other
// SDKs, specified in docs/hashing.md and tested against
// testdata/hash-vectors.json, so that every side picks the same instance for
// the same key and instance set.

// RingPoints is the number of points each instance owns on a HashRing.
const RingPoints = 160

// FNV1a32 is the 32-bit FNV-1a hash of the UTF-8 bytes of s, the first step
// of Hash32.
func FNV1a32(s string) uint32 { return fnvUpdate(0x811c9dc5, s) }

// Fmix32 is MurmurHash3's 32-bit finaliser.
func Fmix32(h uint32) uint32 {
	h ^= h >> 16
	h *= 0x85ebca6b
	h ^= h >> 13
	h *= 0xc2b2ae35
	h ^= h >> 16
	return h
}

// Hash32 is Fmix32(FNV1a32(s)): FNV-1a alone spreads similar strings
// ("pod-1#0", "pod-1#1") poorly, and the finaliser fixes that.
func Hash32(s string) uint32 { return Fmix32(FNV1a32(s)) }

// HashRing is a consistent-hash ring over instance ids: each id owns
// RingPoints points at Hash32(id + "#" + i), and a key goes to the owner of
// the first point at or after Hash32(key), wrapping around. Build it once
// per instance set; Lookup is a binary search and safe for concurrent use.
type HashRing struct {
	points []uint32
	owners []int32
}

// NewHashRing builds the ring of ids (ids are instance_ids; their order
// only matters for the indexes Lookup returns).
func NewHashRing(ids []string) *HashRing {
	type entry struct {
		point uint32
		index int32
	}
	entries := make([]entry, 0, len(ids)*RingPoints)
	for index, id := range ids {
		buf := make([]byte, 0, len(id)+4)
		for i := 0; i < RingPoints; i++ {
			buf = append(append(append(buf[:0], id...), '#'), strconv.Itoa(i)...)
			entries = append(entries, entry{Hash32(string(buf)), int32(index)})
		}
	}
	sort.Slice(entries, func(a, b int) bool {
		ea, eb := entries[a], entries[b]
		if ea.point != eb.point {
			return ea.point < eb.point
		}
		return ids[ea.index] < ids[eb.index]
	})
	r := &HashRing{points: make([]uint32, len(entries)), owners: make([]int32, len(entries))}
	for i, e := range entries {
		r.points[i], r.owners[i] = e.point, e.index
	}
	return r
}

// Lookup returns the index (into the ids the ring was built from) that owns
// key, or -1 when the ring is empty.
func (r *HashRing) Lookup(key string) int {
	n := len(r.points)
	if n == 0 {
		return -1
	}
	k := Hash32(key)
	lo, hi := 0, n
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if r.points[mid] < k {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo == n {
		lo = 0
	}
	return int(r.owners[lo])
}

// Rendezvous returns the index of the id with the highest
// Hash32(key + "#" + id) (ties go to the greater id), or -1 for no ids.
func Rendezvous(ids []string, key string) int {
	best, bestScore := -1, int64(-1)
	prefix := (fnvUpdate(0x811c9dc5, key) ^ '#') * 0x01000193 // FNV-1a of key + "#", shared by every id
	for i, id := range ids {
		score := int64(Fmix32(fnvUpdate(prefix, id)))
		if score > bestScore || (score == bestScore && id > ids[best]) {
			best, bestScore = i, score
		}
	}
	return best
}

func fnvUpdate(h uint32, s string) uint32 {
	for i := 0; i < len(s); i++ {
		h = (h ^ uint32(s[i])) * 0x01000193
	}
	return h
}

// pickWeighted picks an index at random in proportion to weights (weights
// below 1 count as 1).
func pickWeighted(n int, weight func(int) uint32, r *rand.Rand) int {
	var total uint64
	for i := 0; i < n; i++ {
		total += uint64(max(1, weight(i)))
	}
	var x uint64
	if r == nil {
		x = rand.Uint64N(total)
	} else {
		x = r.Uint64N(total)
	}
	for i := 0; i < n; i++ {
		w := uint64(max(1, weight(i)))
		if x < w {
			return i
		}
		x -= w
	}
	return n - 1
}
