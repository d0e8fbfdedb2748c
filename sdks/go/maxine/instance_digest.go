package maxine

import (
	"crypto/sha256"
	"encoding/binary"
	"sort"
	"strconv"

	registryv1 "github.com/maxine-registry/maxine/sdks/go/gen/maxine/registry/v1"
)

// InstanceDigest is the content digest of an instance, as defined on
// WatchHoldings in registry.proto: the first 8 bytes (big-endian) of the
// SHA-256 of the fields a client acts on, each length-prefixed; the times
// and revisions a registry sets are left out. A Watcher names what it holds
// with it when it resumes, so that a server that cannot replay sends only
// the differences. testdata/instance-digest.json holds vectors every SDK
// reproduces.
func InstanceDigest(i *registryv1.Instance) uint64 {
	h := sha256.New()
	var n [4]byte
	add := func(s string) {
		binary.BigEndian.PutUint32(n[:], uint32(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	add(i.GetService())
	add(i.GetInstanceId())
	add(i.GetHost())
	add(strconv.FormatUint(uint64(i.GetPort()), 10))
	add(i.GetVersion())
	add(i.GetZone())
	add(strconv.Itoa(len(i.GetTags())))
	for _, t := range i.GetTags() {
		add(t)
	}
	md := i.GetMetadata()
	keys := make([]string, 0, len(md))
	for k := range md {
		keys = append(keys, k)
	}
	sort.Strings(keys) // byte order of the UTF-8 form
	add(strconv.Itoa(len(keys)))
	for _, k := range keys {
		add(k)
		add(md[k])
	}
	add(strconv.FormatUint(uint64(i.GetWeight()), 10))
	add(strconv.FormatInt(int64(i.GetStatus()), 10))
	add(i.GetOwner())
	add(strconv.FormatInt(int64(i.GetOperatorStatus()), 10))
	return binary.BigEndian.Uint64(h.Sum(nil)[:8])
}
