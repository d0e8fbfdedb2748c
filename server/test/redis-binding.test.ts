import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { createMaxineClient, Session } from "@maxine/sdk";
import { BeatResult, HeartbeatRequestSchema } from "@maxine/sdk/gen/maxine/registry/v1/registry_pb";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { redisKeys } from "../src/store/redis-scripts.js";
import { startRedis, type RedisProcess } from "./support/redis-server.js";
import { events, startReplica, stopReplica, watch, type Replica } from "./support/replicas.js";

// The heartbeat binding across replicas (docs/redis.md, "Heartbeat
// binding"): a stream on replica B that beats an instance held by a stream
// on replica A, then ends, must not start the instance's grace; when A dies,
// the session that moves to B keeps the instance and B's stream takes the
// binding once A's has gone stale. Two real server processes on one private
// redis-server, an SDK session, and a plain Connect client as the intruder.

const TTL_MS = 2000;
// Much shorter than the holder's renewal interval (about half a TTL): had the
// intruder's end started the grace, the sweeper would remove the instance
// before the holder's next write to Redis could undo it.
const GRACE = "200ms";

let redis: RedisProcess;
let raw: Redis;
let a: Replica, b: Replica;
let registry: string;

beforeAll(async () => {
  redis = await startRedis();
  raw = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 0 });
  await raw.connect();
  registry = `binding-${randomUUID().slice(0, 8)}`;
  // A replica that did not see the Register renews a lease it first hears of
  // by a beat with the default TTL: the same TTL everywhere keeps the
  // timings of this test those of the session's own lease.
  [a, b] = await Promise.all([0, 1].map(() => startReplica(redis.url, registry, { MAXINE_GRACE: GRACE, MAXINE_LEASE_TTL_DEFAULT: "2s" })));
});
afterAll(async () => {
  raw?.disconnect();
  await Promise.all([a, b].map((r) => stopReplica(r)));
  await redis?.close();
});

async function until(cond: () => boolean | Promise<boolean>, what: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("the heartbeat binding across two replicas", () => {
  it("a stream on B that beats A's instance once and ends removes nothing; when A is SIGKILLed the session's stream on B takes the binding", async () => {
    const key = "default/bound/bound-1";
    const owner = () => raw.hget(redisKeys(registry).owner, key);
    const wb = watch(b.client, { services: ["bound"] });
    const session = new Session(createMaxineClient({ baseUrl: [a.server.url, b.server.url] }));
    const reconnects: unknown[] = [];
    session.on("reconnect", (info) => reconnects.push(info));
    try {
      await wb.until(/^end@/);
      await session.register({ service: "bound", instanceId: "bound-1", host: "10.0.0.1", port: 1 }, { ttlMs: TTL_MS });
      await wb.until(/ADDED bound-1@/);
      await until(async () => /^[^~].*:\d+$/.test((await owner()) ?? ""), "the session's stream on A to hold the binding", 5000);
      const held = await owner();

      // The intruder: one beat on B for the same instance; its stream stays
      // open for ten of B's renew intervals (so B writes the renewal to
      // Redis), then ends.
      const held500ms = sleep(500);
      const beats = (async function* () {
        yield create(HeartbeatRequestSchema, { sequence: 1n, beats: [{ key: { service: "bound", instanceId: "bound-1" } }] });
        await held500ms; // the request side stays open until then
      })();
      let result: BeatResult | undefined;
      let next: string | null = null;
      for await (const r of b.client.heartbeat(beats)) {
        result = r.acks[0]?.result;
        await held500ms;
        next = await raw.hget(redisKeys(registry).next, key); // B's renewal reached Redis
        break; // ends the stream
      }
      expect(result).toBe(BeatResult.RENEWED);
      expect(next).toMatch(/^\d+ [^~].*:\d+$/);
      expect(next).not.toContain(held!);
      await sleep(1500); // well past the grace and several sweeps: a sleep that proves nothing is removed
      expect(events(wb.seen)).toEqual([expect.stringMatching(/^ADDED bound-1@\d+$/)]);
      expect(await owner()).toBe(held);
      for (const r of [a, b]) expect((await r.client.discover({ service: "bound" })).instance?.instanceId).toBe("bound-1");

      // A dies without a word: the session fails over to B, whose stream
      // only extends the lease until A's binding goes stale, then takes it.
      process.kill(a.server.child.pid!, "SIGKILL");
      await a.server.kill(); // waits for the exit (the process is already gone)
      await until(() => reconnects.length > 0, "the session's reconnect to B", 5000);
      await until(async () => (await owner()) !== held, "B's stream to take the binding", TTL_MS + 3000);
      expect(await owner()).toMatch(/^[^~].*:\d+$/);
      await sleep(TTL_MS + 500); // past the TTL and the grace: B's stream holds the instance (a sleep that proves it is NOT removed)
      expect(events(wb.seen)).toEqual([expect.stringMatching(/^ADDED bound-1@\d+$/)]);
      expect((await b.client.discover({ service: "bound" })).instance?.instanceId).toBe("bound-1");

      await session.close(); // deregisters
      await wb.until(/REMOVED bound-1@\d+:DEREGISTERED/, 5000);
      expect(await raw.hlen(redisKeys(registry).held)).toBe(0);
    } finally {
      await session.close();
      await wb.close();
    }
  });
});
