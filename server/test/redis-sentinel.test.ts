import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { InstanceSpec } from "../src/domain/instance.js";
import { startRedis, startSentinel, type RedisProcess, type SentinelProcess } from "./support/redis-server.js";
import { redisStore } from "./support/redis-store.js";

// MAXINE_REDIS_SENTINELS: the store asks a Sentinel (a private one, started
// here) for the master and works through it; ioredis follows failovers.

let redis: RedisProcess;
let replica: RedisProcess;
let sentinel: SentinelProcess;
beforeAll(async () => {
  redis = await startRedis();
  replica = await startRedis(["--replicaof", "127.0.0.1", String(redis.port)]);
  sentinel = await startSentinel(redis.port);
});
afterAll(async () => {
  await sentinel?.close();
  await replica?.close();
  await redis?.close();
});

const spec: InstanceSpec = { namespace: "default", service: "s", instanceId: "i", host: "h", port: 1, version: "", zone: "", tags: [], metadata: {}, weight: 100, status: "SERVING", owner: "anonymous" };

describe("Redis through Sentinel", () => {
  it("finds the master through the Sentinel and shares the registry with a direct connection", async () => {
    // The URL's host and port are ignored with Sentinels: this one leads nowhere.
    const viaSentinel = await redisStore("redis://127.0.0.1:1", { sentinels: [sentinel.address], sentinelName: "mymaster", registry: "sentinel" });
    const direct = await redisStore(redis.url, { registry: "sentinel" });
    try {
      expect(viaSentinel.registryId).toBe(direct.registryId);
      const c = await viaSentinel.put(spec, 1, { ttlMs: 10_000 });
      expect(c?.revision).toBe(1);
      const deadline = Date.now() + 5000;
      while (direct.get(spec) === undefined && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      expect(direct.get(spec)).toEqual(c?.instance);
    } finally {
      await viaSentinel.close();
      await direct.close();
    }
  });

  it("follows a Sentinel failover: the replica becomes master, the registry and its mirror carry on", async () => {
    const store = await redisStore("redis://127.0.0.1:1", { sentinels: [sentinel.address], sentinelName: "mymaster", registry: "failover", commandTimeoutMs: 500 });
    try {
      const before = await store.put({ ...spec, instanceId: "before" }, 1, { ttlMs: 60_000 });
      const registryId = store.registryId;
      // Let the replica catch up, then lose the master for good.
      await waitUntil(async () => (await infoReplication(replica.port)).includes("master_link_status:up"), "the replica to sync");
      await waitUntil(async () => (await infoReplication(replica.port)).match(/slave_repl_offset:(\d+)/)?.[1] === (await infoReplication(redis.port)).match(/master_repl_offset:(\d+)/)?.[1], "the replica to catch up");
      await redis.stop();
      let after;
      await waitUntil(async () => {
        after = await store.put({ ...spec, instanceId: "after" }, 2, { ttlMs: 60_000 }).catch(() => undefined);
        return after !== undefined;
      }, "a write to succeed on the promoted replica", 20_000);
      expect(after!.revision).toBe(before!.revision + 1);
      expect(store.registryId).toBe(registryId);
      expect(store.get({ ...spec, instanceId: "before" })).toBeDefined();
    } finally {
      await store.close();
    }
  });
});

async function waitUntil(cond: () => Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function infoReplication(port: number): Promise<string> {
  const r = new Redis({ host: "127.0.0.1", port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  try {
    await r.connect();
    return await r.info("replication");
  } catch {
    return "";
  } finally {
    r.disconnect();
  }
}
