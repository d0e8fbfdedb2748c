import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import type { ConfigChange, ConfigLimits, ConfigWrite } from "../src/domain/config-entry.js";
import { Reason, RegistryError } from "../src/domain/errors.js";
import type { ConfigStore } from "../src/store/config-store.js";
import { LevelConfigStore } from "../src/store/level-config-store.js";
import { MemoryConfigStore } from "../src/store/memory-config-store.js";
import { RedisConfigStore } from "../src/store/redis-config-store.js";
import { silentLogger } from "../src/domain/logger.js";
import { startRedis, type RedisProcess } from "./support/redis-server.js";

// One contract suite, run against every ConfigStore implementation: the
// same writes give the same versions, revisions, refusals and changes.

const dirs: string[] = [];
let redis: RedisProcess | undefined;
let registries = 0;
afterAll(async () => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  await redis?.close();
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "maxine-config-"));
  dirs.push(d);
  return d;
}

interface Backend {
  readonly name: string;
  open(limits: ConfigLimits): Promise<ConfigStore>;
  /** reopen closes a store and opens one on the same state (durable backends only). */
  reopen?(store: ConfigStore, limits: ConfigLimits): Promise<ConfigStore>;
}

const levelDirs = new WeakMap<ConfigStore, string>();

const BACKENDS: Backend[] = [
  { name: "memory", open: async (limits) => new MemoryConfigStore(limits) },
  {
    name: "leveldb",
    async open(limits) {
      const dir = tempDir();
      const s = await LevelConfigStore.open({ dir, limits, fsync: true });
      levelDirs.set(s, dir);
      return s;
    },
    async reopen(store, limits) {
      const dir = levelDirs.get(store)!;
      await store.close();
      const s = await LevelConfigStore.open({ dir, limits, fsync: true });
      levelDirs.set(s, dir);
      return s;
    },
  },
  {
    name: "redis",
    async open(limits) {
      redis ??= await startRedis();
      // a registry of its own per store: the stores of one test share nothing
      const registry = `contract-${++registries}`;
      const s = await RedisConfigStore.connect({ url: redis.url, sentinels: [], sentinelName: "", commandTimeoutMs: 2000, registry, logMax: 10000, limits, logger: silentLogger });
      redisRegistries.set(s, registry);
      return s;
    },
    async reopen(store, limits) {
      const registry = redisRegistries.get(store)!;
      await store.close();
      const s = await RedisConfigStore.connect({ url: redis!.url, sentinels: [], sentinelName: "", commandTimeoutMs: 2000, registry, logMax: 10000, limits, logger: silentLogger });
      redisRegistries.set(s, registry);
      return s;
    },
  },
];

const redisRegistries = new WeakMap<ConfigStore, string>();

const LIMITS: ConfigLimits = { maxKeysPerService: 3, historyDepth: 4 };
const text = (s: string) => new TextEncoder().encode(s);
const read = (v: Uint8Array) => new TextDecoder().decode(v);
let clock = 1_000;

function put(key: string, value: string, expectedVersion?: number, service = "svc"): ConfigWrite {
  return { namespace: "ns", service, key, op: "put", value: text(value), contentType: "text/plain", expectedVersion, principal: "alice", now: clock++ };
}

function del(key: string, expectedVersion?: number): ConfigWrite {
  return { namespace: "ns", service: "svc", key, op: "delete", expectedVersion, principal: "bob", now: clock++ };
}

function rollback(key: string, toVersion: number, expectedVersion?: number): ConfigWrite {
  return { namespace: "ns", service: "svc", key, op: "rollback", toVersion, expectedVersion, principal: "carol", now: clock++ };
}

async function refused(p: Promise<unknown>, reason: string, message: string | RegExp): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(RegistryError);
  expect((err as RegistryError).reason).toBe(reason);
  expect((err as RegistryError).message).toMatch(message);
}

