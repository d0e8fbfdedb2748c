import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { BeatResult, HeartbeatRequestSchema, type HeartbeatRequest } from "@maxine/sdk/gen/maxine/registry/v1/registry_pb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startRedis, type RedisProcess } from "./support/redis-server.js";
import { events, startReplica, stopReplica, watch, type Replica } from "./support/replicas.js";

// A replica stopped with SIGTERM gives its heartbeat streams' instances the
// grace (MAXINE_GRACE), as a stream that ends on a running replica does:
// another replica removes them once it passes, unless their sessions beat
// elsewhere first. A replica killed outright can say nothing: its instances
// wait for their TTL (the control).

const TTL_S = 30n;
let redis: RedisProcess;
let a: Replica, b: Replica, c: Replica;

beforeAll(async () => {
  redis = await startRedis();
  const registry = `grace-${randomUUID().slice(0, 8)}`;
  [a, b, c] = await Promise.all([0, 1, 2].map(() => startReplica(redis.url, registry, { MAXINE_GRACE: "1s" })));
});
afterAll(async () => {
  await Promise.all([a, b, c].map((r) => stopReplica(r)));
  await redis?.close();
});

/** beating registers instanceId on r with a 30 s lease and binds it to a heartbeat stream that stays open (it never reconnects). */
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
  it("SIGTERM: the instances go after the grace, not their 30 s TTL; SIGKILL (control): they stay", async () => {
    const wb = watch(b.client, { services: ["grace"] });
    try {
      await wb.until(/^end@/);
      const onA = await beating(a, "on-a");
      await beating(c, "on-c");
      await wb.until(/ADDED on-c@/);

      const stopped = Date.now();
      expect(await a.server.stop()).toBe(0); // SIGTERM: drains, streams end with UNAVAILABLE
      await onA.ended;
      await wb.until(/REMOVED on-a@\d+/, 6000);
      const removedAfterMs = Date.now() - stopped;
      expect(removedAfterMs).toBeLessThan(Number(TTL_S) * 1000 / 3);

      await c.server.kill(); // SIGKILL: no release reaches Redis
      await new Promise((r) => setTimeout(r, 4000)); // well past the 1 s grace and many sweeps
      expect(events(wb.seen).filter((e) => e.includes("on-c"))).toEqual([expect.stringMatching(/^ADDED on-c@\d+$/)]);
      expect((await b.client.discover({ service: "grace" })).instance?.instanceId).toBe("on-c");
    } finally {
      await wb.close();
    }
  }, 30_000);
});
