import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { InstanceSpec } from "../src/domain/instance.js";
import type { CheckSpec } from "../src/domain/health.js";
import { MemoryStore } from "../src/store/memory-store.js";
import type { Change, Store } from "../src/store/store.js";
import { startRedis, startRedisCluster, type RedisClusterProcess, type RedisProcess } from "./support/redis-server.js";
import { redisStore } from "./support/redis-store.js";
import { primaryStore } from "./support/primary-store.js";

// One contract, every store backend: the memory store (in this process, and
// in a cluster primary reached over IPC) and the Redis store
// (against a private redis-server, and against a private Redis Cluster of
// three masters and three replicas) must behave the same to the registry.

let redis: RedisProcess;
let cluster: RedisClusterProcess;
beforeAll(async () => {
  [redis, cluster] = await Promise.all([startRedis(), startRedisCluster()]);
}, 60_000);
afterAll(async () => {
  await redis?.close();
  await cluster?.close();
});

function spec(id: string, over: Partial<InstanceSpec> = {}): InstanceSpec {
  return {
    namespace: "default",
    service: "payments",
    instanceId: id,
    owner: "anonymous",
    host: "10.0.0.1",
    port: 8080,
    version: "1.0.0",
    zone: "eu-1a",
    tags: ["a", "b"],
    metadata: { k: "v", "x-y": "z" },
    weight: 100,
    status: "SERVING",
    ...over,
  };
}

const backends: Array<[string, () => Promise<Store>]> = [
  ["memory", async () => new MemoryStore()],
  // a worker's store when the registry lives in the cluster primary (MAXINE_STORE=memory, MAXINE_WORKERS > 1)
  ["memory in the primary, over IPC", () => primaryStore()],
  ["redis", () => redisStore(redis.url)],
  ["redis cluster", () => redisStore("redis://127.0.0.1:1", { cluster: cluster.seeds })],
];

