import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { InstanceSpec } from "../src/domain/instance.js";
import { keyList, redisKeys } from "../src/store/redis-scripts.js";
import type { RedisStore } from "../src/store/redis-store.js";
import type { StoreResetReason } from "../src/store/store.js";
import { startRedis, startRedisCluster, type RedisClusterProcess } from "./support/redis-server.js";
import { redisStore } from "./support/redis-store.js";

// Failovers under the Redis store. On a private Redis Cluster (three masters,
// three replicas): a manual CLUSTER FAILOVER while writes run, and a master
// killed once its replica caught up; no acknowledged write is lost and the
// revisions go on from where they were. On a plain redis-server: Redis going
// back in time (what a failover to a lagging replica does) is noticed, the
// registry moves to a new id instead of reusing revisions, and the
// instances this replica holds live are written again.

let cluster: RedisClusterProcess;
beforeAll(async () => {
  cluster = await startRedisCluster();
}, 60_000);
afterAll(async () => {
  await cluster?.close();
});

const spec = (id: string): InstanceSpec => ({
  namespace: "default",
  service: "failover",
  instanceId: id,
  host: "10.0.0.1",
  port: 8080,
  version: "",
  zone: "",
  tags: [],
  metadata: {},
  weight: 100,
  status: "SERVING",
  owner: "anonymous",
});

interface Acked {
  readonly id: string;
  readonly revision: number;
}

