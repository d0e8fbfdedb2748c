import { randomUUID } from "node:crypto";
import { createServer } from "node:http";
import { CheckStatus, ServingStatus } from "@maxine/sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startRedis, type RedisProcess } from "./support/redis-server.js";
import { startReplica, stopReplica, watch, type Replica } from "./support/replicas.js";

// Active health checks on Redis replicas (three server processes on one
// redis-server this test starts): each check runs on exactly one replica at
// a time, and when that replica is SIGKILLed another takes it over within
// one interval plus the grace. Proved by counting the probes that reach the
// target (a node:http server on 127.0.0.1): one per interval, give or take
// one, before and after the kill, never two replicas at once. The check's
// result lives in Redis, so the instance stays SERVING through the kill.
// Registered through the TypeScript SDK's generated types (health_check,
// check_result).

const INTERVAL_MS = 1_000;
const GRACE_MS = 1_000;

let redis: RedisProcess;
let replicas: Replica[] = [];
const hits: number[] = [];
const target = createServer((req, res) => {
  if (req.url === "/healthz") hits.push(Date.now());
  res.writeHead(200).end("ok");
});
let targetPort = 0;

beforeAll(async () => {
  redis = await startRedis();
  const registry = `checks-${randomUUID().slice(0, 8)}`;
  replicas = await Promise.all([0, 1, 2].map(() => startReplica(redis.url, registry, { MAXINE_GRACE: `${GRACE_MS}ms`, MAXINE_CHECK_INTERVAL_MIN: "100ms" })));
  targetPort = await new Promise<number>((resolve) => target.listen(0, "127.0.0.1", () => resolve((target.address() as { port: number }).port)));
}, 30_000);
afterAll(async () => {
  await Promise.all(replicas.map((r) => stopReplica(r)));
  await new Promise<void>((r) => target.close(() => r()));
  await redis?.close();
});

async function checksRun(r: Replica): Promise<number> {
  const text = await (await fetch(`${r.server.url}/metrics`)).text();
  return Number(/^maxine_checks (\d+)$/m.exec(text)![1]);
}

async function until(cond: () => boolean | Promise<boolean>, what: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const inWindow = (from: number, to: number) => hits.filter((t) => t >= from && t < to).length;

describe("health checks on Redis replicas", () => {
  it("runs each check on exactly one replica, and another takes it over within an interval plus the grace after a SIGKILL", async () => {
    const [a, b, c] = replicas as [Replica, Replica, Replica];
    const w = watch(c.client, { services: ["checked"] });
    try {
      await w.until(/^end@/);
      const reg = await a.client.register({
        instance: {
          service: "checked",
          instanceId: "k-1",
          host: "127.0.0.1",
          port: targetPort,
          healthCheck: { http: { path: "/healthz" }, interval: { seconds: BigInt(INTERVAL_MS / 1000), nanos: 0 }, timeout: { seconds: 0n, nanos: 500_000_000 } },
        },
      });
      expect(reg.instance?.checkResult?.status).toBe(CheckStatus.PENDING);
      expect(reg.leaseExpiresAt).toBeUndefined();
      await w.until(/UPDATED k-1@/, 5_000); // PASSING
      const stored = await b.client.discover({ service: "checked" });
      expect(stored.instance?.checkResult).toMatchObject({ status: CheckStatus.PASSING, message: "HTTP 200 from /healthz" });
      expect(stored.instance?.status).toBe(ServingStatus.SERVING);

      // exactly one replica runs it
      const counts = await Promise.all(replicas.map(checksRun));
      expect(counts.sort()).toEqual([0, 0, 1]);
      const owner = replicas[(await Promise.all(replicas.map(checksRun))).indexOf(1)]!;

      // one probe per interval (give or take one) over five intervals
      const t0 = Date.now();
      await new Promise((r) => setTimeout(r, 5 * INTERVAL_MS));
      const before = inWindow(t0, t0 + 5 * INTERVAL_MS);
      expect(before).toBeGreaterThanOrEqual(4);
      expect(before).toBeLessThanOrEqual(6);

      // an unchanged re-registration through another replica changes nothing (the result stored in Redis is kept)
      const seenBefore = w.seen.length;
      await b.client.register({ instance: { service: "checked", instanceId: "k-1", host: "127.0.0.1", port: targetPort, healthCheck: reg.instance!.healthCheck! } });

      // SIGKILL the owner: another replica takes the check within one interval plus the grace
      const killedAt = Date.now();
      await owner.server.kill();
      await until(() => hits.some((t) => t > killedAt), "a probe from another replica", INTERVAL_MS + GRACE_MS + 2_000);
      const firstAfter = hits.find((t) => t > killedAt)!;
      expect(firstAfter - killedAt).toBeLessThanOrEqual(INTERVAL_MS + GRACE_MS + 500); // 500 ms: a loaded machine's scheduling
      const survivors = replicas.filter((r) => r !== owner);
      await until(async () => (await Promise.all(survivors.map(checksRun))).sort().join() === "0,1", "one survivor runs the check", 5_000);

      // and again one per interval
      const t1 = Date.now();
      await new Promise((r) => setTimeout(r, 5 * INTERVAL_MS));
      const after = inWindow(t1, t1 + 5 * INTERVAL_MS);
      expect(after).toBeGreaterThanOrEqual(4);
      expect(after).toBeLessThanOrEqual(6);
      // never two replicas probing together: no two probes closer than a fifth of the interval
      const gaps = hits.slice(1).map((t, i) => t - hits[i]!);
      expect(Math.min(...gaps)).toBeGreaterThan(INTERVAL_MS / 5);

      // the instance stayed: no REMOVED, no status change through the kill (the re-registration made no event)
      expect(w.seen.slice(seenBefore).filter((s) => /k-1/.test(s))).toEqual([]);
      const d = await survivors[0]!.client.discover({ service: "checked" });
      expect(d.instance?.checkResult?.status).toBe(CheckStatus.PASSING);
    } finally {
      await w.close();
    }
  }, 60_000);
});
