package maxine

import (
	"math"
	"testing"
	"time"

	registryv1 "github.com/maxine-registry/maxine/sdks/go/gen/maxine/registry/v1"
)

// The view's state machine, with no I/O: snapshots, events, resets.

func inst(id string, zone string) *registryv1.Instance {
	return &registryv1.Instance{Service: "s", InstanceId: id, Host: "h", Port: 1, Zone: zone, Status: registryv1.ServingStatus_SERVING_STATUS_SERVING}
}

func snapshot(insts ...*registryv1.Instance) *registryv1.WatchServicesResponse {
	return &registryv1.WatchServicesResponse{Message: &registryv1.WatchServicesResponse_Snapshot{Snapshot: &registryv1.SnapshotChunk{Instances: insts}}}
}

func snapshotEnd(rev uint64, id string, reset bool) *registryv1.WatchServicesResponse {
	return &registryv1.WatchServicesResponse{Message: &registryv1.WatchServicesResponse_SnapshotEnd{SnapshotEnd: &registryv1.SnapshotEnd{Revision: rev, RegistryId: id, Reset_: reset}}}
}

func event(t registryv1.EventType, i *registryv1.Instance, rev uint64) *registryv1.WatchServicesResponse {
	return &registryv1.WatchServicesResponse{Message: &registryv1.WatchServicesResponse_Event{Event: &registryv1.WatchEvent{Type: t, Instance: i, Revision: rev}}}
}

func kinds(changes []Change) string {
	s := ""
	for _, c := range changes {
		s += c.Type.String()[:1] + c.Instance.GetInstanceId() + " "
	}
	return s
}

func TestInstanceView(t *testing.T) {
	v := newInstanceView()
	if ch, _ := v.apply(snapshot(inst("a", ""), inst("b", ""))); len(ch) != 0 {
		t.Fatalf("a chunk changed the view before snapshot_end: %v", kinds(ch))
	}
	ch, sync := v.apply(snapshotEnd(5, "r1", false))
	if kinds(ch) != "aa ab " || sync == nil || sync.Revision != 5 || v.revision != 5 || v.registryID != "r1" {
		t.Fatalf("first snapshot: %q %+v", kinds(ch), sync)
	}
	if ch, _ := v.apply(event(registryv1.EventType_EVENT_TYPE_ADDED, inst("c", ""), 5)); len(ch) != 0 {
		t.Fatal("an event at the snapshot's revision was applied again")
	}
	if ch, _ := v.apply(event(registryv1.EventType_EVENT_TYPE_UPDATED, inst("a", "z"), 6)); kinds(ch) != "ua " || ch[0].Previous.GetZone() != "" {
		t.Fatalf("update: %q", kinds(ch))
	}
	if ch, _ := v.apply(event(registryv1.EventType_EVENT_TYPE_REMOVED, inst("b", ""), 7)); kinds(ch) != "rb " || v.revision != 7 {
		t.Fatalf("remove: %q", kinds(ch))
	}
	// A reset snapshot: a unchanged, c new, b already gone; the view now
	// holds a and c, reported as the one change it implies.
	v.apply(snapshot(inst("a", "z"), inst("c", "")))
	ch, sync = v.apply(snapshotEnd(3, "r2", true))
	if kinds(ch) != "ac " || !sync.Reset || v.revision != 3 || v.registryID != "r2" {
		t.Fatalf("reset: %q %+v", kinds(ch), sync)
	}
	// A broken stream's partial snapshot is dropped.
	v.apply(snapshot(inst("x", "")))
	v.abandonSnapshot()
	v.apply(snapshot(inst("a", "z")))
	ch, _ = v.apply(snapshotEnd(4, "r2", true))
	if kinds(ch) != "rc " || len(v.sorted("s")) != 1 {
		t.Fatalf("after an abandoned snapshot: %q", kinds(ch))
	}
	v.apply(&registryv1.WatchServicesResponse{Message: &registryv1.WatchServicesResponse_Progress{Progress: &registryv1.Progress{Revision: 9, RegistryId: "r2"}}})
	if v.revision != 9 {
		t.Fatalf("progress: revision %d, want 9", v.revision)
	}
	// Two services: a reset that removes from one only, with an instance
	// listed twice, removes exactly what it lacks.
	other := func(id string) *registryv1.Instance {
		return &registryv1.Instance{Service: "t", InstanceId: id, Host: "h", Port: 1}
	}
	v.apply(snapshot(inst("a", "z"), other("x"), other("y")))
	v.apply(snapshotEnd(10, "r2", true))
	v.apply(snapshot(inst("a", "z"), inst("a", "z"), other("y")))
	if ch, _ := v.apply(snapshotEnd(11, "r2", true)); kinds(ch) != "rx " || len(v.sorted("s")) != 1 || len(v.sorted("t")) != 1 {
		t.Fatalf("reset over two services: %q", kinds(ch))
	}
}

func TestBackoffDelay(t *testing.T) {
	b := DefaultBackoff
	for attempt := range 70 {
		limit := b.Max
		if f := float64(b.Base) * math.Pow(2, float64(attempt)); f < float64(b.Max) {
			limit = time.Duration(f)
		}
		for range 20 {
			if d := b.Delay(attempt, nil); d < 0 || d >= limit {
				t.Fatalf("attempt %d: delay %v outside [0, %v)", attempt, d, limit)
			}
		}
	}
}

func TestBeatDelay(t *testing.T) {
	const interval = 300 * time.Millisecond
	lo, hi := interval, time.Duration(0)
	for range 1000 {
		d := beatDelay(interval, nil)
		if d < 270*time.Millisecond || d >= 330*time.Millisecond {
			t.Fatalf("beat delay %v outside [270ms, 330ms)", d)
		}
		lo, hi = min(lo, d), max(hi, d)
	}
	if lo > 280*time.Millisecond || hi < 320*time.Millisecond {
		t.Fatalf("1000 beat delays spread only over [%v, %v]: not jittered", lo, hi)
	}
	if d := beatDelay(0, nil); d != 0 {
		t.Fatalf("beatDelay(0) = %v", d)
	}
}
