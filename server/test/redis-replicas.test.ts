import { randomUUID } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import { ServingStatus } from "@maxine/sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startRedis, startRedisCluster } from "./support/redis-server.js";
import { events, startReplica, stopReplica, watch, type Replica } from "./support/replicas.js";

// Three real server processes on one Redis: every replica sends its watchers
// the same changes with the same revisions, a watch resumes on another
// replica, and a replica reads its own writes. The same suite runs on one
// private redis-server and on a private Redis Cluster (three masters, three
// replicas; MAXINE_REDIS_CLUSTER).

interface Backend {
  readonly url: string;
  readonly env: Record<string, string>;
  close(): Promise<void>;
}

const backends: Array<[string, () => Promise<Backend>]> = [
  ["one redis-server", async () => {
    const redis = await startRedis();
    return { url: redis.url, env: {}, close: () => redis.close() };
  }],
  ["a Redis Cluster", async () => {
    const cluster = await startRedisCluster();
    // the URL names no node: with MAXINE_REDIS_CLUSTER only its credentials and TLS count
    return { url: "redis://127.0.0.1:1", env: { MAXINE_REDIS_CLUSTER: cluster.seeds.join(",") }, close: () => cluster.close() };
  }],
];

const inst = (id: string, over: Record<string, unknown> = {}) => ({
  service: "payments",
  instanceId: id,
  host: "10.0.0.7",
  port: 8080,
  ...over,
});

describe.each(backends)("three replicas on %s", (_name, start) => {
  let backend: Backend;
  let a: Replica, b: Replica, c: Replica;
  let registry: string;

  beforeAll(async () => {
    backend = await start();
    registry = `replicas-${randomUUID().slice(0, 8)}`;
    [a, b, c] = await Promise.all([0, 1, 2].map(() => startReplica(backend.url, registry, backend.env)));
  }, 60_000);
  afterAll(async () => {
    await Promise.all([a, b, c].map((r) => stopReplica(r)));
    await backend?.close();
  });

  it("share one registry id and one revision", async () => {
    const [la, lb, lc] = await Promise.all([a, b, c].map((r) => r.client.listServices({})));
    expect(la!.registryId).not.toBe("");
    expect(lb!.registryId).toBe(la!.registryId);
    expect(lc!.registryId).toBe(la!.registryId);
  });

  it("reads its own writes: Discover right after Register on the same replica", async () => {
    for (const [i, r] of [a, b, c].entries()) {
      const reg = await r.client.register({ instance: inst(`ryw-${i}`, { service: `ryw-${i}` }) });
      const d = await r.client.discover({ service: `ryw-${i}` });
      expect(d.instance?.instanceId).toBe(`ryw-${i}`);
      expect(d.revision).toBeGreaterThanOrEqual(reg.revision);
    }
  });

  it("sends watchers on B and C the same events with the same revisions as writes on A", async () => {
    const wb = watch(b.client, { services: ["payments"] });
    const wc = watch(c.client, { services: ["payments"] });
    try {
      await wb.until(/^end@/);
      await wc.until(/^end@/);
      const r1 = await a.client.register({ instance: inst("p-1") });
      await a.client.register({ instance: inst("p-2", { tags: ["v2"] }) });
      await b.client.register({ instance: inst("p-1", { status: ServingStatus.DRAINING }) });
      const last = await c.client.deregister({ key: { service: "payments", instanceId: "p-2" } });
      const r = Number(r1.revision);
      const expected = [`ADDED p-1@${r}`, `ADDED p-2@${r + 1}`, `UPDATED p-1@${r + 2}`, `REMOVED p-2@${r + 3}:DEREGISTERED`];
      expect(Number(last.revision)).toBe(r + 3);
      await wb.until(new RegExp(`@${r + 3}:`));
      await wc.until(new RegExp(`@${r + 3}:`));
      expect(events(wb.seen)).toEqual(expected);
      expect(events(wc.seen)).toEqual(expected);
      const la = await a.client.listServices({});
      expect(la.services.find((s) => s.service === "payments")).toMatchObject({ instanceCount: 1, servingCount: 0 });
    } finally {
      await wb.close();
      await wc.close();
    }
  });

  it("resumes on C from a revision obtained on A, replaying exactly the missed changes", async () => {
    const wa = watch(a.client, { services: ["resume"] });
    await wa.until(/^end@/);
    const first = await a.client.register({ instance: inst("r-1", { service: "resume" }) });
    await wa.until(new RegExp(`ADDED r-1@${first.revision}$`));
    await wa.close();
    const registryId = wa.registryId();
    expect(registryId).toBe(first.registryId);

    // Missed while no watcher was open: one on each replica.
    const m1 = await b.client.register({ instance: inst("r-2", { service: "resume" }) });
    await c.client.register({ instance: inst("unrelated", { service: "other" }) });
    await a.client.register({ instance: inst("r-1", { service: "resume", weight: 7 }) });
    const m3 = await b.client.deregister({ key: { service: "resume", instanceId: "r-2" } });
    // C mirrors the change stream asynchronously: once it holds m3, a resume there replays every missed change
    for (const deadline = Date.now() + 5_000; (await c.client.listServices({})).revision < m3.revision; ) {
      if (Date.now() > deadline) throw new Error(`replica C did not reach revision ${m3.revision} in 5 s`);
      await new Promise((r) => setTimeout(r, 10));
    }

    const wc = watch(c.client, { services: ["resume"], resumeRevision: first.revision, registryId });
    try {
      await wc.until(new RegExp(`^progress@${m3.revision}$`));
      const n = Number(m1.revision);
      expect(wc.seen).toEqual([`ADDED r-2@${n}`, `UPDATED r-1@${n + 2}`, `REMOVED r-2@${n + 3}:DEREGISTERED`, `progress@${n + 3}`]);
    } finally {
      await wc.close();
    }
  });

  it("lets a replica started later resume a watch from before its start (history seeded from the stream)", async () => {
    const first = await a.client.register({ instance: inst("late-1", { service: "late" }) });
    const m1 = await b.client.register({ instance: inst("late-2", { service: "late" }) });
    await c.client.deregister({ key: { service: "late", instanceId: "late-1" } });
    const d = await startReplica(backend.url, registry, backend.env);
    try {
      const wd = watch(d.client, { services: ["late"], resumeRevision: first.revision, registryId: first.registryId });
      try {
        const n = Number(m1.revision);
        await wd.until(/^progress@/);
        expect(wd.seen).toEqual([`ADDED late-2@${n}`, `REMOVED late-1@${n + 1}:DEREGISTERED`, `progress@${n + 1}`]);
      } finally {
        await wd.close();
      }
    } finally {
      await stopReplica(d);
    }
  });

  it("expires a Register-only lease once, swept by one replica, seen by all", async () => {
    const wb = watch(b.client, { services: ["short"] });
    const wc = watch(c.client, { services: ["short"] });
    try {
      await wb.until(/^end@/);
      await wc.until(/^end@/);
      await a.client.register({ instance: inst("s-1", { service: "short" }), leaseTtl: { seconds: 0n, nanos: 300_000_000 } });
      await wb.until(/REMOVED s-1@\d+:LEASE_EXPIRED/);
      await wc.until(/REMOVED s-1@\d+:LEASE_EXPIRED/);
      expect(events(wb.seen)).toEqual(events(wc.seen));
      expect(events(wb.seen)).toHaveLength(2);
      await expect(a.client.discover({ service: "short" })).rejects.toSatisfy((e) => ConnectError.from(e).code === Code.NotFound);
    } finally {
      await wb.close();
      await wc.close();
    }
  });
});