describe.each(BACKENDS)("ConfigStore contract: $name", (backend) => {
  it("versions a key from 1, gives each write the next revision, and tells subscribers before the write resolves", async () => {
    const s = await backend.open(LIMITS);
    const seen: ConfigChange[] = [];
    s.subscribe((c) => seen.push(c));
    const a = await s.write(put("a", "one"));
    expect(seen).toEqual([a]);
    const b = await s.write(put("a", "two"));
    const c = await s.write(put("b", "x"));
    expect([a.entry.version, b.entry.version, c.entry.version]).toEqual([1, 2, 1]);
    expect([a.revision, b.revision, c.revision]).toEqual([1, 2, 3]);
    expect(s.revision()).toBe(3);
    expect(seen.map((x) => x.revision)).toEqual([1, 2, 3]);
    expect(read(s.versions("ns", "svc", "a")[0]!.value)).toBe("two");
    expect(s.versions("ns", "svc", "a").map((e) => e.version)).toEqual([2, 1]);
    expect(s.keys("ns", "svc").map((e) => e.key)).toEqual(["a", "b"]);
    expect(s.services("ns")).toEqual(["svc"]);
    expect(b.entry).toMatchObject({ principal: "alice", contentType: "text/plain", deleted: false });
    await s.close();
  });

  it("compare-and-set: 0 means must not exist; a stale version is FAILED_PRECONDITION and changes nothing", async () => {
    const s = await backend.open(LIMITS);
    await s.write(put("k", "v1", 0));
    await refused(s.write(put("k", "again", 0)), Reason.FAILED_PRECONDITION, "expected_version: key ns/svc/k is at version 1, expected 0 (must not exist)");
    await s.write(put("k", "v2", 1));
    await refused(s.write(put("k", "v3", 1)), Reason.FAILED_PRECONDITION, "is at version 2, expected 1");
    await refused(s.write(del("k", 1)), Reason.FAILED_PRECONDITION, "is at version 2, expected 1");
    expect(s.revision()).toBe(2);
    await s.close();
  });

  it("delete is a version of its own; the key then does not exist, may be created with expected 0, and versions keep counting", async () => {
    const s = await backend.open(LIMITS);
    await s.write(put("k", "v1"));
    const d = await s.write(del("k", 1));
    expect(d).toMatchObject({ type: "DELETED", entry: { version: 2, deleted: true, principal: "bob" } });
    expect(s.keys("ns", "svc")).toEqual([]);
    expect(s.services("ns")).toEqual([]);
    await refused(s.write(del("k")), Reason.NOT_FOUND, "key: ns/svc/k does not exist");
    await refused(s.write(put("k", "v", 2)), Reason.FAILED_PRECONDITION, "was deleted (version 2), expected 2");
    const again = await s.write(put("k", "back", 0));
    expect(again.entry.version).toBe(3);
    await s.close();
  });

  it("rollback writes an older version's content as a new version; a dropped or deleted version is refused", async () => {
    const s = await backend.open(LIMITS);
    await s.write(put("k", "first"));
    await s.write(put("k", "second"));
    const r = await s.write(rollback("k", 1, 2));
    expect(r.entry).toMatchObject({ version: 3, principal: "carol", contentType: "text/plain" });
    expect(read(r.entry.value)).toBe("first");
    await s.write(del("k"));
    await refused(s.write(rollback("k", 4)), Reason.INVALID_ARGUMENT, "to_version: version 4 of ns/svc/k is a delete");
    await refused(s.write(rollback("k", 99)), Reason.NOT_FOUND, "to_version: version 99 of ns/svc/k is not kept (kept: 1..4; MAXINE_CONFIG_HISTORY_DEPTH)");
    await s.close();
  });

  it("keeps historyDepth versions of a key and counts keys per service against the limit, naming the setting", async () => {
    const s = await backend.open(LIMITS);
    for (let i = 1; i <= 6; i++) await s.write(put("k", `v${i}`));
    expect(s.versions("ns", "svc", "k").map((e) => e.version)).toEqual([6, 5, 4, 3]);
    await s.write(put("k2", "x"));
    await s.write(put("k3", "x"));
    await refused(s.write(put("k4", "x")), Reason.RESOURCE_EXHAUSTED, "key: service ns/svc holds the maximum of 3 keys (MAXINE_CONFIG_MAX_KEYS_PER_SERVICE)");
    // another service has its own count; a delete frees a place
    await s.write(put("k4", "x", undefined, "other"));
    await s.write(del("k3"));
    await s.write(put("k4", "x"));
    await s.close();
  });

  it("recentChanges is the gapless run of kept changes ending at the latest revision", async () => {
    const s = await backend.open({ maxKeysPerService: 10, historyDepth: 2 });
    await s.write(put("a", "1")); // r1, dropped by r4
    await s.write(put("b", "1")); // r2
    await s.write(put("a", "2")); // r3
    await s.write(put("a", "3")); // r4
    expect(s.recentChanges().map((c) => c.revision)).toEqual([2, 3, 4]);
    await s.close();
  });

  // durable backends only (the memory store keeps nothing across a reopen, by design)
  if (backend.reopen !== undefined) it("reopened, it holds every acknowledged version, its revision and its registryId", async () => {
    const s = await backend.open(LIMITS);
    for (let i = 1; i <= 6; i++) await s.write(put("k", `v${i}`));
    await s.write(del("k"));
    await s.write(put("other", "o"));
    const id = s.registryId;
    const before = s.versions("ns", "svc", "k");
    const again = await backend.reopen!(s, LIMITS);
    expect(again.registryId).toBe(id);
    expect(again.revision()).toBe(8);
    expect(again.versions("ns", "svc", "k")).toEqual(before);
    expect(again.keys("ns", "svc").map((e) => e.key)).toEqual(["other"]);
    expect(again.recentChanges().map((c) => c.revision)).toEqual([4, 5, 6, 7, 8]);
    const next = await again.write(put("k", "new", 0));
    expect(next).toMatchObject({ revision: 9, entry: { version: 8 } });
    await again.close();
  });

  it("compare-and-set under concurrency (property): of writers expecting the same version exactly one wins, and history has no gaps", async () => {
    await fc.assert(
      fc.asyncProperty(
        // rounds of concurrent writers: each writer reads nothing and expects a version it guesses near the current one
        fc.array(fc.array(fc.integer({ min: -1, max: 2 }), { minLength: 1, maxLength: 8 }), { minLength: 1, maxLength: 6 }),
        async (rounds) => {
          const s = await backend.open({ maxKeysPerService: 10, historyDepth: 1000 });
          const changes: ConfigChange[] = [];
          s.subscribe((c) => changes.push(c));
          let version = 0;
          for (const round of rounds) {
            // every writer of the round expects version + offset (offset -1: a stale read, 0: current, 1..2: ahead)
            const writes = round.map((offset, i) => s.write(put("k", `w${i}`, Math.max(0, version + offset))));
            const results = await Promise.allSettled(writes);
            // the writes apply one at a time, in the order they were made: each wins exactly when the version it expects is current then
            const winners = new Map<number, number>();
            let model = version;
            round.forEach((offset, i) => {
              if (Math.max(0, version + offset) === model) winners.set(++model, i);
            });
            results.forEach((r, i) => {
              const wins = [...winners.values()].includes(i);
              expect(r.status, `writer ${i} of ${JSON.stringify(round)} at version ${version}`).toBe(wins ? "fulfilled" : "rejected");
              if (r.status === "rejected") expect((r.reason as RegistryError).reason).toBe(Reason.FAILED_PRECONDITION);
              else expect(r.value.entry.version).toBe([...winners].find(([, w]) => w === i)![0]);
            });
            version = model;
          }
          const history = s.versions("ns", "svc", "k");
          expect(history.map((e) => e.version)).toEqual(Array.from({ length: version }, (_, i) => version - i));
          expect(changes.map((c) => c.revision)).toEqual(Array.from({ length: changes.length }, (_, i) => i + 1));
          expect(changes.length).toBe(version);
          await s.close();
        },
      ),
      { numRuns: backend.name === "memory" ? 100 : 20 },
    );
  });
});
