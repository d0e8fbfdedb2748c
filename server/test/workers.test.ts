import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { once } from "node:events";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  HeartbeatRequestSchema,
  HeartbeatResponseSchema,
  WatchServicesRequestSchema,
  WatchServicesResponseSchema,
  EventType,
  RemovalReason,
} from "@maxine/sdk/gen/maxine/registry/v1/registry_pb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePortForTest } from "./support/free-port.js";
import { startRedis, type RedisProcess } from "./support/redis-server.js";
import { MAIN, startServerProcess, type ServerProcess } from "./support/server-process.js";
import { WorkerSession } from "./support/worker-session.js";

// MAXINE_WORKERS=2, on a private redis-server and on the memory store (the
// registry in the primary, the workers its replicas over IPC): the real
// built server, a primary and two worker processes on one port. Each HTTP/2
// connection is served by one worker, which /healthz on that connection
// names, so the tests pick connections served by each worker and check that
// a change made through one is seen through the other, that liveness
// follows a heartbeat stream across workers, that /metrics adds the workers
// up, that a worker SIGKILLed is started again, and that SIGTERM drains
// them all.

let redis: RedisProcess;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.close();
});

const clusterEnv = (over: Record<string, string> = {}): Record<string, string> => redisEnv(over);

const redisEnv = (over: Record<string, string> = {}): Record<string, string> => ({
  MAXINE_STORE: "redis",
  MAXINE_REDIS_URL: redis.url,
  MAXINE_REDIS_REGISTRY: `workers-${randomUUID().slice(0, 8)}`,
  MAXINE_WORKERS: "2",
  MAXINE_GRACE: "300ms",
  MAXINE_SHUTDOWN_GRACE: "300ms",
  MAXINE_LEASE_TTL_MIN: "100ms",
  MAXINE_REDIS_RENEW_INTERVAL: "50ms",
  MAXINE_REDIS_SWEEP_INTERVAL: "50ms",
  ...over,
});

const dataDirs: string[] = [];
afterAll(() => {
  for (const d of dataDirs) rmSync(d, { recursive: true, force: true });
});

/** memoryEnv runs the memory store: the registry, and the configuration store (LevelDB in a fresh directory), in the primary. */
const memoryEnv = (over: Record<string, string> = {}): Record<string, string> => {
  const dir = mkdtempSync(join(tmpdir(), "maxine-workers-"));
  dataDirs.push(dir);
  return {
    MAXINE_STORE: "memory",
    MAXINE_DATA_DIR: dir,
    MAXINE_WORKERS: "2",
    MAXINE_GRACE: "300ms",
    MAXINE_SHUTDOWN_GRACE: "300ms",
    MAXINE_LEASE_TTL_MIN: "100ms",
    ...over,
  };
};

/** onEachWorker opens connections until one is served by each of the two workers (round robin: the first two, as a rule). */
async function onEachWorker(url: string): Promise<[WorkerSession, WorkerSession]> {
  const byWorker = new Map<number, WorkerSession>();
  for (let i = 0; i < 20 && byWorker.size < 2; i++) {
    const s = await WorkerSession.open(url);
    if (byWorker.has(s.worker)) s.close();
    else byWorker.set(s.worker, s);
  }
  if (byWorker.size < 2) throw new Error(`20 connections all landed on worker ${[...byWorker.keys()]}`);
  return [...byWorker.values()] as [WorkerSession, WorkerSession];
}

/** parsed is the server's log lines as JSON (the non-JSON ones dropped). */
const parsed = (server: ServerProcess): Array<Record<string, any>> =>
  server.logs.flatMap((l) => {
    try {
      return [JSON.parse(l) as Record<string, any>];
    } catch {
      return [];
    }
  });

