import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../src/domain/logger.js";
import { RedisConfigStore } from "../src/store/redis-config-store.js";
import { startRedis, type RedisProcess } from "./support/redis-server.js";

// Redis loses the configuration (FLUSHALL, as a restart without persistence
// would) while two replicas' stores run: each takes the empty state under
// one new registry id, tells its watchers to reset, and writes go on from
// revision 1; nothing of the lost state is served any more.

let redis: RedisProcess;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis.close();
});

const limits = { maxKeysPerService: 100, historyDepth: 10 };
const open = () => RedisConfigStore.connect({ url: redis.url, sentinels: [], sentinelName: "", commandTimeoutMs: 2000, registry: "loss", logMax: 1000, limits, logger: silentLogger });
const put = (key: string) => ({ namespace: "ns", service: "svc", key, op: "put" as const, value: new TextEncoder().encode(key), contentType: "", principal: "p", now: Date.now() });

async function until(cond: () => boolean, what: string, ms = 8000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("configuration in Redis mode when Redis loses its data", () => {
  it("both replicas take the empty state under one new id, reset their watchers, and writes start again at revision 1", async () => {
    const [a, b] = [await open(), await open()];
    const admin = new Redis(redis.url);
    try {
      for (const k of ["x", "y", "z"]) await a.write(put(k));
      await until(() => b.revision() === 3, "b to follow a");
      const before = a.registryId;
      expect(b.registryId).toBe(before);
      const resets: string[] = [];
      a.subscribeResets((r) => resets.push(`a:${r}`));
      b.subscribeResets((r) => resets.push(`b:${r}`));
      await admin.flushall();
      // with no write, each notices on its own (the idle check of its change stream)
      await until(() => resets.length === 2, "both replicas to reset");
      expect(resets.sort()).toEqual(["a:REGISTRY_CHANGED", "b:REGISTRY_CHANGED"]);
      expect(a.registryId).not.toBe(before);
      expect(b.registryId).toBe(a.registryId);
      expect(a.keys("ns", "svc")).toEqual([]);
      const next = await b.write(put("w"));
      expect(next.revision).toBe(1);
      await until(() => a.keys("ns", "svc").length === 1, "a to see the new write");
    } finally {
      admin.disconnect();
      await a.close();
      await b.close();
    }
  });
});
