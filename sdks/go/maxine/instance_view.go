package maxine

import (
	"sort"

	"google.golang.org/protobuf/proto"

	registryv1 "github.com/maxine-registry/maxine/sdks/go/gen/maxine/registry/v1"
)

// ChangeType is how one instance of a Watcher's view changed.
type ChangeType int

const (
	// ChangeAdded: the instance is new to the view.
	ChangeAdded ChangeType = iota + 1
	// ChangeUpdated: an instance of the view changed.
	ChangeUpdated
	// ChangeRemoved: the instance left the view.
	ChangeRemoved
)

// String returns "added", "updated" or "removed".
func (t ChangeType) String() string {
	switch t {
	case ChangeAdded:
		return "added"
	case ChangeUpdated:
		return "updated"
	case ChangeRemoved:
		return "removed"
	}
	return "unknown"
}

// Change is one change of a Watcher's view, from a watch event or from a
// snapshot that replaced the view (after a reset). The instances are shared
// with the view: read them, do not modify them.
type Change struct {
	// Type is the kind of change.
	Type ChangeType
	// Instance is the instance after the change; for ChangeRemoved, its last state.
	Instance *registryv1.Instance
	// Previous is what the view held before (updated and removed), else nil.
	Previous *registryv1.Instance
	// Revision is the event's revision, or the snapshot's for changes a snapshot revealed.
	Revision uint64
	// RemovalReason says why a removed instance went; UNSPECIFIED when a snapshot no longer held it.
	RemovalReason registryv1.RemovalReason
}

// SyncInfo describes a snapshot that a Watcher's view now equals.
type SyncInfo struct {
	// Revision is the revision the snapshot was taken at.
	Revision uint64
	// RegistryID names the registry the revision belongs to.
	RegistryID string
	// Reset is set when the snapshot replaced state the view may have held.
	Reset bool
	// Reason says why a reset snapshot was sent.
	Reason registryv1.ResetReason
}

// instanceView is the state machine behind a Watcher, with no I/O and no
// locking: it collects snapshot chunks and at snapshot_end replaces its
// content with them, reporting the differences as changes; it applies events
// in revision order; and it tracks the revision and registry_id to resume
// from.
type instanceView struct {
	services   map[string]map[string]*registryv1.Instance
	versions   map[string]uint64
	digests    map[*registryv1.Instance]uint64 // content digests of held instances, computed once each
	pending    []*registryv1.Instance
	removed    []*registryv1.InstanceKey
	inSnapshot bool
	revision   uint64
	registryID string
	synced     bool
}

func newInstanceView() *instanceView {
	return &instanceView{services: map[string]map[string]*registryv1.Instance{}, versions: map[string]uint64{}, digests: map[*registryv1.Instance]uint64{}}
}

// MaxHeldInstances and MaxHeldBytes bound the holdings a Watcher names on a
// resume (WatchServicesRequest.held): the server's default limit
// (MAXINE_WATCH_MAX_HELD) and well under its default message size (4 MiB).
// A view holding more names nothing and gets a whole snapshot.
const (
	MaxHeldInstances = 100_000
	MaxHeldBytes     = 3 << 20
)

// holdings names every instance of the view with its content digest, for a
// resume; nil when the view is empty or too large (see MaxHeldInstances).
func (v *instanceView) holdings() *registryv1.WatchHoldings {
	count, bytes := 0, 0
	for service, m := range v.services {
		count += len(m)
		bytes += len(service) + 4
		for id := range m {
			bytes += len(id) + 13
		}
	}
	if count == 0 || count > MaxHeldInstances || bytes > MaxHeldBytes {
		return nil
	}
	held := &registryv1.WatchHoldings{Services: make([]*registryv1.HeldService, 0, len(v.services))}
	for service, m := range v.services {
		hs := &registryv1.HeldService{Service: service, Instances: make([]*registryv1.HeldInstance, 0, len(m))}
		for id, inst := range m {
			d, ok := v.digests[inst]
			if !ok {
				d = InstanceDigest(inst)
				v.digests[inst] = d
			}
			hs.Instances = append(hs.Instances, &registryv1.HeldInstance{InstanceId: id, Digest: d})
		}
		held.Services = append(held.Services, hs)
	}
	return held
}

// sorted returns one service's instances in instance_id order.
func (v *instanceView) sorted(service string) []*registryv1.Instance {
	m := v.services[service]
	list := make([]*registryv1.Instance, 0, len(m))
	for _, inst := range m {
		list = append(list, inst)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].GetInstanceId() < list[j].GetInstanceId() })
	return list
}

func (v *instanceView) serviceNames() []string {
	names := make([]string, 0, len(v.services))
	for s := range v.services {
		names = append(names, s)
	}
	sort.Strings(names)
	return names
}

func (v *instanceView) abandonSnapshot() {
	v.pending, v.removed, v.inSnapshot = nil, nil, false
}

