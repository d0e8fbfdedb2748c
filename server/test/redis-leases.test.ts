import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { systemClock } from "../src/domain/clock.js";
import type { InstanceSpec } from "../src/domain/instance.js";
import { silentLogger } from "../src/domain/logger.js";
import { keyList, redisKeys, SCRIPTS } from "../src/store/redis-scripts.js";
import type { RedisStore } from "../src/store/redis-store.js";
import { Sweeper, type ScriptRunner } from "../src/store/redis-sweeper.js";
import type { Change } from "../src/store/store.js";
import { startRedis, type RedisProcess } from "./support/redis-server.js";
import { redisStore } from "./support/redis-store.js";

// Leases in Redis: renewals from the replica holding the stream, grace after
// a stream ends (ignored when another replica took the instance over), and
// the sweeper lock with its fencing token.

let redis: RedisProcess;
let raw: Redis;
beforeAll(async () => {
  redis = await startRedis();
  raw = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 0 });
  await raw.connect();
  for (const [name, lua] of Object.entries(SCRIPTS)) raw.defineCommand(name, { numberOfKeys: keyList(redisKeys("x")).length, lua });
});
afterAll(async () => {
  raw?.disconnect();
  await redis?.close();
});

function spec(id: string): InstanceSpec {
  return { namespace: "default", service: "svc", instanceId: id, host: "h", port: 1, version: "", zone: "", tags: [], metadata: {}, weight: 100, status: "SERVING", owner: "anonymous" };
}