describe.each(backends)("store contract: %s", (_name, make) => {
  async function withStore(fn: (s: Store, seen: Change[]) => Promise<void>): Promise<void> {
    const s = await make();
    const seen: Change[] = [];
    s.subscribe((c) => seen.push(c));
    try {
      await fn(s, seen);
    } finally {
      await s.close();
    }
  }

  it("adds an instance with revision 1 and shows it before put resolves", () =>
    withStore(async (s, seen) => {
      expect(s.revision()).toBe(0);
      expect(s.registryId).not.toBe("");
      const c = await s.put(spec("p-1"), 1000, { ttlMs: 10_000 });
      expect(c?.type).toBe("ADDED");
      expect(c?.revision).toBe(1);
      expect(c?.instance).toMatchObject({ ...spec("p-1"), registeredAt: 1000, updatedAt: 1000, createRevision: 1, modRevision: 1 });
      expect(s.revision()).toBe(1);
      expect(s.get(spec("p-1"))).toEqual(c?.instance);
      expect(seen.map((x) => x.revision)).toEqual([1]);
    }));

  it("refuses a put or remove by another owner, atomically, and keeps the record", () =>
    withStore(async (s, seen) => {
      await s.put(spec("p-1", { owner: "alice" }), 1000, { ttlMs: 10_000 }, "alice");
      const put = await s.put(spec("p-1", { owner: "mallory", host: "6.6.6.6" }), 2000, { ttlMs: 10_000 }, "mallory").catch((e: unknown) => e);
      expect(put).toMatchObject({ reason: "PERMISSION_DENIED", message: expect.stringContaining('belongs to principal "alice"') });
      const removed = await s.remove({ namespace: "default", service: "payments", instanceId: "p-1" }, "DEREGISTERED", undefined, "mallory").catch((e: unknown) => e);
      expect(removed).toMatchObject({ reason: "PERMISSION_DENIED" });
      expect(s.get(spec("p-1"))).toMatchObject({ owner: "alice", host: "10.0.0.1" });
      // the owner, and a write with no owner check (an admin's), go through; odd characters in an owner are compared exactly
      expect((await s.put(spec("p-1", { owner: "alice", port: 9 }), 3000, undefined, "alice"))?.type).toBe("UPDATED");
      await s.put(spec("q-1", { owner: 'spiffe://x/"y",z' }), 1000, { ttlMs: 10_000 }, 'spiffe://x/"y",z');
      const prefix = await s.put(spec("q-1", { owner: "spiffe://x/", port: 1 }), 1000, undefined, "spiffe://x/").catch((e: unknown) => e);
      expect(prefix).toMatchObject({ reason: "PERMISSION_DENIED", message: expect.stringContaining('belongs to principal "spiffe://x/\\"y\\",z"') });
      expect(seen.map((c) => c.type)).toEqual(["ADDED", "UPDATED", "ADDED"]);
    }));

  it("puts an unchanged instance as a no-op, with metadata in any order", () =>
    withStore(async (s, seen) => {
      await s.put(spec("p-1"), 1000, { ttlMs: 10_000 });
      expect(await s.put(spec("p-1", { metadata: { "x-y": "z", k: "v" } }), 2000, { ttlMs: 10_000 })).toBeUndefined();
      expect(s.revision()).toBe(1);
      expect(seen).toHaveLength(1);
    }));

  it("updates with the previous record, keeping creation data", () =>
    withStore(async (s) => {
      await s.put(spec("p-1"), 1000, { ttlMs: 10_000 });
      const c = await s.put(spec("p-1", { status: "DRAINING" }), 2000);
      expect(c?.type).toBe("UPDATED");
      if (c?.type !== "UPDATED") return;
      expect(c.revision).toBe(2);
      expect(c.previous.status).toBe("SERVING");
      expect(c.instance).toMatchObject({ status: "DRAINING", registeredAt: 1000, updatedAt: 2000, createRevision: 1, modRevision: 2 });
      expect(s.service("default", "payments")?.servingCount).toBe(0);
    }));

  it("keeps an operator's override across puts that carry none, in the same write; clears it on request; counts by the effective status", () =>
    withStore(async (s, seen) => {
      const key = { namespace: "default", service: "payments", instanceId: "p-1" };
      await s.put(spec("p-1"), 1000, { ttlMs: 10_000 });
      expect(s.get(key)?.operatorStatus).toBe("NONE");
      expect(s.service("default", "payments")?.servingCount).toBe(1);
      const set = await s.put({ ...s.get(key)!, operatorStatus: "DRAINING" }, 2000);
      expect(set).toMatchObject({ type: "UPDATED", instance: { operatorStatus: "DRAINING", status: "SERVING" }, previous: { operatorStatus: "NONE" } });
      expect(s.service("default", "payments")?.servingCount).toBe(0);
      // the owner registers again (a spec with no override): unchanged, so no revision and the override stays
      expect(await s.put(spec("p-1"), 3000, { ttlMs: 10_000 })).toBeUndefined();
      // a beat's status change (no override in the spec) keeps it too
      const beat = await s.put(spec("p-1", { status: "NOT_SERVING" }), 4000);
      expect(beat?.instance).toMatchObject({ status: "NOT_SERVING", operatorStatus: "DRAINING" });
      const back = await s.put(spec("p-1", { status: "SERVING" }), 5000);
      expect(back?.instance).toMatchObject({ status: "SERVING", operatorStatus: "DRAINING" });
      expect(s.get(key)?.operatorStatus).toBe("DRAINING");
      const cleared = await s.put({ ...spec("p-1"), operatorStatus: "NONE" }, 6000);
      expect(cleared?.instance).toMatchObject({ status: "SERVING", operatorStatus: "NONE" });
      expect(s.service("default", "payments")?.servingCount).toBe(1);
      await s.put({ ...spec("p-1"), operatorStatus: "DISABLED" }, 7000);
      expect(s.service("default", "payments")?.servingCount).toBe(0);
      expect(seen.map((c) => c.type)).toEqual(["ADDED", "UPDATED", "UPDATED", "UPDATED", "UPDATED", "UPDATED"]);
    }));

  it("keeps a check's result across puts that carry none while the check is the same; a new check starts PENDING; counts by the effective status", () =>
    withStore(async (s, seen) => {
      const check: CheckSpec = {
        kind: "HTTP",
        port: 0,
        intervalMs: 10_000,
        timeoutMs: 2_000,
        healthyThreshold: 1,
        unhealthyThreshold: 3,
        deregisterAfterMs: 0,
        httpPath: "/healthz",
        httpMethod: "GET",
        statusMin: 200,
        statusMax: 399,
        grpcService: "",
      };
      const key = spec("h-1");
      const added = await s.put(spec("h-1", { health: { check } }), 1000, { ttlMs: 0 });
      expect(added?.instance.health).toEqual({ check, result: { status: "PENDING", message: "", changedAt: 1000 } });
      expect(s.service("default", "payments")?.servingCount).toBe(0); // a pending check is not SERVING
      const passing = { status: "PASSING" as const, message: "HTTP 200 from /healthz", changedAt: 2000 };
      expect((await s.put({ ...s.get(key)!, health: { check, result: passing } }, 2000))?.type).toBe("UPDATED");
      expect(s.service("default", "payments")?.servingCount).toBe(1);
      // the owner registers again, unchanged: no change, the result stays
      expect(await s.put(spec("h-1", { health: { check } }), 3000, { ttlMs: 0 })).toBeUndefined();
      expect(s.get(key)?.health?.result).toEqual(passing);
      // a status change carrying the check without a result keeps the result
      const drained = await s.put({ ...spec("h-1", { status: "DRAINING" }), health: { check } }, 4000);
      expect(drained?.instance.health?.result).toEqual(passing);
      // another check starts over
      const changed = await s.put(spec("h-1", { health: { check: { ...check, httpPath: "/ready" } } }), 5000, { ttlMs: 0 });
      expect(changed?.instance.health?.result).toEqual({ status: "PENDING", message: "", changedAt: 5000 });
      // and without a check, none
      expect((await s.put(spec("h-1"), 6000, { ttlMs: 0 }))?.instance.health).toBeUndefined();
      expect(seen.map((c) => c.type)).toEqual(["ADDED", "UPDATED", "UPDATED", "UPDATED", "UPDATED"]);
    }));

  it("removes with a reason, conditionally on the mod revision", () =>
    withStore(async (s) => {
      await s.put(spec("p-1"), 1000, { ttlMs: 10_000 });
      expect(await s.remove(spec("p-1"), "LEASE_EXPIRED", 7)).toBeUndefined();
      const c = await s.remove(spec("p-1"), "DEREGISTERED", 1);
      expect(c).toMatchObject({ type: "REMOVED", revision: 2, reason: "DEREGISTERED" });
      expect(c?.instance.instanceId).toBe("p-1");
      expect(s.get(spec("p-1"))).toBeUndefined();
      expect(await s.remove(spec("p-1"), "DEREGISTERED")).toBeUndefined();
      expect(s.namespaces()).toEqual([]);
    }));

  it("lists namespaces and services in name order with counts", () =>
    withStore(async (s) => {
      await s.put(spec("b-1", { service: "beta" }), 1, { ttlMs: 10_000 });
      await s.put(spec("a-2", { service: "alpha", status: "NOT_SERVING" }), 1, { ttlMs: 10_000 });
      await s.put(spec("a-1", { service: "alpha" }), 1, { ttlMs: 10_000 });
      await s.put(spec("o-1", { namespace: "other" }), 1, { ttlMs: 10_000 });
      expect(s.namespaces()).toEqual(["default", "other"]);
      const services = s.services("default").map(([name, v]) => [name, v.size, v.servingCount]);
      expect(services).toEqual([
        ["alpha", 2, 1],
        ["beta", 1, 1],
      ]);
      expect(s.service("default", "alpha")?.sorted().map((r) => r.instanceId)).toEqual(["a-1", "a-2"]);
    }));

  it("gives concurrent writes gapless revisions, seen once each in order", () =>
    withStore(async (s, seen) => {
      const results = await Promise.all(Array.from({ length: 40 }, (_, i) => s.put(spec(`p-${i}`), 1, { ttlMs: 10_000 })));
      expect(results.map((c) => c!.revision).sort((a, b) => a - b)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
      expect(seen.map((c) => c.revision)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
      for (const c of results) expect(s.get(c!.instance)).toEqual(c!.instance);
      expect(s.revision()).toBe(40);
    }));
});
