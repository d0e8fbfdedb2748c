import { describe, expect, it } from "vitest";
import type { DiscoverQuery } from "../src/registry/registry.js";
import type { Strategy } from "../src/registry/select.js";
import { instance, makeCore } from "./support/core.js";

const q = (over: Partial<DiscoverQuery> = {}): DiscoverQuery => ({
  namespace: "",
  service: "payments",
  filter: undefined,
  strategy: "ROUND_ROBIN",
  hashKey: "",
  preferredZone: "",
  includeAll: false,
  ...over,
});

async function withInstances(n: number, over: (i: number) => Parameters<typeof instance>[1] = () => ({})) {
  const core = makeCore();
  for (let i = 0; i < n; i++) await core.registry.register(instance(`i${String(i).padStart(3, "0")}`, over(i)), undefined);
  return core;
}

describe("Discover: filters, status and zones", () => {
  it("matches tags (all of), version, zone and metadata", async () => {
    const { registry } = makeCore();
    await registry.register(instance("a", { tags: ["canary", "eu"], version: "v2", zone: "z1", metadata: { tier: "gold" } }), undefined);
    await registry.register(instance("b", { tags: ["eu"], version: "v2", zone: "z1", metadata: { tier: "gold" } }), undefined);
    await registry.register(instance("c", { tags: ["canary", "eu"], version: "v1", zone: "z2" }), undefined);
    const ids = (f: NonNullable<DiscoverQuery["filter"]>) =>
      registry.discover(q({ filter: f, includeAll: true })).all.map((r) => r.instanceId);
    const none = { tags: [], version: "", zone: "", metadata: {} };
    expect(ids({ ...none, tags: ["canary", "eu"] })).toEqual(["a", "c"]);
    expect(ids({ ...none, version: "v2" })).toEqual(["a", "b"]);
    expect(ids({ ...none, zone: "z2" })).toEqual(["c"]);
    expect(ids({ ...none, metadata: { tier: "gold" } })).toEqual(["a", "b"]);
    expect(ids({ tags: ["canary"], version: "v2", zone: "z1", metadata: { tier: "gold" } })).toEqual(["a"]);
  });

  it("chooses only SERVING instances but lists all matching ones on request", async () => {
    const { registry } = makeCore();
    await registry.register(instance("a", { status: "DRAINING" }), undefined);
    await registry.register(instance("b"), undefined);
    await registry.register(instance("c", { status: "NOT_SERVING" }), undefined);
    for (let i = 0; i < 5; i++) expect(registry.discover(q()).chosen!.instanceId).toBe("b");
    expect(registry.discover(q({ includeAll: true })).all.map((r) => r.instanceId)).toEqual(["a", "b", "c"]);
    expect(registry.discover(q()).all).toEqual([]);
  });

  it("follows every change of what serves: status, an operator's override, a removal, a new instance (the serving list is cached per service)", async () => {
    const { registry } = makeCore();
    const key = (id: string) => ({ namespace: "default", service: "payments", instanceId: id });
    const chosen = () => new Set(Array.from({ length: 6 }, () => registry.discover(q()).chosen!.instanceId));
    await registry.register(instance("a"), undefined);
    await registry.register(instance("b"), undefined);
    expect(chosen()).toEqual(new Set(["a", "b"]));
    await registry.register(instance("a", { status: "NOT_SERVING" }), undefined);
    expect(chosen()).toEqual(new Set(["b"]));
    await registry.setOperatorStatus(key("b"), "DRAINING");
    expect(() => registry.discover(q())).toThrow("none serving");
    await registry.register(instance("a"), undefined);
    expect(chosen()).toEqual(new Set(["a"]));
    await registry.setOperatorStatus(key("b"), "NONE");
    expect(chosen()).toEqual(new Set(["a", "b"]));
    await registry.register(instance("c"), undefined);
    expect(chosen()).toEqual(new Set(["a", "b", "c"]));
    await registry.deregister(key("a"));
    expect(chosen()).toEqual(new Set(["b", "c"]));
    expect(registry.discover(q({ includeAll: true })).all.map((r) => r.instanceId)).toEqual(["b", "c"]);
  });

  it("says NOT_FOUND, and why, when nothing can be chosen", async () => {
    const { registry } = makeCore();
    expect(() => registry.discover(q())).toThrow("service default/payments has no instances");
    await registry.register(instance("a", { status: "DRAINING" }), undefined);
    expect(() => registry.discover(q())).toThrow(
      "service default/payments has no SERVING instance matching the filter (1 registered, 1 matching, none serving)",
    );
    expect(() => registry.discover(q({ service: "" }))).toThrow("service: is required");
  });

  it("prefers the preferred zone while it has serving instances, else falls back", async () => {
    const { registry } = await withInstances(4, (i) => ({ zone: i < 2 ? "z1" : "z2" }));
    for (let i = 0; i < 6; i++) expect(registry.discover(q({ preferredZone: "z2" })).chosen!.zone).toBe("z2");
    expect(new Set(Array.from({ length: 8 }, () => registry.discover(q({ preferredZone: "z9" })).chosen!.zone))).toEqual(
      new Set(["z1", "z2"]),
    );
  });
});

