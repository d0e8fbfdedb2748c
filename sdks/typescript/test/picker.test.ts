import { describe, expect, it } from "vitest";
import { EventType, ServingStatus, Strategy, type Instance } from "../src/gen/maxine/registry/v1/registry_pb.js";
import { InstanceView } from "../src/instance-view.js";
import { Picker } from "../src/picker.js";
import { event, inst, snapshot, snapshotEnd } from "./support/messages.js";
import { mulberry32 } from "./support/wait.js";

function viewOf(...instances: Instance[]): InstanceView {
  const v = new InstanceView();
  v.apply(snapshot(...instances));
  v.apply(snapshotEnd(1n));
  return v;
}

function counts(pick: () => Instance | undefined, n: number): Map<string, number> {
  const m = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const id = pick()!.instanceId;
    m.set(id, (m.get(id) ?? 0) + 1);
  }
  return m;
}

const ids = (n: number) => Array.from({ length: n }, (_, i) => `i-${String(i).padStart(2, "0")}`);
const keys = Array.from({ length: 10_000 }, (_, i) => `user-${i}`);

describe("Picker", () => {
  it("round robin cycles through SERVING instances in instance_id order", () => {
    const p = new Picker(viewOf(inst("c"), inst("a"), inst("b"), inst("d", { status: ServingStatus.DRAINING })));
    expect(Array.from({ length: 6 }, () => p.pick("svc", Strategy.ROUND_ROBIN)!.instanceId)).toEqual(["a", "b", "c", "a", "b", "c"]);
    expect(counts(() => p.pick("svc"), 300)).toEqual(new Map([["a", 100], ["b", 100], ["c", 100]]));
  });

  it("weighted picks in proportion to weight; random spreads evenly", () => {
    const p = new Picker(viewOf(inst("light", { weight: 100 }), inst("heavy", { weight: 300 })), mulberry32(42));
    const w = counts(() => p.pick("svc", Strategy.WEIGHTED), 8000);
    expect(w.get("heavy")! / 8000).toBeGreaterThan(0.72);
    expect(w.get("heavy")! / 8000).toBeLessThan(0.78);
    const r = counts(() => p.pick("svc", Strategy.RANDOM), 8000);
    expect(r.get("heavy")! / 8000).toBeGreaterThan(0.47);
    expect(r.get("heavy")! / 8000).toBeLessThan(0.53);
  });

  it("returns undefined when no instance is SERVING, and checks its arguments", () => {
    const p = new Picker(viewOf(inst("a", { status: ServingStatus.NOT_SERVING })));
    expect(p.pick("svc", Strategy.ROUND_ROBIN)).toBeUndefined();
    expect(p.pick("nope", Strategy.CONSISTENT_HASH, "k")).toBeUndefined();
    expect(() => p.pick("svc", Strategy.CONSISTENT_HASH)).toThrow(/hashKey/);
    expect(() => p.pick("svc", Strategy.RENDEZVOUS, "")).toThrow(/hashKey/);
    expect(() => new Picker(viewOf(inst("a"))).pick("svc", Strategy.LEAST_LOADED)).toThrow(/Discover/);
  });

  for (const strategy of [Strategy.CONSISTENT_HASH, Strategy.RENDEZVOUS]) {
    it(`${Strategy[strategy]} keeps keys in place and moves about 1/N when one of N leaves`, () => {
      const n = 10;
      const view = viewOf(...ids(n).map((id) => inst(id)));
      const p = new Picker(view);
      const before = keys.map((k) => p.pick("svc", strategy, k)!.instanceId);
      expect(keys.map((k) => p.pick("svc", strategy, k)!.instanceId)).toEqual(before); // stable
      const used = new Set(before);
      expect(used.size).toBe(n);
      view.apply(event(EventType.REMOVED, inst("i-03"), 2n));
      const after = keys.map((k) => p.pick("svc", strategy, k)!.instanceId);
      let moved = 0;
      for (let i = 0; i < keys.length; i++) {
        if (before[i] !== after[i]) {
          moved++;
          expect(before[i]).toBe("i-03"); // only the removed instance's keys move
        }
      }
      expect(moved / keys.length).toBeGreaterThan(0.5 / n);
      expect(moved / keys.length).toBeLessThan(1.5 / n);
    });
  }

  it("keeps the hash ring while the SERVING set is unchanged and rebuilds it when it changes", () => {
    const view = viewOf(inst("a"), inst("b"), inst("c"));
    const p = new Picker(view);
    p.pick("svc", Strategy.CONSISTENT_HASH, "k");
    const ring = (p as unknown as { cache: Map<string, { ring: unknown }> }).cache.get("svc")!.ring;
    expect(ring).toBeDefined();
    view.apply(event(EventType.UPDATED, inst("a", { metadata: { v: "2" } }), 2n));
    p.pick("svc", Strategy.CONSISTENT_HASH, "k");
    expect((p as unknown as { cache: Map<string, { ring: unknown }> }).cache.get("svc")!.ring).toBe(ring);
    view.apply(event(EventType.UPDATED, inst("b", { status: ServingStatus.DRAINING }), 3n));
    p.pick("svc", Strategy.CONSISTENT_HASH, "k");
    expect((p as unknown as { cache: Map<string, { ring: unknown }> }).cache.get("svc")!.ring).not.toBe(ring);
    expect(p.candidates("svc").map((i) => i.instanceId)).toEqual(["a", "c"]);
  });
});
