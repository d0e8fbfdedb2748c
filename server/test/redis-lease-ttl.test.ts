import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { BeatResult, HeartbeatRequestSchema, type HeartbeatRequest, type HeartbeatResponse } from "@maxine/sdk/gen/maxine/registry/v1/registry_pb";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { redisKeys } from "../src/store/redis-scripts.js";
import { startRedis, type RedisProcess } from "./support/redis-server.js";
import { startReplica, stopReplica, type Replica } from "./support/replicas.js";

// A lease keeps the TTL it was registered with on every replica: a session
// that registered on A and beats on B (it failed over, or B took its stream
// after a reconnect) renews for that TTL, not MAXINE_LEASE_TTL_DEFAULT (10 s
// here), in Redis, in B's answers and in Discover include_all on B.

const LONG_MS = 60_000;
const SHORT_MS = 5_000;
let redis: RedisProcess;
let raw: Redis;
let registry = "";
let a: Replica, b: Replica;

beforeAll(async () => {
  redis = await startRedis();
  raw = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 0 });
  await raw.connect();
  registry = `ttl-${randomUUID().slice(0, 8)}`;
  [a, b] = await Promise.all([0, 1].map(() => startReplica(redis.url, registry, { MAXINE_LEASE_TTL_DEFAULT: "10s" })));
});
afterAll(async () => {
  await Promise.all([a, b].map((r) => stopReplica(r)));
  raw?.disconnect();
  await redis?.close();
});

const ms = (t: Timestamp | undefined): number => Number(t!.seconds) * 1000 + Math.floor(t!.nanos / 1e6);

async function redisNow(): Promise<number> {
  const [s, us] = await raw.time();
  return Number(s) * 1000 + Math.floor(Number(us) / 1000);
}

async function until(cond: () => Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe("a lease renewed on another replica than the one it was registered on", () => {
  it("keeps its registered TTL (60 s and 5 s, the default being 10 s): in Redis, in the beat's answer and in Discover include_all", async () => {
    const ttls = { long: LONG_MS, short: SHORT_MS };
    for (const [id, ttl] of Object.entries(ttls)) {
      await a.client.register({ instance: { service: "ttl", instanceId: id, host: "10.0.0.1", port: 1 }, leaseTtl: { seconds: BigInt(ttl / 1000), nanos: 0 } });
    }
    // The session moved to b: b's lease table has never seen these leases.
    let answered: (res: HeartbeatResponse) => void = () => undefined;
    const first = new Promise<HeartbeatResponse>((resolve) => (answered = resolve));
    const ac = new AbortController();
    const open = new Promise<void>((resolve) => ac.signal.addEventListener("abort", () => resolve()));
    const beats = (async function* (): AsyncGenerator<HeartbeatRequest> {
      yield create(HeartbeatRequestSchema, { sequence: 1n, beats: Object.keys(ttls).map((instanceId) => ({ key: { service: "ttl", instanceId } })) });
      await open;
    })();
    const stream = (async () => {
      for await (const res of b.client.heartbeat(beats, { signal: ac.signal })) answered(res);
    })().catch(() => undefined);
    try {
      const sent = Date.now();
      const res = await first;
      const got = Date.now();
      const keys = redisKeys(registry);
      for (const [i, [id, ttl]] of Object.entries(ttls).entries()) {
        const ack = res.acks[i]!;
        expect(ack.result).toBe(BeatResult.RENEWED);
        // the answer's deadline is the beat's time plus the registered TTL (the clocks are the same host's)
        expect(ms(ack.leaseExpiresAt)).toBeGreaterThanOrEqual(sent + ttl - 1);
        expect(ms(ack.leaseExpiresAt)).toBeLessThanOrEqual(got + ttl + 1);
        // b's renewal reached Redis (b's stream holds the binding): the deadline there is for the registered TTL too
        const key = `default/ttl/${id}`;
        await until(async () => (await raw.hget(keys.owner, key)) !== null, `b's renewal of ${id} to reach Redis`);
        const left = Number(await raw.zscore(keys.leases, key)) - (await redisNow());
        expect(left).toBeLessThanOrEqual(ttl);
        expect(left).toBeGreaterThan(ttl === LONG_MS ? 30_000 : 0);
      }
      const d = await b.client.discover({ service: "ttl", includeAll: true });
      expect(d.instances.map((i) => i.instanceId)).toEqual(["long", "short"]);
      expect(d.instances.map((i) => ms(i.leaseExpiresAt))).toEqual(res.acks.map((k) => ms(k.leaseExpiresAt)));
    } finally {
      ac.abort();
      await stream;
    }
  }, 60_000);
});
