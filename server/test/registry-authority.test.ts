import { EventEmitter } from "node:events";
import { deserialize } from "node:v8";
import { describe, expect, it } from "vitest";
import { silentLogger } from "../src/domain/logger.js";
import type { InstanceSpec } from "../src/domain/instance.js";
import { PrimaryStore } from "../src/cluster/primary-store.js";
import { PrimaryConfigStore } from "../src/cluster/primary-config-store.js";
import { MAX_BATCH } from "../src/cluster/messages.js";
import { WorkerLink } from "../src/cluster/worker-link.js";
import type { Change } from "../src/store/store.js";
import { FakeClock } from "./support/fake-clock.js";
import { connectWorker, testAuthority } from "./support/primary-store.js";

// The registry in the cluster primary (cluster/registry-authority.ts) and the
// workers' stores (cluster/primary-store.ts), in one process over a fake
// channel that copies every message with the v8 serializer and delivers it
// in a later turn: the feed, leases held by workers' streams, what a
// worker's fault can and cannot do, and the bound on a slow worker.

const spec = (id: string, over: Partial<InstanceSpec> = {}): InstanceSpec => ({
  namespace: "default",
  service: "pay",
  instanceId: id,
  owner: "anonymous",
  host: "10.0.0.1",
  port: 8080,
  version: "",
  zone: "",
  tags: [],
  metadata: {},
  weight: 100,
  status: "SERVING",
  ...over,
});
const key = (id: string) => ({ namespace: "default", service: "pay", instanceId: id });
const turn = () => new Promise((r) => setImmediate(r));
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await turn();
}

async function twoWorkers(clock = new FakeClock()) {
  const authority = testAuthority({ clock, graceMs: 300 });
  const w1 = connectWorker(authority, 1);
  const w2 = connectWorker(authority, 2);
  const [a, b] = await Promise.all([
    PrimaryStore.connect({ link: w1.link, workerId: "1", clock, logger: silentLogger }),
    PrimaryStore.connect({ link: w2.link, workerId: "2", clock, logger: silentLogger }),
  ]);
  return { authority, clock, w1, w2, a, b };
}