// apply folds one message of a watch stream into the view.
func (v *instanceView) apply(msg *registryv1.WatchServicesResponse) ([]Change, *SyncInfo) {
	switch m := msg.GetMessage().(type) {
	case *registryv1.WatchServicesResponse_Snapshot:
		v.inSnapshot = true
		v.pending = append(v.pending, m.Snapshot.GetInstances()...)
		v.removed = append(v.removed, m.Snapshot.GetRemoved()...)
	case *registryv1.WatchServicesResponse_SnapshotEnd:
		end := m.SnapshotEnd
		var changes []Change
		if end.GetDifferential() {
			changes = v.patch(v.pending, v.removed, end.GetRevision())
		} else {
			changes = v.replace(v.pending, end.GetRevision())
		}
		v.abandonSnapshot()
		v.revision, v.registryID, v.synced = end.GetRevision(), end.GetRegistryId(), true
		return changes, &SyncInfo{Revision: end.GetRevision(), RegistryID: end.GetRegistryId(), Reset: end.GetReset_(), Reason: end.GetReason()}
	case *registryv1.WatchServicesResponse_Event:
		return v.event(m.Event), nil
	case *registryv1.WatchServicesResponse_Progress:
		if p := m.Progress; p.GetRevision() > v.revision {
			v.revision = p.GetRevision()
		}
		if id := m.Progress.GetRegistryId(); id != "" {
			v.registryID = id
		}
	}
	return nil, nil // a message kind newer than this SDK
}

func (v *instanceView) event(e *registryv1.WatchEvent) []Change {
	inst := e.GetInstance()
	if inst == nil || (v.synced && e.GetRevision() <= v.revision) {
		return nil
	}
	v.revision = e.GetRevision()
	previous := v.services[inst.GetService()][inst.GetInstanceId()]
	switch e.GetType() {
	case registryv1.EventType_EVENT_TYPE_REMOVED:
		if previous == nil {
			return nil
		}
		v.delete(inst)
		return []Change{{Type: ChangeRemoved, Instance: inst, Previous: previous, Revision: e.GetRevision(), RemovalReason: e.GetRemovalReason()}}
	case registryv1.EventType_EVENT_TYPE_ADDED, registryv1.EventType_EVENT_TYPE_UPDATED:
		v.set(inst)
		t := ChangeUpdated
		if previous == nil {
			t = ChangeAdded
		}
		return []Change{{Type: t, Instance: inst, Previous: previous, Revision: e.GetRevision()}}
	}
	return nil
}

func (v *instanceView) replace(next []*registryv1.Instance, revision uint64) []Change {
	changes := make([]Change, 0, len(next))
	type key struct{ service, id string }
	seen := make(map[key]bool, len(next))
	seenIn := map[string]int{} // per service: instances of the snapshot, each counted once
	for _, inst := range next {
		k := key{inst.GetService(), inst.GetInstanceId()}
		if !seen[k] {
			seen[k] = true
			seenIn[k.service]++
		}
		previous := v.services[inst.GetService()][inst.GetInstanceId()]
		// Revisions first: a different mod_revision is a different message
		// (proto.Equal, by reflection, is most of a reset snapshot's cost).
		if previous != nil && previous.GetModRevision() == inst.GetModRevision() && proto.Equal(previous, inst) {
			continue
		}
		v.set(inst)
		t := ChangeUpdated
		if previous == nil {
			t = ChangeAdded
		}
		changes = append(changes, Change{Type: t, Instance: inst, Previous: previous, Revision: revision})
	}
	for _, service := range v.serviceNames() {
		if len(v.services[service]) == seenIn[service] {
			continue // every instance held is in the snapshot: nothing to remove
		}
		for _, previous := range v.sorted(service) {
			if seen[key{service, previous.GetInstanceId()}] {
				continue
			}
			v.delete(previous)
			changes = append(changes, Change{Type: ChangeRemoved, Instance: previous, Previous: previous, Revision: revision})
		}
	}
	return changes
}

// patch applies a differential snapshot: the view named its holdings when
// the stream opened and has not changed since, so it drops the removed
// instances and takes the sent ones (added, or replacing their copies).
func (v *instanceView) patch(sent []*registryv1.Instance, removed []*registryv1.InstanceKey, revision uint64) []Change {
	changes := make([]Change, 0, len(sent)+len(removed))
	for _, k := range removed {
		previous := v.services[k.GetService()][k.GetInstanceId()]
		if previous == nil {
			continue
		}
		v.delete(previous)
		changes = append(changes, Change{Type: ChangeRemoved, Instance: previous, Previous: previous, Revision: revision})
	}
	for _, inst := range sent {
		previous := v.services[inst.GetService()][inst.GetInstanceId()]
		if previous != nil && previous.GetModRevision() == inst.GetModRevision() && proto.Equal(previous, inst) {
			continue
		}
		v.set(inst)
		t := ChangeUpdated
		if previous == nil {
			t = ChangeAdded
		}
		changes = append(changes, Change{Type: t, Instance: inst, Previous: previous, Revision: revision})
	}
	return changes
}

func (v *instanceView) set(inst *registryv1.Instance) {
	m := v.services[inst.GetService()]
	if m == nil {
		m = map[string]*registryv1.Instance{}
		v.services[inst.GetService()] = m
	}
	if old := m[inst.GetInstanceId()]; old != nil {
		delete(v.digests, old)
	}
	m[inst.GetInstanceId()] = inst
	v.versions[inst.GetService()]++
}

func (v *instanceView) delete(inst *registryv1.Instance) {
	m := v.services[inst.GetService()]
	if m == nil {
		return
	}
	if old := m[inst.GetInstanceId()]; old != nil {
		delete(v.digests, old)
	}
	delete(m, inst.GetInstanceId())
	if len(m) == 0 {
		delete(v.services, inst.GetService())
	}
	v.versions[inst.GetService()]++
}