describe("Discover: strategies", () => {
  it("round robin visits every instance equally, in instance id order", async () => {
    const { registry } = await withInstances(4);
    const seen = Array.from({ length: 8 }, () => registry.discover(q()).chosen!.instanceId);
    expect(seen).toEqual(["i000", "i001", "i002", "i003", "i000", "i001", "i002", "i003"]);
  });

  it("weighted follows the weights", async () => {
    const { registry } = await withInstances(3, (i) => ({ weight: [100, 300, 600][i]! }));
    const counts = new Map<string, number>();
    const n = 20_000;
    for (let i = 0; i < n; i++) {
      const id = registry.discover(q({ strategy: "WEIGHTED" })).chosen!.instanceId;
      counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    expect(counts.get("i000")! / n).toBeCloseTo(0.1, 1);
    expect(counts.get("i001")! / n).toBeCloseTo(0.3, 1);
    expect(counts.get("i002")! / n).toBeCloseTo(0.6, 1);
  });

  it("random spreads over every instance", async () => {
    const { registry } = await withInstances(5);
    const seen = new Set(Array.from({ length: 500 }, () => registry.discover(q({ strategy: "RANDOM" })).chosen!.instanceId));
    expect(seen.size).toBe(5);
  });

  it("least loaded (power of two choices) avoids the most loaded instance and favours the least", async () => {
    const core = await withInstances(4);
    const s = core.registry.openStream();
    const loads = [0.1, 5, 5, 100];
    await core.registry.heartbeat(
      s,
      loads.map((load, i) => ({ key: { namespace: "", service: "payments", instanceId: `i00${i}` }, status: undefined, load })),
    );
    const counts = new Map<string, number>();
    for (let i = 0; i < 4_000; i++) {
      const id = core.registry.discover(q({ strategy: "LEAST_LOADED" })).chosen!.instanceId;
      counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    expect(counts.get("i003") ?? 0).toBe(0);
    expect(counts.get("i000")!).toBeGreaterThan(counts.get("i001")!);
    core.registry.closeStream(s);
  });

  it.each<Strategy>(["CONSISTENT_HASH", "RENDEZVOUS"])("%s requires a hash key", async (strategy) => {
    const { registry } = await withInstances(2);
    expect(() => registry.discover(q({ strategy }))).toThrow(`hash_key: is required for STRATEGY_${strategy}`);
  });

  it.each<Strategy>(["CONSISTENT_HASH", "RENDEZVOUS"])(
    "%s is stable per key and moves about 1/N of keys when one of N instances leaves",
    async (strategy) => {
      const n = 10;
      const { registry } = await withInstances(n);
      const keys = Array.from({ length: 5_000 }, (_, i) => `user-${i}`);
      const before = keys.map((k) => registry.discover(q({ strategy, hashKey: k })).chosen!.instanceId);
      expect(keys.map((k) => registry.discover(q({ strategy, hashKey: k })).chosen!.instanceId)).toEqual(before);
      // Every instance gets a fair share.
      const share = new Map<string, number>();
      for (const id of before) share.set(id, (share.get(id) ?? 0) + 1);
      for (const c of share.values()) expect(c / keys.length).toBeGreaterThan(0.5 / n);
      await registry.deregister({ namespace: "", service: "payments", instanceId: "i003" });
      const after = keys.map((k) => registry.discover(q({ strategy, hashKey: k })).chosen!.instanceId);
      const moved = keys.filter((_, i) => before[i] !== after[i]).length / keys.length;
      // Only keys of the removed instance move: about 1/N of them.
      expect(keys.every((_, i) => before[i] === after[i] || before[i] === "i003")).toBe(true);
      expect(moved).toBeGreaterThan(0.5 / n);
      expect(moved).toBeLessThan(1.6 / n);
    },
  );
});
