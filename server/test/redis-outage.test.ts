import { randomUUID } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import { createMaxineClient, Session, Watcher, type MaxineClient } from "@maxine/sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startRedis, type RedisProcess } from "./support/redis-server.js";
import { startReplica, stopReplica, type Replica } from "./support/replicas.js";

// Redis stops for several seconds, then comes back EMPTY: replicas keep
// serving reads from their mirrors (health degraded), writes fail fast with
// a retryable UNAVAILABLE, heartbeats go on; afterwards every live instance
// (those with leases, and one registered with an active check, which has
// none) is back in the new registry and every watcher converges on one state.

let redis: RedisProcess;
let a: Replica, b: Replica, c: Replica;
const sessions: Session[] = [];
const watchers: Watcher[] = [];

beforeAll(async () => {
  redis = await startRedis();
  const registry = `outage-${randomUUID().slice(0, 8)}`;
  const env = { MAXINE_GRACE: "1s", MAXINE_REDIS_RECOVERY_WINDOW: "2s", MAXINE_REDIS_COMMAND_TIMEOUT: "500ms" };
  [a, b, c] = await Promise.all([0, 1, 2].map(() => startReplica(redis.url, registry, env)));
});
afterAll(async () => {
  for (const w of watchers) await w.close();
  for (const s of sessions) await s.close();
  await Promise.all([a, b, c].map((r) => stopReplica(r)));
  await redis?.close();
});

function sdkClient(r: Replica): MaxineClient {
  return createMaxineClient({ baseUrl: r.server.url });
}

async function until(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function health(r: Replica): Promise<{ status: string; registryId: string }> {
  const res = await fetch(`${r.server.url}/healthz`);
  return (await res.json()) as { status: string; registryId: string };
}

const ids = (w: Watcher) => w.instances("outage").map((i) => i.instanceId).sort();
const inst = (id: string) => ({ service: "outage", instanceId: id, host: "10.0.0.9", port: 80 });

describe("Redis outage", () => {
  it("serves reads, fails writes with UNAVAILABLE, then restores every live instance into an empty Redis", async () => {
    const sa = new Session(sdkClient(a));
    const sb = new Session(sdkClient(b));
    sessions.push(sa, sb);
    const reconnects: unknown[] = [];
    for (const s of [sa, sb]) s.on("reconnect", (info) => reconnects.push(info));
    await sa.register(inst("live-a"), { ttlMs: 2000 });
    await sb.register(inst("live-b"), { ttlMs: 2000 });
    await c.client.register({ instance: inst("unary-c"), leaseTtl: { seconds: 60n, nanos: 0 } });
    // registered with an active check: no lease for any replica to re-assert (it probes 127.0.0.1:9, refused: FAILING, kept)
    await c.client.register({ instance: { ...inst("check-c"), host: "127.0.0.1", port: 9, healthCheck: { tcp: {} } } });
    const wb = new Watcher(sdkClient(b), { services: "outage" });
    const wc = new Watcher(sdkClient(c), { services: "outage" });
    watchers.push(wb, wc);
    await Promise.all([wb.ready(), wc.ready()]);
    const all = ["check-c", "live-a", "live-b", "unary-c"];
    await until(() => ids(wb).length === 4 && ids(wc).length === 4, "both watchers to hold the four instances");
    const before = await health(a);
    expect(before.status).toBe("serving");

    await redis.stop();
    await until(async () => (await health(a)).status === "degraded", "A to report degraded");

    // Reads: from each replica's mirror.
    for (const r of [a, b, c]) {
      const d = await r.client.discover({ service: "outage", includeAll: true });
      expect(d.instances.map((i) => i.instanceId).sort()).toEqual(all);
    }
    // Writes: fast, retryable UNAVAILABLE.
    const started = Date.now();
    const err = await a.client.register({ instance: inst("new-during-outage") }).then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(err?.code).toBe(Code.Unavailable);
    expect(err?.rawMessage).toMatch(/^store: Redis is unreachable .*retry/);
    expect(Date.now() - started).toBeLessThan(2000);

    // Several seconds down, longer than the sessions' TTL: heartbeats are accepted locally meanwhile
    // (the outage's length is the scenario, and the sleep proves no session reconnects and nothing is removed).
    await new Promise((r) => setTimeout(r, 3000));
    expect(reconnects).toEqual([]);
    expect(ids(wb)).toEqual(all);

    await redis.start(); // empty: a new registry
    await until(async () => {
      const hs = await Promise.all([a, b, c].map(health));
      return hs.every((h) => h.status === "serving" && h.registryId !== before.registryId && h.registryId === hs[0]!.registryId);
    }, "every replica to re-sync onto the new registry");
    await until(() => ids(wb).join() === all.join() && ids(wc).join() === all.join(), "both watchers to converge on every live instance");
    for (const r of [a, b, c]) {
      const d = await r.client.discover({ service: "outage", includeAll: true });
      expect(d.instances.map((i) => i.instanceId).sort()).toEqual(all);
    }
    expect(wb.registryId).toBe(wc.registryId);
    expect(wb.registryId).not.toBe(before.registryId);

    // No mass expiry afterwards: past the recovery window and the TTL, everything is still there (a sleep that proves it).
    await new Promise((r) => setTimeout(r, 3000));
    expect(ids(wb)).toEqual(all);
    expect(ids(wc)).toEqual(all);
    expect(wb.revision).toBe(wc.revision);
    // Writes work again.
    await b.client.register({ instance: inst("after"), leaseTtl: { seconds: 60n, nanos: 0 } });
    await until(() => ids(wc).includes("after"), "a write after the outage to reach C's watcher");
  });

  it("does not mass-expire after Redis was frozen past every lease's TTL with its data intact", async () => {
    const wc = watchers[1]!;
    const removed: string[] = [];
    wc.on("removed", (change) => removed.push(change.instance.instanceId));
    const all = ["after", "check-c", "live-a", "live-b", "unary-c"];
    expect(ids(wc)).toEqual(all);
    redis.pause();
    try {
      await until(async () => (await health(b)).status === "degraded", "B to notice the frozen Redis", 8000);
      const err = await c.client.register({ instance: inst("frozen") }).then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      );
      expect(err?.code).toBe(Code.Unavailable);
      await new Promise((r) => setTimeout(r, 3000)); // frozen past the sessions' 2 s TTL by Redis's clock: the freeze's length is the scenario
    } finally {
      redis.resume();
    }
    await until(async () => (await Promise.all([a, b, c].map(health))).every((h) => h.status === "serving"), "every replica back in sync");
    await new Promise((r) => setTimeout(r, 3000)); // past the recovery window and another TTL: a sleep that proves nothing is removed
    expect(removed).toEqual([]);
    expect(ids(wc)).toEqual(all);
    const d = await a.client.discover({ service: "outage", includeAll: true });
    expect(d.instances.map((i) => i.instanceId).sort()).toEqual(all);
  });
});
