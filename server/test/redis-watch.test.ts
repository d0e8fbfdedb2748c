import { randomUUID } from "node:crypto";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { matches } from "../src/domain/filter.js";
import type { InstanceSpec } from "../src/domain/instance.js";
import { silentLogger } from "../src/domain/logger.js";
import type { RedisStore } from "../src/store/redis-store.js";
import type { Change } from "../src/store/store.js";
import { WatchHub, type WatchSettings } from "../src/watch/hub.js";
import { WATCH } from "./support/core.js";
import { FakeClock } from "./support/fake-clock.js";
import { startRedis, type RedisProcess } from "./support/redis-server.js";
import { redisStore } from "./support/redis-store.js";
import { WatchClient, type Scope } from "./support/watch-client.js";

// The watch checks of watch-properties.test.ts in Redis mode: two replicas
// (each a RedisStore mirroring the shared stream, with its own hub and
// history) on a private redis-server; writes go through either, and a
// watcher that disconnects or is ended by its overflow policy resumes on
// the other replica.

let redis: RedisProcess;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.close();
});

const NO_FILTER = { tags: [], version: "", zone: "", metadata: {} };
const SCOPES: readonly Scope[] = [
  { services: [], filter: NO_FILTER },
  { services: ["a"], filter: NO_FILTER },
  { services: [], filter: { ...NO_FILTER, tags: ["t"] } },
];

function spec(id: number, service: string, tagged: boolean, port: number): InstanceSpec {
  return { namespace: "default", service, instanceId: `i${id}`, host: "10.0.0.1", port, version: "", zone: "", tags: tagged ? ["t"] : [], metadata: {}, weight: 100, status: "SERVING", owner: "anonymous" };
}

async function until(cond: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

type Action =
  | { readonly kind: "put"; readonly via: number; readonly id: number; readonly service: "a" | "b"; readonly tagged: boolean; readonly port: number }
  | { readonly kind: "remove"; readonly via: number; readonly id: number; readonly service: "a" | "b" }
  | { readonly kind: "read"; readonly client: number; readonly n: number }
  | { readonly kind: "move"; readonly client: number };

const action: fc.Arbitrary<Action> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant("put" as const), via: fc.nat(1), id: fc.nat(4), service: fc.constantFrom("a" as const, "b" as const), tagged: fc.boolean(), port: fc.integer({ min: 1, max: 3 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("remove" as const), via: fc.nat(1), id: fc.nat(4), service: fc.constantFrom("a" as const, "b" as const) }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant("read" as const), client: fc.nat(SCOPES.length - 1), n: fc.integer({ min: 1, max: 6 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("move" as const), client: fc.nat(SCOPES.length - 1) }) },
);

const settings: fc.Arbitrary<Partial<WatchSettings>> = fc.record({
  maxQueue: fc.integer({ min: 1, max: 5 }),
  historySize: fc.integer({ min: 0, max: 12 }),
  overflow: fc.constantFrom("reset" as const, "close" as const),
  snapshotChunk: fc.integer({ min: 1, max: 3 }),
});

describe("watches in Redis mode (two replicas on one redis-server)", () => {
  it("resume on the other replica: ordered, gap-free or explicitly reset, and equal to the registry at the end", async () => {
    await fc.assert(
      fc.asyncProperty(settings, fc.array(action, { minLength: 15, maxLength: 50 }), async (watch, actions) => {
        const registry = `watch-${randomUUID().slice(0, 8)}`;
        const stores: RedisStore[] = [await redisStore(redis.url, { registry }), await redisStore(redis.url, { registry })];
        const hubs = stores.map((s) => new WatchHub(s, new FakeClock(), silentLogger, { ...WATCH, ...watch }));
        const log: Change[] = [];
        const unsubscribe = stores[0]!.subscribe((c) => log.push(c));
        const clients = SCOPES.map((scope, i) => new WatchClient(hubs[i % 2]!, scope, log));
        const settled = (): Promise<void> => until(() => stores[0]!.revision() === stores[1]!.revision(), "both replicas at the same revision");
        try {
          for (const a of actions) {
            switch (a.kind) {
              case "put":
                await stores[a.via]!.put(spec(a.id, a.service, a.tagged, a.port), Date.now(), { ttlMs: 60_000 });
                await settled();
                break;
              case "remove":
                await stores[a.via]!.remove({ namespace: "default", service: a.service, instanceId: `i${a.id}` }, "DEREGISTERED");
                await settled();
                break;
              case "read":
                clients[a.client]!.read(a.n);
                break;
              case "move": {
                const c = clients[a.client]!;
                c.disconnect();
                c.hub = c.hub === hubs[0] ? hubs[1]! : hubs[0]!;
                break;
              }
            }
          }
          for (const c of clients) {
            c.read(Infinity);
            if (!c.open) c.read(Infinity);
            expect(c.open).toBe(true);
            expect(c.state).toEqual(truth(stores[0]!, c.scope));
            c.disconnect();
          }
        } finally {
          unsubscribe();
          for (const h of hubs) h.close();
          await Promise.all(stores.map((s) => s.close()));
        }
      }),
      { numRuns: 40 },
    );
  }, 120_000);

  it("a resume on the other replica with a backlog past the queue replays exactly (issue 14, section 2)", async () => {
    const registry = `watch-${randomUUID().slice(0, 8)}`;
    const [a, b] = [await redisStore(redis.url, { registry }), await redisStore(redis.url, { registry })];
    const settings = { ...WATCH, maxQueue: 16, historySize: 1_000, overflow: "close" as const };
    const [hubA, hubB] = [new WatchHub(a, new FakeClock(), silentLogger, settings), new WatchHub(b, new FakeClock(), silentLogger, settings)];
    const log: Change[] = [];
    const unsubscribe = a.subscribe((c) => log.push(c));
    try {
      const client = new WatchClient(hubA, SCOPES[0]!, log);
      await a.put(spec(0, "a", false, 1), Date.now(), { ttlMs: 60_000 });
      client.read(Infinity);
      client.disconnect();
      for (let i = 1; i <= 40; i++) await a.put(spec(i, "a", false, 1), Date.now(), { ttlMs: 60_000 });
      await until(() => b.revision() === a.revision(), "replica B at A's revision");
      client.hub = hubB;
      client.read(Infinity);
      expect(client.resets).toBe(0);
      expect(client.state).toEqual(truth(a, SCOPES[0]!));
      expect(client.state.size).toBe(41);
      client.disconnect();
    } finally {
      unsubscribe();
      hubA.close();
      hubB.close();
      await Promise.all([a.close(), b.close()]);
    }
  });
});

function truth(store: RedisStore, scope: Scope): Map<string, number> {
  const out = new Map<string, number>();
  for (const [name, view] of store.services("default")) {
    if (scope.services.length > 0 && !scope.services.includes(name)) continue;
    for (const r of view.sorted()) if (matches(scope.filter, r)) out.set(`${name}/${r.instanceId}`, r.modRevision);
  }
  return new Map([...out].sort());
}
