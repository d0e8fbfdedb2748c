package maxine

import (
	"slices"
	"testing"
	"time"

	registryv1 "github.com/maxine-registry/maxine/sdks/go/gen/maxine/registry/v1"
)

// The Watcher's pick with ejection on, a fake clock and a view fed by hand
// (no stream): every strategy skips what the ejector excludes, consistent
// hashing on a ring of the rest, the trial goes to one pick, and the view's
// changes reach the ejector.

func TestWatcherPickWithEjection(t *testing.T) {
	c, err := NewClient("http://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	now := time.Unix(1000, 0)
	var events []EjectionEvent
	w, err := c.NewWatcher(WithServices("s"), WithClock(func() time.Time { return now }),
		WithEjection(EjectionConfig{ConsecutiveFailures: 2, MaxEjectionPercent: 40}),
		WithOnEjection(func(e EjectionEvent) { events = append(events, e) }))
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{"i0", "i1", "i2", "i3", "i4"}
	var insts []*registryv1.Instance
	for _, id := range ids {
		insts = append(insts, inst(id, ""))
	}
	w.view.apply(snapshot(insts...))
	w.view.apply(snapshotEnd(1, "r", false))

	w.Report("s", "i1", false)
	w.Report("s", "i1", false)
	if len(events) != 1 || events[0].InstanceID != "i1" || events[0].Reason != ReasonConsecutiveFailures || !events[0].At.Equal(now) {
		t.Fatalf("events %+v", events)
	}
	left := []string{"i0", "i2", "i3", "i4"}
	ring := NewHashRing(left)
	for _, key := range []string{"u1", "u2", "u3", "u4", "u5"} {
		got, err := w.Pick(registryv1.Strategy_STRATEGY_CONSISTENT_HASH, key)
		if err != nil || got.GetInstanceId() != left[ring.Lookup(key)] {
			t.Fatalf("CONSISTENT_HASH %s: %v %v, want %s", key, got.GetInstanceId(), err, left[ring.Lookup(key)])
		}
		if got, _ := w.Pick(registryv1.Strategy_STRATEGY_RENDEZVOUS, key); got.GetInstanceId() == "i1" {
			t.Fatal("RENDEZVOUS chose the ejected i1")
		}
	}
	for _, s := range []registryv1.Strategy{registryv1.Strategy_STRATEGY_ROUND_ROBIN, registryv1.Strategy_STRATEGY_RANDOM, registryv1.Strategy_STRATEGY_WEIGHTED} {
		for range 20 {
			if got, _ := w.Pick(s, ""); got.GetInstanceId() == "i1" {
				t.Fatalf("%v chose the ejected i1", s)
			}
		}
	}
	now = now.Add(30 * time.Second)
	var picked []string
	for range 5 {
		got, _ := w.Pick(registryv1.Strategy_STRATEGY_ROUND_ROBIN, "")
		picked = append(picked, got.GetInstanceId())
	}
	if n := len(slices.DeleteFunc(slices.Clone(picked), func(id string) bool { return id != "i1" })); n != 1 {
		t.Fatalf("5 picks after the ejection: %v; want i1 once (its trial)", picked)
	}
	w.Report("s", "i1", true)
	if e := events[len(events)-1]; e.Ejected || e.InstanceID != "i1" {
		t.Fatalf("last event %+v, want i1 restored", e)
	}
	// i3 leaves SERVING: it leaves the ejector, with its ejection
	w.Report("s", "i3", false)
	w.Report("s", "i3", false)
	if s := w.EjectionStats("s"); s.Ejected != 1 {
		t.Fatalf("stats %+v", s)
	}
	drained := inst("i3", "")
	drained.Status = registryv1.ServingStatus_SERVING_STATUS_NOT_SERVING
	w.view.apply(event(registryv1.EventType_EVENT_TYPE_UPDATED, drained, 2))
	if _, err := w.Pick(registryv1.Strategy_STRATEGY_ROUND_ROBIN, ""); err != nil {
		t.Fatal(err)
	}
	if s := w.EjectionStats(""); s != (EjectionStats{EjectedTotal: 2, RestoredTotal: 1, Ejected: 0}) {
		t.Fatalf("stats after i3 left: %+v", s)
	}
}
