import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { BeatResult, HeartbeatRequestSchema, type HeartbeatRequest } from "@maxine/sdk/gen/maxine/registry/v1/registry_pb";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { redisKeys } from "../src/store/redis-scripts.js";
import { startRedis, type RedisProcess } from "./support/redis-server.js";
import { events, startReplica, stopReplica, watch, type Replica } from "./support/replicas.js";

// A replica stopped with SIGTERM gives its heartbeat streams' instances the
// grace (MAXINE_GRACE), as a stream that ends on a running replica does:
// another replica removes them (STREAM_CLOSED) once it passes, unless their
// sessions beat elsewhere first. A replica killed outright can say nothing:
// its instances wait for their TTL (the control). Every wait is on a
// condition with a bound: the removal's reason, not its timing, tells the
// grace from the TTL, and the control waits for a marker instance whose
// lease ends no earlier than a grace started at the kill would have.

const TTL_S = 60n;
const WAIT_MS = 20_000; // well under the 60 s TTL: an instance removed within it went after the grace
let redis: RedisProcess;
let raw: Redis;
let registry = "";
let a: Replica, b: Replica, c: Replica;

beforeAll(async () => {
  redis = await startRedis();
  raw = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 0 });
  await raw.connect();
  registry = `grace-${randomUUID().slice(0, 8)}`;
  [a, b, c] = await Promise.all([0, 1, 2].map(() => startReplica(redis.url, registry, { MAXINE_GRACE: "1s" })));
});
afterAll(async () => {
  await Promise.all([a, b, c].map((r) => stopReplica(r)));
  raw?.disconnect();
  await redis?.close();
});

/** beating registers instanceId on r with a 60 s lease and binds it to a heartbeat stream that stays open (it never reconnects). */
async function beating(r: Replica, instanceId: string): Promise<{ ended: Promise<unknown> }> {
  await r.client.register({ instance: { service: "grace", instanceId, host: "10.0.0.1", port: 1 }, leaseTtl: { seconds: TTL_S, nanos: 0 } });
  let first: (result: BeatResult | undefined) => void = () => undefined;
  const acked = new Promise<BeatResult | undefined>((resolve) => (first = resolve));
  const open = new Promise<void>(() => undefined); // the request side never ends by itself
  const beats = (async function* (): AsyncGenerator<HeartbeatRequest> {
    yield create(HeartbeatRequestSchema, { sequence: 1n, beats: [{ key: { service: "grace", instanceId } }] });
    await open;
  })();
  const ended = (async () => {
    for await (const res of r.client.heartbeat(beats)) first(res.acks[0]?.result);
  })().catch((err: unknown) => err);
  expect(await acked).toBe(BeatResult.RENEWED);
  return { ended };
}

describe("Redis replicas stopped under open heartbeat streams", () => {
  it("SIGTERM: the instances go after the grace (STREAM_CLOSED), not their 60 s TTL; SIGKILL (control): they stay", async () => {
    const wb = watch(b.client, { services: ["grace"] });
    try {
      await wb.until(/^end@/);
      // SIGTERM comes right after the first beat's answer: the stream's renewal may not have reached Redis yet
      const onA = await beating(a, "on-a");
      const stopped = Date.now();
      expect(await a.server.stop()).toBe(0); // drains: streams end with UNAVAILABLE, their releases reach Redis before it disconnects
      await onA.ended;
      await wb.until(/^REMOVED on-a@\d+/, WAIT_MS);
      expect(events(wb.seen).filter((e) => e.includes("on-a"))).toEqual([expect.stringMatching(/^ADDED on-a@\d+$/), expect.stringMatching(/^REMOVED on-a@\d+:STREAM_CLOSED$/)]);
      expect(Date.now() - stopped).toBeLessThan(Number(TTL_S) * 1000);
      expect(a.server.logs.some((l) => l.includes('"msg":"drained"'))).toBe(true);

      await beating(c, "on-c");
      const key = "default/grace/on-c";
      // c's stream holds the binding in Redis (its renewal was flushed)
      await until(async () => /^[^~].*:\d+$/.test((await raw.hget(redisKeys(registry).owner, key)) ?? ""), "c's stream to hold on-c's binding in Redis");
      await c.server.kill(); // SIGKILL: no release reaches Redis
      // marker's 1 s lease (the grace) starts after the kill: once the sweeper removed it, a grace started at the kill has passed too
      await b.client.register({ instance: { service: "grace", instanceId: "marker", host: "10.0.0.2", port: 1 }, leaseTtl: { seconds: 1n, nanos: 0 } });
      await wb.until(/^REMOVED marker@\d+:LEASE_EXPIRED$/, WAIT_MS);
      expect(events(wb.seen).filter((e) => e.includes("on-c"))).toEqual([expect.stringMatching(/^ADDED on-c@\d+$/)]);
      expect((await b.client.discover({ service: "grace" })).instance?.instanceId).toBe("on-c");
      expect(await raw.hget(redisKeys(registry).owner, key)).not.toMatch(/^~/); // never released into grace
    } finally {
      await wb.close();
    }
  }, 60_000);
});

describe("a replica stopped while Redis does not answer", () => {
  it("still drains and exits 0: the releases it waits for are bounded by MAXINE_REDIS_COMMAND_TIMEOUT", async () => {
    const frozen = await startRedis();
    let d: Replica | undefined;
    try {
      d = await startReplica(frozen.url, `frozen-${randomUUID().slice(0, 8)}`, { MAXINE_GRACE: "1s", MAXINE_REDIS_COMMAND_TIMEOUT: "500ms" });
      const onD = await beating(d, "on-d");
      frozen.pause(); // SIGSTOP: connections stay open, nothing answers
      let timer: NodeJS.Timeout | undefined;
      const code = await Promise.race([
        d.server.stop(),
        new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error("the replica did not exit within 15 s of SIGTERM while Redis was frozen")), 15_000))),
      ]).finally(() => clearTimeout(timer));
      expect(code).toBe(0);
      await onD.ended;
      expect(d.server.logs.some((l) => l.includes('"msg":"drained"'))).toBe(true);
    } finally {
      frozen.resume();
      await stopReplica(d);
      await frozen.close();
    }
  }, 60_000);
});

async function until(cond: () => Promise<boolean>, what: string, timeoutMs = WAIT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