/** until waits (bounded) for f to return something other than undefined. */
async function until<T>(f: () => T | undefined | Promise<T | undefined>, what: string, timeoutMs = 10_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** metric reads one sample of the server's /metrics (HTTP/1.1, whichever worker gets it). */
async function metric(url: string, sample: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${sample} `));
  if (line === undefined) throw new Error(`no ${sample} in /metrics`);
  return Number(line.slice(sample.length + 1));
}

/** parentOf reads a process's parent PID (Linux /proc), so that only the server's own workers are ever signalled. */
const parentOf = (pid: number): number => Number(readFileSync(`/proc/${pid}/stat`, "utf8").replace(/^.*\) /s, "").split(" ")[1]);

/** runToExit runs the built server with env until it exits by itself (bounded) and returns its exit code and output. */
async function runToExit(env: Record<string, string>, timeoutMs = 20_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [MAIN], {
    env: { ...process.env, MAXINE_HOST: "127.0.0.1", MAXINE_PORT: "0", MAXINE_LOG_LEVEL: "info", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  const [code] = (await once(child, "exit")) as [number | null];
  clearTimeout(timer);
  return { code, stdout, stderr };
}

const inst = (id: string, service: string) => ({ service, instanceId: id, host: "10.0.0.9", port: 8080 });

/** MODES are the two stores workers share a registry through; storeLine is a line each worker's store logs at start, if any. */
const MODES: Array<[string, (over?: Record<string, string>) => Record<string, string>, string | undefined]> = [
  ["one Redis", redisEnv, "redis reachable: mirror in sync"],
  ["the registry in the primary (memory store)", memoryEnv, undefined],
];

describe.each(MODES)("two workers on one port and %s", (_mode, env, storeLine) => {
  let server: ServerProcess;
  let a: WorkerSession, b: WorkerSession;

  beforeAll(async () => {
    server = await startServerProcess(env());
    [a, b] = await onEachWorker(server.url);
  }, 30_000);
  afterAll(async () => {
    a?.close();
    b?.close();
    if (server !== undefined && server.child.exitCode === null) await server.stop();
  });

  it("the primary says it listens once, naming both workers; each worker's lines carry its id", async () => {
    const lines = parsed(server);
    const listening = lines.filter((l) => l.msg === "maxine listening");
    expect(listening).toHaveLength(1);
    expect(listening[0]).toMatchObject({ port: server.port, workers: 2 });
    expect(listening[0]!.worker).toBeUndefined();
    expect([...listening[0]!.pids].sort()).toEqual([a.pid, b.pid].sort());
    expect(new Set([a.worker, b.worker])).toEqual(new Set([1, 2]));
    const own = lines.filter((l) => l.msg === "worker listening");
    expect(own.map((l) => l.worker).sort()).toEqual([1, 2]);
    expect(own.every((l) => l.port === server.port)).toBe(true);
    // lines written by a worker (the store's, too) carry its id
    if (storeLine !== undefined) expect(lines.filter((l) => l.msg === storeLine).map((l) => l.worker).sort()).toEqual([1, 2]);
    // both serve one registry: the same id on each
    expect(new Set(own.map((l) => l.registryId)).size).toBe(1);
    expect(listening[0]!.registryId).toBe(own[0]!.registryId);
  });

  it("fresh connections are spread over both workers", async () => {
    const seen = new Map<number, number>();
    for (let i = 0; i < 10; i++) {
      const s = await WorkerSession.open(server.url);
      seen.set(s.worker, (seen.get(s.worker) ?? 0) + 1);
      s.close();
    }
    expect([...seen.keys()].sort()).toEqual([1, 2]);
    expect(Math.min(...seen.values())).toBeGreaterThanOrEqual(3);
  });

  it("a Register served by worker A is seen by Discover and by a WatchServices stream served by worker B", async () => {
    const service = `cross-${randomUUID().slice(0, 6)}`;
    const watch = b.stream("WatchServices", WatchServicesRequestSchema, WatchServicesResponseSchema, { services: [service] }, true);
    await watch.waitFor((m) => m.some((x) => x.message.case === "snapshotEnd"));
    const reg = await a.unary("Register", { instance: inst("x1", service), leaseTtl: "60s" });
    const added = await watch.waitFor((m) => m.some((x) => x.message.case === "event"));
    const event = added.find((x) => x.message.case === "event")!.message.value as { type: EventType; instance?: { instanceId: string }; revision: bigint };
    expect(event.type).toBe(EventType.ADDED);
    expect(event.instance?.instanceId).toBe("x1");
    expect(String(event.revision)).toBe(String(reg.revision));
    const found = await b.unary("Discover", { service, includeAll: true });
    expect(found.instances.map((i: { instanceId: string }) => i.instanceId)).toEqual(["x1"]);
    watch.cancel();
  });

  it("a heartbeat stream served by worker A keeps its instance alive; its end removes the instance after the grace, seen on worker B", async () => {
    const service = `beat-${randomUUID().slice(0, 6)}`;
    const watch = b.stream("WatchServices", WatchServicesRequestSchema, WatchServicesResponseSchema, { services: [service] }, true);
    await watch.waitFor((m) => m.some((x) => x.message.case === "snapshotEnd"));
    // A 500 ms lease, registered by the stream's first beat and kept by beats every 100 ms for 1.5 s.
    const hb = a.stream("Heartbeat", HeartbeatRequestSchema, HeartbeatResponseSchema, { sequence: 1n, beats: [{ key: { service, instanceId: "h1" }, instance: inst("h1", service), leaseTtl: { seconds: 0n, nanos: 500_000_000 } }] }, false);
    await hb.waitFor((m) => m.length >= 1);
    for (let seq = 2n; seq <= 16n; seq++) {
      await new Promise((r) => setTimeout(r, 100));
      hb.send({ sequence: seq, beats: [{ key: { service, instanceId: "h1" } }] });
    }
    await hb.waitFor((m) => m.length >= 16);
    expect((await b.unary("Discover", { service, includeAll: true })).instances.map((i: { instanceId: string }) => i.instanceId)).toEqual(["h1"]);
    const cancelledAt = Date.now();
    hb.cancel();
    const seen = await watch.waitFor((m) => m.some((x) => x.message.case === "event" && x.message.value.type === EventType.REMOVED), 5_000);
    const elapsed = Date.now() - cancelledAt;
    const removed = seen.find((x) => x.message.case === "event" && x.message.value.type === EventType.REMOVED)!.message.value as { removalReason: RemovalReason };
    expect(removed.removalReason).toBe(RemovalReason.STREAM_CLOSED);
    expect(elapsed).toBeGreaterThanOrEqual(250); // the grace, 300 ms
    expect(elapsed).toBeLessThan(2_000);
    // nothing but that ADDED and REMOVED happened to it: the lease never lapsed while beaten
    expect(seen.filter((x) => x.message.case === "event").map((x) => EventType[(x.message.value as { type: EventType }).type])).toEqual(["ADDED", "REMOVED"]);
    watch.cancel();
  });

  it("/metrics reports the whole server: calls served by both workers are summed, the registry is counted once", async () => {
    const url = server.url;
    const sample = 'maxine_rpc_requests_total{method="Discover",protocol="connect",code="ok"}';
    const before = await metric(url, sample);
    const instancesBefore = await metric(url, "maxine_instances");
    const service = `metrics-${randomUUID().slice(0, 6)}`;
    await a.unary("Register", { instance: inst("m1", service), leaseTtl: "60s" });
    for (let i = 0; i < 3; i++) await a.unary("Discover", { service });
    for (let i = 0; i < 5; i++) await b.unary("Discover", { service });
    // each scrape may reach either worker; every one of them must give the sum
    for (let i = 0; i < 4; i++) expect(await metric(url, sample)).toBe(before + 8);
    // scrapes at once (those a worker receives while one is answered share its answer): every one whole and the same
    expect(new Set(await Promise.all(Array.from({ length: 40 }, () => metric(url, sample))))).toEqual(new Set([before + 8]));
    expect(await metric(url, "maxine_workers")).toBe(2);
    // every worker holds the whole registry: one more instance is one more, not two
    expect(await metric(url, "maxine_instances")).toBe(instancesBefore + 1);
    const health = (await (await fetch(`${url}/healthz`)).json()) as { revision: number };
    expect(Math.abs((await metric(url, "maxine_revision")) - health.revision)).toBeLessThanOrEqual(1);
    // one heartbeat stream on each worker: the server holds two
    const streams = [a, b].map((s, i) =>
      s.stream("Heartbeat", HeartbeatRequestSchema, HeartbeatResponseSchema, { sequence: 1n, beats: [{ key: { service, instanceId: `s${i}` }, instance: inst(`s${i}`, service) }] }, false),
    );
    await Promise.all(streams.map((s) => s.waitFor((m) => m.length >= 1)));
    expect(await metric(url, "maxine_heartbeat_streams")).toBe(2);
    for (const s of streams) s.cancel();
  });

  it("SIGHUP to the primary reaches every worker", async () => {
    const from = server.logs.length;
    server.child.kill("SIGHUP");
    await until(() => {
      const workers = parsed(server).slice(from).filter((l) => l.msg === "SIGHUP: authentication files re-read").map((l) => l.worker);
      return workers.length === 2 ? workers : undefined;
    }, "both workers' SIGHUP lines");
  });

  it("a worker SIGKILLed is logged at error and started again on the same port; the server keeps answering", async () => {
    const service = `survive-${randomUUID().slice(0, 6)}`;
    await a.unary("Register", { instance: inst("k1", service), leaseTtl: "60s" });
    // the victim is the worker serving b, a child of the server this test started
    expect(parentOf(b.pid)).toBe(server.child.pid);
    const restartsBefore = await metric(server.url, "maxine_worker_restarts_total");
    process.kill(b.pid, "SIGKILL");
    const died = await until(() => parsed(server).find((l) => l.msg === "a worker died: starting another" && l.pid === b.pid), "the death's log line");
    expect(died).toMatchObject({ level: 50, signal: "SIGKILL", worker: b.worker });
    const restarted = await until(() => parsed(server).find((l) => l.msg === "worker restarted and listening"), "the restart's log line");
    // connections reach both workers again, the new one with a new pid, and it serves the registry
    b.close();
    const fresh = await onEachWorker(server.url);
    try {
      const pids = fresh.map((s) => s.pid);
      expect(pids).toContain(a.pid);
      expect(pids).toContain(restarted.pid);
      expect(pids).not.toContain(b.pid);
      for (const s of fresh) expect((await s.unary("Discover", { service, includeAll: true })).instances.map((i: { instanceId: string }) => i.instanceId)).toEqual(["k1"]);
      expect(await metric(server.url, "maxine_worker_restarts_total")).toBe(restartsBefore + 1);
      expect(await metric(server.url, "maxine_workers")).toBe(2);
      b = fresh.find((s) => s.pid === restarted.pid)!;
      fresh.find((s) => s !== b)!.close();
    } catch (err) {
      for (const s of fresh) s.close();
      throw err;
    }
  });

  it("SIGTERM drains every worker (streams end with UNAVAILABLE) and the primary exits 0", async () => {
    const watches = [a, b].map((s) => s.stream("WatchServices", WatchServicesRequestSchema, WatchServicesResponseSchema, { services: ["drain"] }, true));
    await Promise.all(watches.map((w) => w.waitFor((m) => m.some((x) => x.message.case === "snapshotEnd"))));
    const from = server.logs.length;
    expect(await server.stop()).toBe(0);
    expect(await Promise.all(watches.map((w) => w.ended()))).toEqual(["14", "14"]);
    const after = parsed(server).slice(from);
    expect(after.filter((l) => l.msg === "drained").map((l) => l.worker).sort()).toEqual([a.worker, b.worker].sort());
    expect(after.at(-1)).toMatchObject({ msg: "stopped", code: 0 });
    expect(after.at(-1)!.worker).toBeUndefined();
  });
});

describe("worker failures", () => {
  it("a crash loop ends: after more than 5 deaths within a minute the primary gives up with exit 1", async () => {
    const server = await startServerProcess(clusterEnv());
    try {
      let victim = (parsed(server).find((l) => l.msg === "maxine listening")!.pids as number[])[0]!;
      for (let death = 1; death <= 6; death++) {
        expect(parentOf(victim)).toBe(server.child.pid);
        process.kill(victim, "SIGKILL");
        if (death === 6) break;
        const restarted = await until(() => parsed(server).filter((l) => l.msg === "worker restarted and listening")[death - 1], `restart ${death}`, 15_000);
        victim = restarted.pid;
      }
      const [code] = (await once(server.child, "exit")) as [number | null];
      expect(code).toBe(1);
      const lines = parsed(server);
      expect(lines.find((l) => l.msg === "workers keep dying: giving up")).toMatchObject({ level: 50, deaths: 6 });
      // the delays doubled: 100, 200, 400, 800, 1600 ms
      expect(lines.filter((l) => l.msg === "a worker died: starting another").map((l) => l.restartInMs)).toEqual([100, 200, 400, 800, 1600]);
    } finally {
      if (server.child.exitCode === null) await server.kill();
    }
  }, 60_000);

  it("a worker that cannot reach Redis at start ends the server with its exit code, 1, and no other is forked", async () => {
    const closed = await freePortForTest();
    const r = await runToExit(clusterEnv({ MAXINE_REDIS_URL: `redis://127.0.0.1:${closed}`, MAXINE_REDIS_CONNECT_TIMEOUT: "300ms" }));
    expect(r.code).toBe(1);
    const lines = r.stdout.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as Record<string, any>);
    expect(lines.filter((l) => l.msg === "a worker could not start: stopping the server")).toHaveLength(1);
    expect(lines.some((l) => l.msg === "maxine listening")).toBe(false);
    expect(new Set(lines.filter((l) => l.worker !== undefined).map((l) => l.worker)).size).toBeLessThanOrEqual(2);
  });

  it("a setting a worker refuses at start ends the server with exit 2, as for one process", async () => {
    // listening on every interface with neither TLS nor authentication is refused by startMaxine (exposure.ts), in the worker
    const r = await runToExit(clusterEnv({ MAXINE_HOST: "0.0.0.0" }));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("MAXINE_INSECURE");
    expect(r.stdout).toContain("a worker could not start");
  });
});