describe("the registry in the primary", () => {
  it("a write through one worker reaches every worker with the same revision, and resolves once its own worker holds it", async () => {
    const { authority, a, b } = await twoWorkers();
    const seenB: Change[] = [];
    b.subscribe((c) => seenB.push(c));
    const c = await a.put(spec("x1"), 1000, { ttlMs: 10_000 });
    expect(c).toMatchObject({ type: "ADDED", revision: 1 });
    expect(a.get(key("x1"))).toBe(c!.instance); // read your writes: the answer is the worker's own record
    await settle();
    expect(seenB.map((x) => [x.type, x.revision])).toEqual([["ADDED", 1]]);
    expect(b.get(key("x1"))).toEqual(a.get(key("x1")));
    expect([a.registryId, b.registryId]).toEqual([authority.store.registryId, authority.store.registryId]);
    expect(a.replicas.live()).toEqual(["1", "2"]);
    await authority.close();
  });

  it("a worker that syncs while writes go on gets every revision exactly once: its snapshot, then the feed after it", async () => {
    const clock = new FakeClock();
    const authority = testAuthority({ clock });
    const w1 = connectWorker(authority, 1);
    const a = await PrimaryStore.connect({ link: w1.link, workerId: "1", clock, logger: silentLogger });
    const writes = Array.from({ length: 50 }, (_, i) => a.put(spec(`p${i}`), 1, { ttlMs: 10_000 }));
    await turn();
    await turn();
    const w2 = connectWorker(authority, 2);
    const b = await PrimaryStore.connect({ link: w2.link, workerId: "2", clock, logger: silentLogger });
    const afterSync: number[] = [];
    b.subscribe((c) => afterSync.push(c.revision));
    const atSync = b.revision();
    await Promise.all(writes);
    await settle();
    expect(atSync).toBeGreaterThan(0); // the snapshot came in the middle of the writes
    expect(afterSync).toEqual(Array.from({ length: 50 - atSync }, (_, i) => atSync + i + 1));
    // what the snapshot held as recent history, then the feed: each revision once
    expect([...b.recentChanges().map((c) => c.revision), ...afterSync]).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    expect(b.service("default", "pay")?.size).toBe(50);
    await authority.close();
  });

  it("leases: a worker's stream keeps its instance past the TTL; its end removes it after the grace (STREAM_CLOSED); unrenewed, LEASE_EXPIRED", async () => {
    const { authority, clock, a, b } = await twoWorkers();
    await a.put(spec("s1"), clock.now(), { ttlMs: 1000 });
    await a.put(spec("t1"), clock.now(), { ttlMs: 1000 });
    const removed: Change[] = [];
    b.subscribe((c) => c.type === "REMOVED" && removed.push(c));
    for (let i = 0; i < 10; i++) {
      a.leases.renewed("default/pay/s1", 1000, 7);
      await settle();
      await clock.advance(300);
    }
    await settle();
    expect(removed.map((c) => [c.instance.instanceId, c.type === "REMOVED" && c.reason])).toEqual([["t1", "LEASE_EXPIRED"]]);
    expect(b.get(key("s1"))).toBeDefined(); // 3 s on a 1 s lease, beaten
    a.leases.renewed("default/pay/s1", 1000, 7);
    a.leases.released(["default/pay/s1"], 300, 7);
    await settle();
    await clock.advance(250);
    await settle();
    expect(b.get(key("s1"))).toBeDefined();
    await clock.advance(100);
    await settle();
    expect(removed.map((c) => [c.instance.instanceId, c.type === "REMOVED" && c.reason])).toEqual([
      ["t1", "LEASE_EXPIRED"],
      ["s1", "STREAM_CLOSED"],
    ]);
    await authority.close();
  });

  it("a session that moves from worker 1's stream to worker 2's keeps its instance when the old stream ends", async () => {
    const { authority, clock, a, b } = await twoWorkers();
    await a.put(spec("m1"), clock.now(), { ttlMs: 1000 });
    a.leases.renewed("default/pay/m1", 1000, 1);
    await settle();
    // the session reconnects to worker 2, which has not seen the lease: it asks the registered TTL
    expect(await b.leases.ttls(["default/pay/m1", "default/pay/none"])).toEqual(new Map([["default/pay/m1", 1000]]));
    b.leases.renewed("default/pay/m1", 1000, 1);
    await settle();
    a.leases.released(["default/pay/m1"], 300, 1);
    for (let i = 0; i < 10; i++) {
      await clock.advance(300);
      b.leases.renewed("default/pay/m1", 1000, 1);
      await settle();
    }
    expect(a.get(key("m1"))).toBeDefined();
    expect(b.get(key("m1"))).toBeDefined();
    await authority.close();
  });

  it("a worker that dies: the leases its streams held go after the grace; those another worker's stream beats stay", async () => {
    const { authority, clock, a, b } = await twoWorkers();
    await a.put(spec("d1"), clock.now(), { ttlMs: 5000 });
    await a.put(spec("d2"), clock.now(), { ttlMs: 5000 });
    a.leases.renewed("default/pay/d1", 5000, 3);
    a.leases.renewed("default/pay/d2", 5000, 3);
    b.leases.renewed("default/pay/d2", 5000, 9);
    await settle();
    authority.detach(1);
    await clock.advance(299);
    await settle();
    expect(b.get(key("d1"))).toBeDefined();
    await clock.advance(2);
    await settle();
    expect(b.get(key("d1"))).toBeUndefined();
    expect(b.get(key("d2"))).toBeDefined();
    expect(b.replicas.live()).toEqual(["2"]);
    await authority.close();
  });

  it("ownership and a put without a lease claim: refused for another owner; an absent instance is not brought back", async () => {
    const { authority, a } = await twoWorkers();
    await a.put(spec("o1", { owner: "alice" }), 1, { ttlMs: 1000 }, "alice");
    await expect(a.put(spec("o1", { owner: "mallory", host: "6.6.6.6" }), 2, { ttlMs: 1000 }, "mallory")).rejects.toMatchObject({ reason: "PERMISSION_DENIED" });
    await expect(a.remove(key("o1"), "DEREGISTERED", undefined, "mallory")).rejects.toMatchObject({ reason: "PERMISSION_DENIED" });
    expect(a.get(key("o1"))?.host).toBe("10.0.0.1");
    await a.remove(key("o1"), "DEREGISTERED");
    expect(await a.put(spec("o1", { status: "NOT_SERVING" }), 3)).toBeUndefined();
    expect(a.get(key("o1"))).toBeUndefined();
    await authority.close();
  });

  it("a malformed message from a worker is refused (INVALID_ARGUMENT when it names a request) and changes nothing", async () => {
    const { authority, w1, a } = await twoWorkers();
    await a.put(spec("keep"), 1, { ttlMs: 10_000 });
    const revision = authority.store.revision();
    const hostile: Array<Record<string, unknown>> = [
      { maxine: "store-put", id: 101, spec: null, now: 1 },
      { maxine: "store-put", id: 102, spec: { ...spec("bad"), port: "80" }, now: 1, ttlMs: 1000 },
      { maxine: "store-put", id: 103, spec: { ...spec("bad"), instanceId: "a/b" }, now: 1, ttlMs: 1000 },
      { maxine: "store-put", id: 104, spec: { ...spec("bad"), health: { check: { kind: "SMTP" } } }, now: 1, ttlMs: 1000 },
      { maxine: "store-put", id: 105, spec: spec("bad"), now: Number.NaN, ttlMs: 1000 },
      { maxine: "store-put", id: 106, spec: { ...spec("bad"), metadata: { k: 1 } }, now: 1, ttlMs: 1000 },
      { maxine: "store-remove", id: 107, key: { namespace: "default" }, reason: "DEREGISTERED" },
      { maxine: "store-remove", id: 108, key: key("keep"), reason: "BECAUSE" },
      { maxine: "store-ttls", id: 109, keys: "default/pay/keep" },
      { maxine: "store-leases", renewed: "x", released: [] },
      { maxine: "store-leases", renewed: [[1, 2, 3], ["default/pay/keep", -5, 1], ["default/pay/keep", 1000, 1.5], null], released: [null, { stream: "x" }, { stream: 1, keys: "k" }] },
      { maxine: "config-write", id: 110, write: { namespace: "default", op: "truncate" } },
      { maxine: "store-put", id: "x", spec: null },
      { maxine: "store-sync-all" },
    ];
    for (const m of hostile) expect(() => authority.receive(1, m as never)).not.toThrow();
    await settle();
    const replies = w1.received.flatMap((m) => (m.maxine === "store-feed" || m.maxine === "config-feed" ? (m.replies ?? []) : []));
    for (const id of [101, 102, 103, 104, 105, 106, 107, 108, 109, 110]) {
      expect(replies.find((r) => r.id === id), `request ${id}`).toMatchObject({ error: { reason: "INVALID_ARGUMENT" } });
    }
    expect(authority.store.revision()).toBe(revision);
    expect(a.service("default", "pay")?.sorted().map((r) => r.instanceId)).toEqual(["keep"]);
    // and the registry still works
    expect(await a.put(spec("after"), 2, { ttlMs: 1000 })).toMatchObject({ revision: revision + 1 });
    await authority.close();
  });

  it("a worker's batch (its messages of one turn): handled in order, as if sent alone; a malformed batch changes nothing and throws nothing", async () => {
    const { authority, w1, a } = await twoWorkers();
    const revision = authority.store.revision();
    const put = (id: number, instance: string) => ({ maxine: "store-put", id, spec: spec(instance), now: 1, ttlMs: 10_000 });
    authority.receive(1, { maxine: "store-batch", messages: [put(201, "x1"), { maxine: "store-remove", id: 202, key: key("x1"), reason: "DEREGISTERED" }, put(203, "x2")] } as never);
    const hostile: Array<Record<string, unknown>> = [
      { maxine: "store-batch", messages: "x" },
      { maxine: "store-batch", messages: Array.from({ length: MAX_BATCH + 1 }, (_, i) => put(1000 + i, `big${i}`)) },
      { maxine: "store-batch", messages: [{ maxine: "store-batch", messages: [put(204, "nested")] }, null, 7, put(205, "x3")] },
    ];
    for (const m of hostile) expect(() => authority.receive(1, m as never)).not.toThrow();
    await settle();
    const replies = w1.received.flatMap((m) => (m.maxine === "store-feed" ? (m.replies ?? []) : []));
    expect([201, 202, 203, 205].map((id) => replies.find((r) => r.id === id)?.revision)).toEqual([revision + 1, revision + 2, revision + 3, revision + 4]);
    expect(replies.find((r) => r.id === 204 || r.id === 1000)).toBeUndefined();
    expect(a.service("default", "pay")?.sorted().map((r) => r.instanceId)).toEqual(["x2", "x3"]);
    await authority.close();
  });

  it("a worker's stores give up on a primary that does not answer their sync in time, or cannot open the configuration store, and say so", async () => {
    const sent: unknown[] = [];
    let listener: ((m: never) => void) | undefined;
    const silent = { send: (m: unknown) => sent.push(m), listen: (l: (m: never) => void) => ((listener = l), () => (listener = undefined)) };
    await expect(PrimaryStore.connect({ link: silent, workerId: "1", clock: new FakeClock(), logger: silentLogger, syncTimeoutMs: 30 })).rejects.toThrow(
      "store: the primary did not send the registry within 30 ms",
    );
    await expect(PrimaryConfigStore.connect(silent, { historyDepth: 4 } as never, 30)).rejects.toThrow("config store: the primary did not open it within 30 ms");
    expect(sent).toEqual([{ maxine: "store-sync" }, { maxine: "config-sync" }]);
    expect(listener).toBeUndefined(); // each store stopped listening when it gave up
    const refusing = { send: () => setImmediate(() => listener?.({ maxine: "config-snapshot", error: "LevelDB: lock held" } as never)), listen: silent.listen };
    await expect(PrimaryConfigStore.connect(refusing, { historyDepth: 4 } as never, 1000)).rejects.toThrow("LevelDB: lock held");
  });

  it("a worker's link sends the store messages of one turn as one batch, in order; one message alone; flush sends at once", async () => {
    const sent: unknown[] = [];
    const proc = Object.assign(new EventEmitter(), { connected: true, send: (m: unknown) => sent.push(m) });
    const link = new WorkerLink(1, proc as unknown as NodeJS.Process).link;
    const m = (id: number) => ({ maxine: "store-ttls", id, keys: [] }) as const;
    link.send(m(1));
    link.send(m(2));
    link.send(m(3));
    expect(sent).toEqual([]);
    await turn();
    expect(sent).toEqual([{ maxine: "store-batch", messages: [m(1), m(2), m(3)] }]);
    link.send(m(4));
    await turn();
    expect(sent.at(-1)).toEqual(m(4));
    link.send(m(5));
    link.flush!();
    expect(sent.at(-1)).toEqual(m(5));
    await turn();
    expect(sent).toHaveLength(3);
  });

  it("a worker that does not read its feed is reset once what waits for it passes the bound (MAXINE_WORKER_IPC_BUFFER); the others go on", async () => {
    const clock = new FakeClock();
    const authority = testAuthority({ clock, maxQueuedBytes: 256 << 10 });
    const w1 = connectWorker(authority, 1);
    const w2 = connectWorker(authority, 2);
    const a = await PrimaryStore.connect({ link: w1.link, workerId: "1", clock, logger: silentLogger });
    await PrimaryStore.connect({ link: w2.link, workerId: "2", clock, logger: silentLogger });
    w2.pause();
    const big = { blob: "x".repeat(2000) };
    for (let i = 0; i < 400 && w2.resets.length === 0; i++) await a.put(spec(`b${i}`, { metadata: big }), 1, { ttlMs: 60_000 });
    expect(w2.resets).toEqual(["MAXINE_WORKER_IPC_BUFFER exceeded"]);
    await settle();
    expect(a.replicas.live()).toEqual(["1"]);
    // nothing more is queued for it: the writes go on, worker 1 keeps up
    const before = w1.received.length;
    for (let i = 0; i < 20; i++) await a.put(spec(`c${i}`), 1, { ttlMs: 60_000 });
    expect(w1.received.length).toBeGreaterThan(before);
    const heldFor2 = w2.received.length;
    w2.resume();
    await settle();
    const feedBytes = w2.received.slice(heldFor2).reduce((n, m) => n + (m.maxine === "store-feed" ? (m.data?.byteLength ?? 0) : 0), 0);
    expect(feedBytes).toBeLessThanOrEqual(256 << 10);
    await authority.close();
  });

  it("the configuration store is opened once, in the primary: a write through one worker is seen by the other", async () => {
    let opened = 0;
    const { MemoryConfigStore } = await import("../src/store/memory-config-store.js");
    const clock = new FakeClock();
    const authority = testAuthority({
      clock,
      openConfig: async () => {
        opened++;
        return new MemoryConfigStore({ maxKeysPerService: 10, historyDepth: 3 });
      },
    });
    const w1 = connectWorker(authority, 1);
    const w2 = connectWorker(authority, 2);
    const limits = { maxKeysPerService: 10, historyDepth: 3 };
    const [a, b] = await Promise.all([PrimaryConfigStore.connect(w1.link, limits), PrimaryConfigStore.connect(w2.link, limits)]);
    expect(opened).toBe(1);
    const seen: number[] = [];
    b.subscribe((c) => seen.push(c.revision));
    const write = { namespace: "default", service: "pay", key: "k", op: "put" as const, value: new TextEncoder().encode("v1"), contentType: "text/plain", principal: "p", now: 1 };
    const c = await a.write(write);
    expect(c.revision).toBe(1);
    expect(a.versions("default", "pay", "k")[0]?.value).toEqual(new TextEncoder().encode("v1"));
    // compare-and-set holds across workers: both expect version 1, one wins
    const race = await Promise.allSettled([a.write({ ...write, expectedVersion: 1 }), b.write({ ...write, expectedVersion: 1 })]);
    expect(race.map((r) => r.status).sort()).toEqual(["fulfilled", "rejected"]);
    await settle();
    expect(seen).toEqual([1, 2]);
    expect(b.keys("default", "pay").map((e) => e.version)).toEqual([2]);
    expect(b.registryId).toBe(a.registryId);
    // a third worker's snapshot: the same entries
    const w3 = connectWorker(authority, 3);
    const d = await PrimaryConfigStore.connect(w3.link, limits);
    expect(d.versions("default", "pay", "k").map((e) => e.version)).toEqual([2, 1]);
    expect(d.recentChanges().map((x) => x.revision)).toEqual([1, 2]);
    await authority.close();
  });

  it("each turn's changes are encoded once: every worker gets the same bytes", async () => {
    const { authority, w1, w2, a } = await twoWorkers();
    await Promise.all([a.put(spec("e1"), 1, { ttlMs: 1000 }), a.put(spec("e2"), 1, { ttlMs: 1000 })]);
    await settle();
    const feeds = [w1, w2].map((w) => w.received.filter((m) => m.maxine === "store-feed" && m.data !== undefined).map((m) => (m as { data: Uint8Array }).data));
    expect(feeds[0]).toEqual(feeds[1]);
    expect(feeds[0]).toHaveLength(1); // both writes in one turn, one message
    expect((deserialize(feeds[0]![0]!) as Change[]).map((c) => c.revision)).toEqual([1, 2]);
    await authority.close();
  });
});
