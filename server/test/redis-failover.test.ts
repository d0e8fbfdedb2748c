import { spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { createMaxineClient, Session, Watcher } from "@maxine/sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startRedis, type RedisProcess } from "./support/redis-server.js";
import { events, startReplica, stopReplica, watch, type Replica } from "./support/replicas.js";

// SIGKILL of a replica while an SDK session (a child process given several
// replica addresses) is attached: the session moves to another replica
// within the grace and a watcher on a third sees no REMOVED; when the
// session's process dies too, the watcher sees it go.

const FIXTURE = fileURLToPath(new URL("./fixtures/session-child.mjs", import.meta.url));
const TTL_MS = 2000;

let redis: RedisProcess;
let a: Replica, b: Replica, c: Replica;
const children: ChildProcess[] = [];
let registry = "";
const registryOf = (): string => registry;

beforeAll(async () => {
  redis = await startRedis();
  registry = `failover-${randomUUID().slice(0, 8)}`;
  [a, b, c] = await Promise.all([0, 1, 2].map(() => startReplica(redis.url, registry, { MAXINE_GRACE: "1s" })));
});
afterAll(async () => {
  for (const child of children) await killChild(child);
  await Promise.all([a, b, c].map((r) => stopReplica(r)));
  await redis?.close();
});

async function killChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, "exit");
  process.kill(child.pid!, "SIGKILL");
  await exited;
}

interface Service {
  readonly child: ChildProcess;
  readonly lines: string[];
}

async function spawnService(urls: string[], instanceId: string): Promise<Service> {
  const child = spawn(process.execPath, [FIXTURE, urls.join(","), "failover", instanceId, String(TTL_MS)], { stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  const lines: string[] = [];
  createInterface({ input: child.stdout! }).on("line", (l) => lines.push(l));
  await until(() => lines.includes("ready"), `${instanceId} ready (${stderr})`, 10_000, () => child.exitCode !== null);
  return { child, lines };
}

async function until(cond: () => boolean, what: string, timeoutMs: number, failed: () => boolean = () => false): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (failed() || Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe("SDK failover between replicas", () => {
  it("moves the session to B when A is SIGKILLed: no REMOVED on C; REMOVED once the session dies too", async () => {
    const wc = watch(c.client, { services: ["failover"] });
    // An SDK watcher on A that fails over to B: it resumes, no fresh snapshot.
    const ws = new Watcher(createMaxineClient({ baseUrl: [a.server.url, b.server.url] }), { services: "failover" });
    const synced: unknown[] = [];
    const wsReconnects: unknown[] = [];
    ws.on("synced", (info) => synced.push(info));
    ws.on("reconnect", (info) => wsReconnects.push(info));
    try {
      await wc.until(/^end@/);
      await ws.ready();
      const svc = await spawnService([a.server.url, b.server.url], "f-1");
      await wc.until(/ADDED f-1@/);
      await until(() => ws.get("failover", "f-1") !== undefined, "the SDK watcher to see f-1", 5000);

      await a.server.kill();
      await until(() => svc.lines.some((l) => l.startsWith("reconnect")), "the session's reconnect to B", 5000);
      await b.client.register({ instance: { service: "failover", instanceId: "f-mid", host: "10.0.0.1", port: 1 } });
      await until(() => ws.get("failover", "f-mid") !== undefined, "the SDK watcher, resumed on B, to see f-mid", 5000);
      expect(wsReconnects).toHaveLength(1);
      expect(synced).toHaveLength(1); // the first snapshot only: the move to B was a resume
      await b.client.deregister({ key: { service: "failover", instanceId: "f-mid" } });
      // Longer than the TTL and the grace: had the lease not moved to B, C would see it go (a sleep that proves it does not).
      await new Promise((r) => setTimeout(r, TTL_MS + 1500));
      expect(events(wc.seen).filter((e) => e.includes(" f-1@"))).toEqual([expect.stringMatching(/^ADDED f-1@\d+$/)]);
      const d = await b.client.discover({ service: "failover" });
      expect(d.instance?.instanceId).toBe("f-1");

      await killChild(svc.child);
      await wc.until(/REMOVED f-1@\d+:STREAM_CLOSED/, 5000);
      await until(() => ws.get("failover", "f-1") === undefined, "the SDK watcher to see f-1 go", 5000);
    } finally {
      await wc.close();
      await ws.close();
    }
  });

  it("leaves a hung replica (SIGSTOP) for the next one when heartbeats go unanswered: no REMOVED", async () => {
    const registry = registryOf();
    const [d, e] = await Promise.all([0, 1].map(() => startReplica(redis.url, registry, { MAXINE_GRACE: "1s" })));
    const wc = watch(c.client, { services: ["hung"] });
    const session = new Session(createMaxineClient({ baseUrl: [d.server.url, e.server.url] }), { heartbeatIntervalMs: 200, ackTimeoutMs: 400 });
    const reconnects: unknown[] = [];
    session.on("reconnect", (info) => reconnects.push(info));
    try {
      await wc.until(/^end@/);
      await session.register({ service: "hung", instanceId: "h-1", host: "10.0.0.1", port: 1 }, { ttlMs: 3000 });
      await wc.until(/ADDED h-1@/);
      process.kill(d.server.child.pid!, "SIGSTOP");
      try {
        await until(() => reconnects.length > 0, "the session to move to E", 5000);
        await new Promise((r) => setTimeout(r, 3000 + 1000)); // past the TTL: a sleep that proves h-1 is NOT removed
      } finally {
        process.kill(d.server.child.pid!, "SIGCONT");
      }
      expect(events(wc.seen)).toEqual([expect.stringMatching(/^ADDED h-1@\d+$/)]);
      expect((await e.client.discover({ service: "hung" })).instance?.instanceId).toBe("h-1");
    } finally {
      await session.close();
      await wc.close();
      await Promise.all([stopReplica(d), stopReplica(e)]);
    }
  });

  it("removes the instances of a dead replica's streams after their TTL when the session dies with it", async () => {
    const wc = watch(c.client, { services: ["failover"] });
    try {
      await wc.until(/^end@/);
      const svc = await spawnService([b.server.url, c.server.url], "f-2");
      await wc.until(/ADDED f-2@/);
      const killedAt = Date.now();
      await Promise.all([b.server.kill(), killChild(svc.child)]);
      await wc.until(/REMOVED f-2@\d+:LEASE_EXPIRED/, TTL_MS + 5000);
      expect(Date.now() - killedAt).toBeGreaterThanOrEqual(TTL_MS - 700); // not before its lease could have lapsed
    } finally {
      await wc.close();
    }
  });
});