async function waitFor(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("leases shared through Redis", () => {
  it("a stream's end starts the grace, unless another replica's stream beats the instance too (it takes the binding)", async () => {
    const registry = `leases-${randomUUID().slice(0, 8)}`;
    const r1 = await redisStore(redis.url, { registry });
    const r2 = await redisStore(redis.url, { registry, sweep: true });
    const removed: Change[] = [];
    r2.subscribe((c) => c.type === "REMOVED" && removed.push(c));
    try {
      await r1.put(spec("moved"), Date.now(), { ttlMs: 5000 });
      await r1.put(spec("gone"), Date.now(), { ttlMs: 5000 });
      r1.leases.renewed("default/svc/moved", 5000, 1);
      r1.leases.renewed("default/svc/gone", 5000, 1);
      const keys = redisKeys(registry);
      const bound = async (k: string) => (await raw.hget(keys.owner, k)) === `${r1.replicaId}:1`;
      await waitFor(async () => (await bound("default/svc/moved")) && (await bound("default/svc/gone")), "both owned by r1's stream 1");
      r2.leases.renewed("default/svc/moved", 5000, 9); // the session moved to r2
      await waitFor(async () => (await raw.hget(keys.next, "default/svc/moved")) !== null, "r2's renewal to reach Redis");
      r1.leases.released(["default/svc/moved", "default/svc/gone"], 200, 1);
      await waitFor(() => removed.length > 0, "the released instance to be swept");
      await sleep(500); // a sleep that proves "moved" is NOT removed too
      expect(removed.map((c) => [c.instance.instanceId, c.type === "REMOVED" && c.reason])).toEqual([["gone", "STREAM_CLOSED"]]);
      expect(r1.get(spec("moved"))).toBeDefined();
      expect(r2.get(spec("moved"))).toBeDefined();
    } finally {
      await r1.close();
      await r2.close();
    }
  });

  it("a stream on another replica that beats once and ends removes nothing while the holder's stream beats", async () => {
    const registry = `binding-${randomUUID().slice(0, 8)}`;
    const keys = redisKeys(registry);
    const k = "default/svc/held";
    const r1 = await redisStore(redis.url, { registry });
    const r2 = await redisStore(redis.url, { registry, sweep: true });
    const removed: string[] = [];
    r2.subscribe((c) => c.type === "REMOVED" && removed.push(`${c.instance.instanceId}:${c.reason}`));
    let beating = true;
    const beats = (async () => {
      while (beating) {
        r1.leases.renewed(k, 600, 1);
        await sleep(100);
      }
    })();
    try {
      await r1.put(spec("held"), Date.now(), { ttlMs: 600 });
      await waitFor(async () => (await raw.hget(keys.owner, k)) === `${r1.replicaId}:1`, "r1's stream to hold the binding");
      r2.leases.renewed(k, 600, 7); // the intruder's one beat
      await waitFor(async () => (await raw.hget(keys.next, k)) !== null, "r2's renewal to reach Redis");
      expect(await raw.hget(keys.owner, k)).toBe(`${r1.replicaId}:1`); // recorded as next holder, not bound
      expect(await raw.hget(keys.next, k)).toMatch(new RegExp(`^\\d+ ${r2.replicaId}:7$`));
      r2.leases.released([k], 100, 7);
      await waitFor(async () => (await raw.hget(keys.next, k)) === null, "r2's release to withdraw it");
      await sleep(1200); // past the grace and two TTLs: a sleep that proves nothing is removed
      expect(removed).toEqual([]);
      expect(await raw.hget(keys.owner, k)).toBe(`${r1.replicaId}:1`);
      beating = false;
      await beats;
      r1.leases.released([k], 100, 1);
      await waitFor(() => removed.length > 0, "the holder's end to remove it");
      expect(removed).toEqual(["held:STREAM_CLOSED"]);
      expect(await raw.hlen(keys.held)).toBe(0);
    } finally {
      beating = false;
      await beats;
      await r1.close();
      await r2.close();
    }
  });

  it("a holder that stops renewing (its replica died) goes stale: another replica's beating stream takes the binding", async () => {
    const registry = `stale-${randomUUID().slice(0, 8)}`;
    const keys = redisKeys(registry);
    const k = "default/svc/moving";
    const r1 = await redisStore(redis.url, { registry });
    const r2 = await redisStore(redis.url, { registry, sweep: true });
    const removed: string[] = [];
    r2.subscribe((c) => c.type === "REMOVED" && removed.push(`${c.instance.instanceId}:${c.reason}`));
    try {
      await r1.put(spec("moving"), Date.now(), { ttlMs: 400 });
      r1.leases.renewed(k, 400, 1);
      await waitFor(async () => (await raw.hget(keys.owner, k)) === `${r1.replicaId}:1`, "r1's stream to hold the binding");
      await r1.close(); // r1 goes silent without a release: its binding goes stale
      const until = Date.now() + 1500;
      const owners = new Set<string | null>();
      while (Date.now() < until) {
        r2.leases.renewed(k, 400, 3);
        owners.add(await raw.hget(keys.owner, k));
        await sleep(100);
      }
      expect(removed).toEqual([]); // r2's beats kept the lease the whole time
      expect(owners).toContain(`${r1.replicaId}:1`);
      expect(await raw.hget(keys.owner, k)).toBe(`${r2.replicaId}:3`);
      r2.leases.released([k], 100, 3);
      await waitFor(() => removed.length > 0, "the new holder's end to remove it");
      expect(removed).toEqual(["moving:STREAM_CLOSED"]);
    } finally {
      await r2.close();
    }
  });

  it("the end of the last stream that beats an instance whose holder went stale starts the grace", async () => {
    const registry = `last-${randomUUID().slice(0, 8)}`;
    const keys = redisKeys(registry);
    const k = "default/svc/last";
    const r1 = await redisStore(redis.url, { registry });
    const r2 = await redisStore(redis.url, { registry, sweep: true });
    const removed: string[] = [];
    r2.subscribe((c) => c.type === "REMOVED" && removed.push(`${c.instance.instanceId}:${c.reason}`));
    const redisNow = async () => {
      const [s, us] = await raw.time();
      return Number(s) * 1000 + Math.floor(Number(us) / 1000);
    };
    try {
      await r1.put(spec("last"), Date.now(), { ttlMs: 2000 });
      r1.leases.renewed(k, 2000, 1);
      await waitFor(async () => (await raw.hget(keys.owner, k)) === `${r1.replicaId}:1`, "r1's stream to hold the binding");
      await r1.close(); // silent from now on
      await sleep(500);
      r2.leases.renewed(k, 2000, 4); // one beat while r1's binding is still fresh: r2 is the next holder
      await waitFor(async () => (await raw.hget(keys.next, k)) !== null, "r2's renewal to reach Redis");
      const staleAt = Number(await raw.hget(keys.held, k));
      await waitFor(async () => (await redisNow()) > staleAt, "r1's binding to go stale", 5000);
      expect(removed).toEqual([]); // r2's beat extended the lease past r1's
      r2.leases.released([k], 100, 4);
      await waitFor(() => removed.length > 0, "r2's end to remove it");
      expect(removed).toEqual(["last:STREAM_CLOSED"]);
    } finally {
      await r2.close();
    }
  });

  it("a stream that ends before its renewal reached Redis starts the grace all the same (it beat once; or its replica moved the lease to it)", async () => {
    const registry = `unflushed-${randomUUID().slice(0, 8)}`;
    const keys = redisKeys(registry);
    const r1 = await redisStore(redis.url, { registry, renewIntervalMs: 60_000 }); // no renewal is flushed by itself
    const r2 = await redisStore(redis.url, { registry, sweep: true });
    const removed: string[] = [];
    r2.subscribe((c) => c.type === "REMOVED" && removed.push(`${c.instance.instanceId}:${c.reason}`));
    try {
      await r1.put(spec("once"), Date.now(), { ttlMs: 30_000 });
      await r1.put(spec("moved"), Date.now(), { ttlMs: 30_000 });
      r1.leases.renewed("default/svc/moved", 30_000, 1);
      await r1.leases.flush();
      expect(await raw.hget(keys.owner, "default/svc/moved")).toBe(`${r1.replicaId}:1`);
      // stream 1 ended; r1's lease table moved "moved" to its stream 2, which ends before that renewal is written
      r1.leases.renewed("default/svc/moved", 30_000, 2);
      r1.leases.renewed("default/svc/once", 30_000, 3); // stream 3 beats once and ends at once
      r1.leases.released(["default/svc/moved"], 200, 2);
      r1.leases.released(["default/svc/once"], 200, 3);
      await r1.leases.releasesSent();
      expect(await raw.hget(keys.owner, "default/svc/once")).toBe(`~${r1.replicaId}:3`);
      await waitFor(() => removed.length === 2, "both instances to go after the grace", 10_000);
      expect(removed.sort()).toEqual(["moved:STREAM_CLOSED", "once:STREAM_CLOSED"]);
    } finally {
      await r1.close();
      await r2.close();
    }
  });

  it("a stream's end gives the grace by the replica's count of the lease, though Redis's deadline lags it (renewals are batched)", async () => {
    const registry = `lagging-${randomUUID().slice(0, 8)}`;
    const keys = redisKeys(registry);
    const k = "default/svc/lagging";
    const r1 = await redisStore(redis.url, { registry, renewIntervalMs: 60_000 });
    const r2 = await redisStore(redis.url, { registry, sweep: true });
    const removed: string[] = [];
    r2.subscribe((c) => c.type === "REMOVED" && removed.push(`${c.instance.instanceId}:${c.reason}`));
    try {
      await r1.put(spec("lagging"), Date.now(), { ttlMs: 300 }); // Redis's deadline: 300 ms from now
      r1.leases.renewed(k, 5000, 1); // the replica's: 5 s (a beat whose renewal is not written yet)
      r1.leases.released([k], 1000, 1);
      await r1.leases.releasesSent();
      expect(await raw.hget(keys.owner, k)).toBe(`~${r1.replicaId}:1`); // in grace, not left to the lagging deadline
      await waitFor(() => removed.length > 0, "the grace to pass");
      expect(removed).toEqual(["lagging:STREAM_CLOSED"]);
    } finally {
      await r1.close();
      await r2.close();
    }
  });

  it("batches renewals: a lease renewed by heartbeats outlives its TTL, then expires once they stop", async () => {
    const registry = `renew-${randomUUID().slice(0, 8)}`;
    const r1 = await redisStore(redis.url, { registry, sweep: true });
    const removed: string[] = [];
    r1.subscribe((c) => c.type === "REMOVED" && removed.push(`${c.instance.instanceId}:${c.reason}`));
    try {
      await r1.put(spec("beating"), Date.now(), { ttlMs: 300 });
      const until = Date.now() + 1000;
      while (Date.now() < until) {
        r1.leases.renewed("default/svc/beating", 300, 1);
        await sleep(100);
      }
      expect(removed).toEqual([]);
      await waitFor(() => removed.length > 0, "expiry after the beats stopped");
      expect(removed).toEqual(["beating:LEASE_EXPIRED"]);
    } finally {
      await r1.close();
    }
  });
});

describe("self-preservation after an outage", () => {
  it("sweeps nothing while the hold set by a replica coming back exists, then expires what is really due", async () => {
    const registry = `hold-${randomUUID().slice(0, 8)}`;
    const keys = redisKeys(registry);
    const store = await redisStore(redis.url, { registry });
    const removed: string[] = [];
    store.subscribe((c) => c.type === "REMOVED" && removed.push(c.instance.instanceId));
    const run = raw as unknown as Record<string, (...a: Array<string | number>) => Promise<unknown>>;
    const sweeper = new Sweeper((name, args) => run[name]!(...keyList(keys), ...args), {
      replicaId: "only",
      lockTtlMs: 2000,
      intervalMs: 1000,
      batch: 100,
      logMax: 10_000,
      registryId: () => store.registryId,
      clock: systemClock,
      logger: silentLogger,
    });
    try {
      await store.put(spec("overdue"), Date.now(), { ttlMs: 100 });
      // What a replica does first when Redis answers again after an outage.
      await run.maxineInit!(...keyList(keys), "unused", 500);
      await sleep(150); // the lease is overdue now
      const rounds: number[] = [];
      for (let r = -2; r === -2; rounds.push(r)) {
        r = await sweeper.tick();
        if (r === -2) expect(await raw.zscore(keys.leases, "default/svc/overdue")).not.toBeNull();
        await sleep(20);
      }
      expect(rounds.filter((r) => r === -2).length).toBeGreaterThan(0); // held back while the hold existed
      expect(rounds.at(-1)).toBe(1); // then the first round without it expired the overdue lease
      await waitFor(() => removed.length > 0, "the removal to reach the mirror");
      expect(removed).toEqual(["overdue"]);
    } finally {
      await sweeper.stop();
      await store.close();
    }
  });
});

describe("the sweeper lock", () => {
  it("never lets two sweepers sweep: a paused holder's stale token is fenced off", async () => {
    const registry = `fence-${randomUUID().slice(0, 8)}`;
    const keys = redisKeys(registry);
    const store: RedisStore = await redisStore(redis.url, { registry });
    const run: ScriptRunner = (name, args) =>
      (raw as unknown as Record<string, (...a: Array<string | number>) => Promise<unknown>>)[name]!(...keyList(keys), ...args);
    const make = (replicaId: string) =>
      new Sweeper(run, { replicaId, lockTtlMs: 150, intervalMs: 1000, batch: 100, logMax: 10_000, registryId: () => store.registryId, clock: systemClock, logger: silentLogger });
    const sweepers = [make("x"), make("y")];
    const fenced: Array<{ who: number; token: number }> = [];
    const tokens = new Set<number>();
    let registered = 0;
    try {
      const stopAt = Date.now() + 2500;
      const writer = (async () => {
        while (Date.now() < stopAt) {
          await store.put(spec(`i-${registered++}`), Date.now(), { ttlMs: 30 });
          await sleep(5);
        }
      })();
      const race = sweepers.map(async (s, who) => {
        let round = 0;
        while (Date.now() < stopAt) {
          await s.tick();
          if (s.token !== undefined) tokens.add(s.token);
          round++;
          if (s.token !== undefined && round % 7 === who * 3) {
            // A pause longer than the lock's TTL (a GC pause, a stalled
            // event loop): the other sweeper takes the lock meanwhile.
            const held = s.token;
            await sleep(300);
            const r = await s.sweep(held);
            if (r === -1) fenced.push({ who, token: held });
            else expect(Number(await raw.get(keys.fence))).toBe(held); // no newer holder: still the latest token
          }
          await sleep(10);
        }
      });
      await Promise.all([writer, ...race]);
      for (const s of sweepers) await s.stop();
      // Let the last leases lapse and sweep them with a third holder.
      const last = make("z");
      await waitFor(async () => (await last.tick(), (await raw.zcard(keys.leases)) === 0), "every lease swept");
      await last.stop();

      const log = (await raw.xrange(keys.log, "-", "+")) as Array<[string, string[]]>;
      const removals = log
        .map(([, f]) => Object.fromEntries(f.flatMap((v, i) => (i % 2 === 0 ? [[v, f[i + 1]]] : []))) as Record<string, string>)
        .filter((f) => f.t === "R");
      const removalTokens = removals.map((f) => Number(f.f));
      // Fencing: removals happen under ever newer tokens, never an older one after a newer one.
      expect(removalTokens).toEqual([...removalTokens].sort((p, q) => p - q));
      // Every instance removed exactly once, each by the lease sweeper.
      expect(new Set(removals.map((f) => f.k)).size).toBe(removals.length);
      expect(removals.length).toBe(registered);
      expect(removals.every((f) => f.why === "LEASE_EXPIRED")).toBe(true);
      // The race really happened: the lock changed hands and stale holders were refused.
      expect(tokens.size).toBeGreaterThanOrEqual(2);
      expect(fenced.length).toBeGreaterThan(0);
    } finally {
      for (const s of sweepers) await s.stop();
      await store.close();
    }
  });
});