describe("two workers on the memory store: the registry in the primary", () => {
  let server: ServerProcess;
  let a: WorkerSession, b: WorkerSession;

  beforeAll(async () => {
    server = await startServerProcess(memoryEnv());
    [a, b] = await onEachWorker(server.url);
  }, 30_000);
  afterAll(async () => {
    a?.close();
    b?.close();
    if (server !== undefined && server.child.exitCode === null) await server.stop();
  });

  const eventsOf = (m: Array<{ message: { case?: string; value?: unknown } }>) =>
    m.filter((x) => x.message.case === "event").map((x) => x.message.value as { type: EventType; revision: bigint; instance?: { instanceId: string }; removalReason: RemovalReason });

  it("a session that moves from worker A to worker B keeps its instance when its stream on A ends", async () => {
    const service = `move-${randomUUID().slice(0, 6)}`;
    const key = { service, instanceId: "mv1" };
    const ttl = { seconds: 0n, nanos: 400_000_000 };
    const watch = a.stream("WatchServices", WatchServicesRequestSchema, WatchServicesResponseSchema, { services: [service] }, true);
    await watch.waitFor((m) => m.some((x) => x.message.case === "snapshotEnd"));
    const onA = a.stream("Heartbeat", HeartbeatRequestSchema, HeartbeatResponseSchema, { sequence: 1n, beats: [{ key, instance: inst("mv1", service), leaseTtl: ttl }] }, false);
    await onA.waitFor((m) => m.length >= 1);
    // the session reconnects to worker B (its old stream lingers), beats there, and then the old stream ends
    const onB = b.stream("Heartbeat", HeartbeatRequestSchema, HeartbeatResponseSchema, { sequence: 1n, beats: [{ key }] }, false);
    await onB.waitFor((m) => m.length >= 1);
    onA.cancel();
    // 1.5 s: five grace periods and almost four TTLs, beaten on B every 100 ms
    for (let seq = 2n; seq <= 16n; seq++) {
      await new Promise((r) => setTimeout(r, 100));
      onB.send({ sequence: seq, beats: [{ key }] });
    }
    await onB.waitFor((m) => m.length >= 16);
    expect((await a.unary("Discover", { service })).instance.instanceId).toBe("mv1");
    expect(eventsOf(await watch.waitFor(() => true)).map((e) => EventType[e.type])).toEqual(["ADDED"]);
    // its end on B: removed after the grace
    onB.cancel();
    const seen = await watch.waitFor((m) => eventsOf(m).some((e) => e.type === EventType.REMOVED), 5_000);
    expect(eventsOf(seen).at(-1)!.removalReason).toBe(RemovalReason.STREAM_CLOSED);
    watch.cancel();
  });

  it("a worker SIGKILLed: the instances its streams held go after the grace; restarted, it resumes a watch with exactly the missed changes", async () => {
    const service = `kill-${randomUUID().slice(0, 6)}`;
    const watchA = a.stream("WatchServices", WatchServicesRequestSchema, WatchServicesResponseSchema, { services: [service] }, true);
    await watchA.waitFor((m) => m.some((x) => x.message.case === "snapshotEnd"));
    const watchB = b.stream("WatchServices", WatchServicesRequestSchema, WatchServicesResponseSchema, { services: [service] }, true);
    await watchB.waitFor((m) => m.some((x) => x.message.case === "snapshotEnd"));
    const hb = b.stream("Heartbeat", HeartbeatRequestSchema, HeartbeatResponseSchema, { sequence: 1n, beats: [{ key: { service, instanceId: "held" }, instance: inst("held", service), leaseTtl: { seconds: 60n, nanos: 0 } }] }, false);
    await hb.waitFor((m) => m.length >= 1);
    const last = eventsOf(await watchB.waitFor((m) => eventsOf(m).length >= 1)).at(-1)!;
    const health = (await (await fetch(`${server.url}/healthz`)).json()) as { registryId: string };
    expect(parentOf(b.pid)).toBe(server.child.pid);
    const killedAt = Date.now();
    process.kill(b.pid, "SIGKILL");
    // its stream ended with it: the 60 s lease goes after the 300 ms grace, seen on worker A
    const gone = await watchA.waitFor((m) => eventsOf(m).some((e) => e.type === EventType.REMOVED), 5_000);
    expect(Date.now() - killedAt).toBeGreaterThanOrEqual(250);
    expect(eventsOf(gone).at(-1)).toMatchObject({ removalReason: RemovalReason.STREAM_CLOSED, instance: { instanceId: "held" } });
    // changes while it is down
    await a.unary("Register", { instance: inst("new1", service), leaseTtl: "60s" });
    await a.unary("Register", { instance: inst("new2", service), leaseTtl: "60s" });
    const missed = eventsOf(await watchA.waitFor((m) => eventsOf(m).length >= 4)).filter((e) => e.revision > last.revision);
    const restarted = await until(() => parsed(server).find((l) => l.msg === "worker restarted and listening"), "the restart's log line");
    b.close();
    const fresh = await onEachWorker(server.url);
    b = fresh.find((s) => s.pid === restarted.pid)!;
    expect(b).toBeDefined();
    fresh.find((s) => s !== b)!.close();
    // a watch resumed on the new worker from the revision the dead one last sent: exactly the changes missed, then a bookmark
    const resumed = b.stream("WatchServices", WatchServicesRequestSchema, WatchServicesResponseSchema, { services: [service], resumeRevision: last.revision, registryId: health.registryId }, true);
    const got = await resumed.waitFor((m) => m.some((x) => x.message.case === "progress"));
    expect(got.some((x) => x.message.case === "snapshotEnd")).toBe(false);
    expect(eventsOf(got).map((e) => [EventType[e.type], e.instance?.instanceId, String(e.revision)])).toEqual(
      missed.map((e) => [EventType[e.type], e.instance?.instanceId, String(e.revision)]),
    );
    expect(eventsOf(got).map((e) => e.instance?.instanceId)).toEqual(["held", "new1", "new2"]);
    resumed.cancel();
    watchA.cancel();
  });

  it("a ConfigService write served by worker A is read on worker B: the primary alone opens the configuration store", async () => {
    const service = `cfg-${randomUUID().slice(0, 6)}`;
    const put = await a.unary("Put", { service, key: "timeout", value: Buffer.from("5s").toString("base64"), contentType: "text/plain" }, "maxine.config.v1.ConfigService");
    expect(put.entry.version).toBe("1");
    const got = await b.unary("Get", { service, key: "timeout" }, "maxine.config.v1.ConfigService");
    expect(Buffer.from(got.entry.value, "base64").toString()).toBe("5s");
    expect(got.entry.revision).toBe(put.entry.revision);
    // compare-and-set across workers: of two writes expecting version 1, one wins
    const race = await Promise.allSettled([a, b].map((s) => s.unary("Put", { service, key: "timeout", value: "", expectedVersion: "1" }, "maxine.config.v1.ConfigService")));
    expect(race.map((r) => r.status).sort()).toEqual(["fulfilled", "rejected"]);
  });
});

describe("the memory store's primary dying", () => {
  it("its workers notice the IPC channel closing and exit: no orphan keeps the port", async () => {
    const server = await startServerProcess(memoryEnv());
    const pids = parsed(server).find((l) => l.msg === "maxine listening")!.pids as number[];
    for (const pid of pids) expect(parentOf(pid)).toBe(server.child.pid);
    server.child.kill("SIGKILL");
    const alive = (pid: number): boolean => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    await until(() => (pids.some(alive) ? undefined : true), "both workers' exit", 10_000);
    await expect(fetch(`${server.url}/healthz`)).rejects.toThrow();
  });
});
