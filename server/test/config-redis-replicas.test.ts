import { Code, createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { ConfigService, type WatchResponse } from "@maxine/sdk/gen/maxine/config/v1/config_pb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startRedis, type RedisProcess } from "./support/redis-server.js";
import { startServerProcess, type ServerProcess } from "./support/server-process.js";

// Redis mode: configuration shared by replicas (server processes on one
// redis-server this test starts) with one sequence of revisions: a Put on
// one is seen by a watcher on another, compare-and-set holds across them,
// and a watch resumes on another replica from where it was.

type ConfigClient = Client<typeof ConfigService>;

interface Replica {
  readonly server: ServerProcess;
  readonly client: ConfigClient;
  readonly session: Http2SessionManager;
}

let redis: RedisProcess;
const replicas: Replica[] = [];

async function replica(): Promise<Replica> {
  const server = await startServerProcess({ MAXINE_STORE: "redis", MAXINE_REDIS_URL: redis.url, MAXINE_REDIS_REGISTRY: "cfg", MAXINE_SHUTDOWN_GRACE: "300ms" });
  const session = new Http2SessionManager(server.url);
  const r = { server, session, client: createClient(ConfigService, createGrpcTransport({ baseUrl: server.url, sessionManager: session })) };
  replicas.push(r);
  return r;
}

/** watch collects a Watch stream's messages until aborted. */
function watch(c: ConfigClient, req: Parameters<ConfigClient["watch"]>[0]): { messages: WatchResponse[]; abort(): void; done: Promise<void> } {
  const ac = new AbortController();
  const messages: WatchResponse[] = [];
  const done = (async () => {
    try {
      for await (const m of c.watch(req, { signal: ac.signal })) messages.push(m);
    } catch {
      // aborted
    }
  })();
  return { messages, abort: () => ac.abort(), done };
}

async function until(pred: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const text = (s: string) => new TextEncoder().encode(s);

beforeAll(async () => {
  redis = await startRedis();
});

afterAll(async () => {
  for (const r of replicas) {
    r.session.abort();
    if (r.server.child.exitCode === null && r.server.child.signalCode === null) await r.server.stop();
  }
  await redis.close();
});

describe("service configuration across Redis replicas", () => {
  it("a Put on A is seen by a watcher on B at the same revision; compare-and-set holds across replicas; a watch resumes on another replica", async () => {
    const [a, b, c] = [await replica(), await replica(), await replica()];
    const first = await a.client.put({ service: "pay", key: "k", value: text("0") });
    const wb = watch(b.client, { services: ["pay"] });
    await until(() => wb.messages.some((m) => m.message.case === "snapshotEnd"), "B's snapshot");
    const end = wb.messages.find((m) => m.message.case === "snapshotEnd")!.message.value as { revision: bigint; registryId: string };
    expect(end.revision).toBe(first.entry!.revision);

    const put = await a.client.put({ service: "pay", key: "k", value: text("1"), expectedVersion: 1n });
    await until(() => wb.messages.some((m) => m.message.case === "event"), "B's event");
    const ev = wb.messages.find((m) => m.message.case === "event")!.message.value as { revision: bigint; entry: { version: bigint } };
    expect(ev.revision).toBe(put.entry!.revision);
    expect(ev.entry.version).toBe(2n);

    // 30 writers on three replicas, all expecting version 2: exactly one wins, the others are refused
    const results = await Promise.allSettled(
      Array.from({ length: 30 }, (_, i) => [a, b, c][i % 3]!.client.put({ service: "pay", key: "k", value: text(`w${i}`), expectedVersion: 2n })),
    );
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    for (const r of results) if (r.status === "rejected") expect(r.reason).toMatchObject({ code: Code.FailedPrecondition });
    const history = await c.client.history({ service: "pay", key: "k" });
    expect(history.entries.map((e) => e.version)).toEqual([3n, 2n, 1n]);

    // B's watcher goes away; more changes on A; a resume on C from B's last revision replays exactly them
    await until(() => wb.messages.filter((m) => m.message.case === "event").length === 2, "B's second event");
    const last = (wb.messages.filter((m) => m.message.case === "event").at(-1)!.message.value as { revision: bigint }).revision;
    wb.abort();
    await wb.done;
    const more = [];
    for (let i = 0; i < 5; i++) more.push((await a.client.put({ service: "pay", key: `m${i}`, value: text("x") })).entry!.revision);
    const wc = watch(c.client, { services: ["pay"], resumeRevision: last, registryId: end.registryId });
    // the replay (up to what C had applied when the watch opened), its bookmark, then live changes: all five, in order
    await until(() => wc.messages.filter((m) => m.message.case === "event").length >= more.length && wc.messages.some((m) => m.message.case === "progress"), "C's five events and its bookmark");
    expect(wc.messages.some((m) => m.message.case === "snapshotEnd")).toBe(false);
    expect(wc.messages.filter((m) => m.message.case === "event").map((m) => (m.message.value as { revision: bigint }).revision)).toEqual(more);
    wc.abort();
    await wc.done;
  });
});