/** writer puts instances one after another until stopped; it keeps what was acknowledged and counts refusals. */
function writer(store: RedisStore, prefix: string): { acked: Acked[]; refused: string[]; stop(): Promise<void> } {
  const acked: Acked[] = [];
  const refused: string[] = [];
  let running = true;
  const done = (async () => {
    for (let i = 0; running; i++) {
      const id = `${prefix}-${i}`;
      try {
        const c = await store.put(spec(id), Date.now(), { ttlMs: 60_000 });
        acked.push({ id, revision: c!.revision });
      } catch (err) {
        refused.push((err as Error).message);
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  })();
  return {
    acked,
    refused,
    async stop() {
      running = false;
      await done;
    },
  };
}

async function waitUntil(cond: () => Promise<boolean> | boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function expectIncreasing(acked: readonly Acked[]): void {
  for (let i = 1; i < acked.length; i++) expect(acked[i]!.revision).toBeGreaterThan(acked[i - 1]!.revision);
}

describe("Redis Cluster failover", () => {
  it("CLUSTER FAILOVER while a replica writes: every acknowledged write is kept, revisions go on, the mirrors agree", async () => {
    const registry = `cf-${randomUUID().slice(0, 8)}`;
    const opts = { cluster: cluster.seeds, registry, commandTimeoutMs: 1000 };
    const a = await redisStore("redis://127.0.0.1:1", opts);
    const b = await redisStore("redis://127.0.0.1:1", opts);
    try {
      const { master, replica } = await cluster.shardOf(redisKeys(registry).id);
      const w = writer(a, "m");
      await waitUntil(() => w.acked.length >= 30, "30 writes before the failover");
      const before = w.acked.length;
      expect(await cluster.command(replica, "CLUSTER", "FAILOVER")).toBe("OK");
      await waitUntil(async () => ((await cluster.command(replica, "ROLE")) as string[])[0] === "master", "the replica to be promoted");
      await waitUntil(() => w.acked.length >= before + 30, "30 writes after the failover");
      await w.stop();
      expect(((await cluster.command(master, "ROLE")) as string[])[0]).toBe("slave");

      expectIncreasing(w.acked);
      expect(a.registryId).toBe(b.registryId);
      const fresh = await redisStore("redis://127.0.0.1:1", opts);
      try {
        expect(fresh.registryId).toBe(a.registryId); // nothing was lost: no new registry
        for (const { id, revision } of w.acked) expect(fresh.get(spec(id))?.modRevision).toBe(revision);
        expect(fresh.revision()).toBe(w.acked.at(-1)!.revision);
      } finally {
        await fresh.close();
      }
      await waitUntil(() => b.revision() === w.acked.at(-1)!.revision, "the other replica's mirror to catch up");
      for (const { id } of w.acked) expect(b.get(spec(id))).toEqual(a.get(spec(id)));
    } finally {
      await a.close();
      await b.close();
    }
  }, 60_000);

  it("a master killed after its replica caught up: writes resume on the promoted replica with the next revision", async () => {
    const registry = `ck-${randomUUID().slice(0, 8)}`;
    const opts = { cluster: cluster.seeds, registry, commandTimeoutMs: 500 };
    const store = await redisStore("redis://127.0.0.1:1", opts);
    try {
      const { master, replica } = await cluster.shardOf(redisKeys(registry).id);
      let last = 0;
      for (let i = 0; i < 20; i++) last = (await store.put(spec(`k-${i}`), Date.now(), { ttlMs: 60_000 }))!.revision;
      const offset = async (port: number, field: string): Promise<string | undefined> =>
        String(await cluster.command(port, "INFO", "replication")).match(new RegExp(`${field}:(\\d+)`))?.[1];
      await waitUntil(async () => (await offset(replica, "slave_repl_offset")) === (await offset(master, "master_repl_offset")), "the replica to catch up");
      await cluster.nodes.find((n) => n.port === master)!.stop();
      let after: number | undefined;
      await waitUntil(async () => {
        after = (await store.put(spec("after"), Date.now(), { ttlMs: 60_000 }).catch(() => undefined))?.revision;
        return after !== undefined;
      }, "a write to succeed on the promoted replica", 30_000);
      expect(after).toBe(last + 1);
      expect(((await cluster.command(replica, "ROLE")) as string[])[0]).toBe("master");
      for (let i = 0; i < 20; i++) expect(store.get(spec(`k-${i}`))).toBeDefined();
    } finally {
      await store.close();
    }
  }, 60_000);
});

describe("Redis that went back in time", () => {
  it("moves the registry to a new id, refuses the write that would reuse a revision, and re-asserts live instances", async () => {
    const redis = await startRedis();
    const registry = `rb-${randomUUID().slice(0, 8)}`;
    const keys = keyList(redisKeys(registry));
    const raw = new Redis({ host: "127.0.0.1", port: redis.port, lazyConnect: true });
    const store = await redisStore(redis.url, { registry });
    const resets: StoreResetReason[] = [];
    store.subscribeResets!((r) => resets.push(r));
    try {
      await raw.connect();
      for (let i = 0; i < 5; i++) await store.put(spec(`kept-${i}`), Date.now(), { ttlMs: 60_000 });
      // what a replica that lagged two writes holds
      const lagging = await Promise.all(keys.map(async (k) => [k, await raw.dumpBuffer(k)] as const));
      const lost1 = await store.put(spec("lost-1"), Date.now(), { ttlMs: 60_000 });
      const lost2 = await store.put(spec("lost-2"), Date.now(), { ttlMs: 60_000 });
      const idBefore = store.registryId;
      // ... promoted: Redis goes back two revisions
      for (const [k, v] of lagging) {
        if (v === null) await raw.del(k);
        else await raw.restore(k, 0, v, "REPLACE");
      }
      expect(Number(await raw.get(redisKeys(registry).rev))).toBe(lost1!.revision - 1);

      // a write now would take lost-1's revision for another change: refused
      await expect(store.put(spec("next"), Date.now(), { ttlMs: 60_000 })).rejects.toThrow(/Redis lost acknowledged writes/);
      await waitUntil(() => resets.length > 0, "the mirror to re-sync");
      expect(resets).toEqual(["REGISTRY_CHANGED"]);
      expect(store.registryId).not.toBe(idBefore);
      expect(await raw.get(redisKeys(registry).id)).toBe(store.registryId);
      // lost-1 and lost-2 are held here (registered with a lease): written again into the new registry
      expect(store.get(spec("lost-1"))).toBeDefined();
      expect(store.get(spec("lost-2"))).toBeDefined();
      expect(lost2!.revision).toBeGreaterThan(0);
      const next = await store.put(spec("next"), Date.now(), { ttlMs: 60_000 });
      expect(next!.revision).toBe(store.revision());
    } finally {
      await store.close();
      raw.disconnect();
      await redis.close();
    }
  }, 30_000);

  it("notices it with no write: the idle check compares the revision too", async () => {
    const redis = await startRedis();
    const registry = `ri-${randomUUID().slice(0, 8)}`;
    const raw = new Redis({ host: "127.0.0.1", port: redis.port, lazyConnect: true });
    const store = await redisStore(redis.url, { registry });
    const resets: StoreResetReason[] = [];
    store.subscribeResets!((r) => resets.push(r));
    try {
      await raw.connect();
      await store.put(spec("i-0"), Date.now(), { ttlMs: 60_000 });
      const keys = keyList(redisKeys(registry));
      const lagging = await Promise.all(keys.map(async (k) => [k, await raw.dumpBuffer(k)] as const));
      for (let i = 1; i < 3; i++) await store.put(spec(`i-${i}`), Date.now(), { ttlMs: 60_000 });
      for (const [k, v] of lagging) {
        if (v === null) await raw.del(k);
        else await raw.restore(k, 0, v, "REPLACE");
      }
      await waitUntil(() => resets.length > 0, "the idle check to notice", 10_000);
      expect(resets).toEqual(["REGISTRY_CHANGED"]);
      for (let i = 0; i < 3; i++) expect(store.get(spec(`i-${i}`))).toBeDefined();
    } finally {
      await store.close();
      raw.disconnect();
      await redis.close();
    }
  }, 30_000);
});
