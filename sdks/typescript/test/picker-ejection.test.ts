import { describe, expect, it } from "vitest";
import { EventType, ServingStatus, Strategy, type Instance } from "../src/gen/maxine/registry/v1/registry_pb.js";
import { HashRing } from "../src/balancer.js";
import { InstanceView } from "../src/instance-view.js";
import type { EjectionEvent } from "../src/outlier-ejector.js";
import { validateEjectionOptions } from "../src/outlier-ejector.js";
import { Picker } from "../src/picker.js";
import type { MaxineClient } from "../src/client.js";
import { Watcher } from "../src/watcher.js";
import { event, inst, snapshot, snapshotEnd } from "./support/messages.js";

// The Picker with ejection on, a fake clock: picks skip what the ejector
// excludes with every strategy, the view's changes reach the ejector, and
// bad settings are refused naming the field and the rule.

function viewOf(...instances: Instance[]): InstanceView {
  const v = new InstanceView();
  v.apply(snapshot(...instances));
  v.apply(snapshotEnd(1n));
  return v;
}

function setup(n = 5) {
  let now = 0;
  const events: Array<[string, EjectionEvent]> = [];
  const view = viewOf(...Array.from({ length: n }, (_, i) => inst(`i${i}`)));
  const picker = new Picker(view, Math.random, {
    options: { consecutiveFailures: 2, maxEjectionPercent: 40 },
    now: () => now,
    onEvent: (s, e) => events.push([s, e]),
  });
  return { view, picker, events, at: (ms: number) => (now = ms) };
}

describe("Picker with outlier ejection", () => {
  it("skips ejected instances with every strategy, consistent hashing on a ring without them", () => {
    const { picker, events } = setup();
    picker.report("svc", "i1", false);
    picker.report("svc", "i1", false);
    expect(events).toEqual([["svc", { type: "ejected", instanceId: "i1", reason: "consecutive_failures", ejections: 1, durationMs: 30_000, at: 0 }]]);
    const rr = Array.from({ length: 8 }, () => picker.pick("svc", Strategy.ROUND_ROBIN)!.instanceId);
    expect(new Set(rr)).toEqual(new Set(["i0", "i2", "i3", "i4"]));
    for (const s of [Strategy.RANDOM, Strategy.WEIGHTED]) {
      for (let k = 0; k < 50; k++) expect(picker.pick("svc", s)!.instanceId).not.toBe("i1");
    }
    const ring = new HashRing(["i0", "i2", "i3", "i4"]);
    for (const key of ["u1", "u2", "u3", "u4", "u5", "u6"]) {
      expect(picker.pick("svc", Strategy.CONSISTENT_HASH, key)!.instanceId).toBe(["i0", "i2", "i3", "i4"][ring.lookup(key)]);
      expect(picker.pick("svc", Strategy.RENDEZVOUS, key)!.instanceId).not.toBe("i1");
    }
    expect(picker.ejectionCounters()).toEqual({ ejectedTotal: 1, restoredTotal: 0, ejected: 1 });
    expect(picker.ejectionCounters("other")).toEqual({ ejectedTotal: 0, restoredTotal: 0, ejected: 0 });
  });

  it("gives a returning instance one trial pick, and restores it on success", () => {
    const { picker, events, at } = setup(2);
    picker.report("svc", "i0", false);
    picker.report("svc", "i0", false);
    at(30_000);
    const picks = Array.from({ length: 4 }, () => picker.pick("svc")!.instanceId);
    expect(picks.filter((id) => id === "i0")).toHaveLength(1);
    picker.report("svc", "i0", true);
    expect(events.at(-1)).toEqual(["svc", { type: "restored", instanceId: "i0", at: 30_000 }]);
    expect(new Set(Array.from({ length: 4 }, () => picker.pick("svc")!.instanceId))).toEqual(new Set(["i0", "i1"]));
  });

  it("follows the view: an instance that stops serving leaves the ejector, and its ejection with it", () => {
    const { view, picker } = setup();
    picker.report("svc", "i3", false);
    picker.report("svc", "i3", false);
    expect(picker.ejectionCounters().ejected).toBe(1);
    view.apply(event(EventType.UPDATED, inst("i3", { status: ServingStatus.NOT_SERVING }), 2n));
    picker.pick("svc");
    expect(picker.ejectionCounters().ejected).toBe(0);
    picker.report("svc", "unknown", false); // not held: ignored
    expect(picker.ejectionCounters()).toEqual({ ejectedTotal: 1, restoredTotal: 0, ejected: 0 });
  });

  it("does nothing without ejection", () => {
    const p = new Picker(viewOf(inst("a"), inst("b")));
    for (let k = 0; k < 10; k++) p.report("svc", "a", false);
    expect(new Set([p.pick("svc")!.instanceId, p.pick("svc")!.instanceId])).toEqual(new Set(["a", "b"]));
    expect(p.ejectionCounters()).toEqual({ ejectedTotal: 0, restoredTotal: 0, ejected: 0 });
  });

  it("refuses bad settings naming the field and the rule", () => {
    expect(() => validateEjectionOptions({ maxEjectionPercent: 101 })).toThrow("ejection.maxEjectionPercent: must be an integer 0..100, got 101");
    expect(() => validateEjectionOptions({ intervalMs: 0 })).toThrow("ejection.intervalMs: must be an integer 1.., got 0");
    expect(() => validateEjectionOptions({ consecutiveFailures: 1.5 })).toThrow(/ejection.consecutiveFailures: must be an integer 0\.\./);
    // a Watcher refuses them when it is created, not at its first pick
    expect(() => new Watcher({} as MaxineClient, { start: false, ejection: { failurePercentageThreshold: -1 } })).toThrow(
      "ejection.failurePercentageThreshold: must be an integer 0..100, got -1",
    );
    expect(validateEjectionOptions({})).toMatchObject({ consecutiveFailures: 5, intervalMs: 10_000, maxEjectionPercent: 10 });
  });
});
