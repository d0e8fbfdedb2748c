import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { connectOutcomeInterceptor } from "../src/connect-outcome-interceptor.js";
import { Health } from "../src/gen/grpc/health/v1/health_pb.js";
import type { Instance } from "../src/gen/maxine/registry/v1/registry_pb.js";
import { grpcJsOutcomeInterceptor } from "../src/grpc-js-outcome-interceptor.js";
import { Watcher, type WatcherEjectionEvent } from "../src/watcher.js";
import type { ServerProcess } from "../../../server/test/support/server-process.js";
import { startBackend, type Backend } from "./support/grpc-backends.js";
import { Scope } from "./support/scope.js";
import { ownedClient, startTestServer } from "./support/sdk-server.js";
import { waitFor } from "./support/wait.js";

// End to end: five real gRPC backends registered in a real Maxine server,
// a Watcher's pick choosing among them and an interceptor (grpc-js, then
// Connect) reporting every call's outcome. One backend starts answering
// UNAVAILABLE: the client stops sending to it after the threshold, sends a
// single trial after the ejection time, returns to it once it heals, and
// never ejects more than max_ejection_percent (20 % of 5: one).

const PROTO_ROOT = fileURLToPath(new URL("../../../proto", import.meta.url));
const EJECTION = { consecutiveFailures: 3, baseEjectionTimeMs: 300, maxEjectionPercent: 20, intervalMs: 60_000 };

let server: ServerProcess;
const scope = new Scope();

beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  await server?.stop();
});
afterEach(() => scope.close());

/** Caller makes one Check to an instance through the client library under test, reporting to the watcher. */
type Caller = (inst: Instance) => Promise<void>;

function grpcJsCaller(watcher: Watcher): Caller {
  const def = protoLoader.loadSync("grpc/health/v1/health.proto", { includeDirs: [PROTO_ROOT], enums: String, defaults: true });
  const Ctor = (grpc.loadPackageDefinition(def) as any).grpc.health.v1.Health as typeof grpc.Client; // eslint-disable-line @typescript-eslint/no-explicit-any -- loaded at run time
  const clients = new Map<string, grpc.Client & Record<string, any>>(); // eslint-disable-line @typescript-eslint/no-explicit-any -- loaded at run time
  scope.defer(clients, (m) => m.forEach((c) => c.close()));
  return (inst) => {
    let c = clients.get(inst.instanceId);
    if (c === undefined) {
      c = new Ctor(`127.0.0.1:${inst.port}`, grpc.credentials.createInsecure(), { interceptors: [grpcJsOutcomeInterceptor(watcher, inst)] }) as grpc.Client & Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- loaded at run time
      clients.set(inst.instanceId, c);
    }
    const client = c;
    return new Promise<void>((resolve) => client.check({ service: "" }, () => resolve()));
  };
}

function connectCaller(watcher: Watcher): Caller {
  const clients = new Map<string, Client<typeof Health>>();
  return async (inst) => {
    let c = clients.get(inst.instanceId);
    if (c === undefined) {
      const transport = createGrpcTransport({ baseUrl: `http://127.0.0.1:${inst.port}`, interceptors: [connectOutcomeInterceptor(watcher, inst)] });
      c = createClient(Health, transport);
      clients.set(inst.instanceId, c);
    }
    await c.check({ service: "" }).catch(() => undefined);
  };
}

async function scenario(makeCaller: (w: Watcher) => Caller, service: string): Promise<void> {
  const backends: Backend[] = [];
  for (let i = 0; i < 5; i++) backends.push(scope.defer(await startBackend(), (b) => b.close()));
  const c = scope.defer(ownedClient(server.url), (x) => x.connection.abort());
  for (const [i, b] of backends.entries()) {
    // a 10-minute lease: the default 10 s could expire them during a slow run
    await c.client.register({ instance: { service, instanceId: `b${i}`, host: "127.0.0.1", port: b.port }, leaseTtl: { seconds: 600n } });
  }
  const watcher = scope.defer(new Watcher(c.client, { services: service, ejection: EJECTION }), (w) => w.close());
  await watcher.ready(5000);
  const events: WatcherEjectionEvent[] = [];
  watcher.on("ejected", (e) => events.push(e));
  watcher.on("restored", (e) => events.push(e));
  const call = makeCaller(watcher);
  const picks: { id: string; at: number }[] = [];
  let maxEjected = 0;
  // five picks at once, then their calls: a trial is taken by one pick only
  const batch = async (): Promise<void> => {
    const chosen = [0, 1, 2, 3, 4].map(() => {
      const inst = watcher.pick()!;
      picks.push({ id: inst.instanceId, at: Date.now() });
      return inst;
    });
    await Promise.all(chosen.map(call));
    maxEjected = Math.max(maxEjected, watcher.ejectionCounters().ejected);
  };
  // batches until cond holds, for at most 10 s (a batch can take well under a millisecond)
  const until = async (cond: () => boolean, what: string): Promise<void> => {
    const deadline = Date.now() + 10_000;
    while (!cond()) {
      if (Date.now() > deadline) throw new Error(`no ${what} within 10 s`);
      await batch();
    }
  };
  const [, b1, b2] = backends as [Backend, Backend, Backend];

  await batch();
  expect(backends.map((b) => b.hits)).toEqual([1, 1, 1, 1, 1]);

  // b1 fails: three failures, then no call until the ejection ends
  b1.failing = true;
  await until(() => events.length >= 1, "ejection of b1");
  expect(events[0]).toMatchObject({ type: "ejected", service, instanceId: "b1", reason: "consecutive_failures", ejections: 1, durationMs: 300 });
  expect(b1.hits).toBe(1 + 3);
  // b2 fails too: the cap (20 % of 5 = 1) keeps it in while b1 is out or on trial
  b2.failing = true;
  await until(() => events.length >= 2, "b1's trial");
  const first = events[0]!;
  const b1Picks = picks.filter((p) => p.id === "b1" && p.at > first.at);
  expect(b1Picks.length).toBe(1); // the single trial, once the ejection was over
  expect(b1Picks[0]!.at).toBeGreaterThanOrEqual(first.at + 300);
  expect(events[1]).toMatchObject({ type: "ejected", instanceId: "b1", reason: "trial_failed", ejections: 2, durationMs: 600 });
  expect(b1.hits).toBe(1 + 3 + 1);

  // b1 heals: its next trial restores it; then b2, failing all along, is ejected
  b1.failing = false;
  await until(() => events.length >= 4, "b1 restored and b2 ejected");
  expect(events[2]).toMatchObject({ type: "restored", instanceId: "b1" });
  expect(events[3]).toMatchObject({ type: "ejected", instanceId: "b2", reason: "consecutive_failures", ejections: 1 });
  expect(events[2]!.at).toBeGreaterThanOrEqual(events[1]!.at + 600);
  expect(maxEjected).toBe(1);

  // b2 heals: after its trial everybody takes traffic again
  b2.failing = false;
  await until(() => events.length >= 5, "b2 restored");
  expect(events[4]).toMatchObject({ type: "restored", instanceId: "b2" });
  const before = backends.map((b) => b.hits);
  await batch();
  expect(backends.map((b, i) => b.hits - before[i]!)).toEqual([1, 1, 1, 1, 1]);
  expect(watcher.ejectionCounters()).toEqual({ ejectedTotal: 3, restoredTotal: 2, ejected: 0 });
  expect(maxEjected).toBe(1);
}

describe("client-side outlier ejection against real gRPC backends", () => {
  it("grpc-js client with grpcJsOutcomeInterceptor", async () => {
    await scenario(grpcJsCaller, "eject-grpcjs");
  });
  it("connect-es gRPC client with connectOutcomeInterceptor", async () => {
    await scenario(connectCaller, "eject-connect");
  });
  it("connectOutcomeInterceptor judges a server stream by how it ends; an abandoned one is not reported", async () => {
    const backend = scope.defer(await startBackend(), (b) => b.close());
    backend.streamLength = 3;
    const reports: boolean[] = [];
    const sink = { report: (_t: unknown, ok: boolean) => void reports.push(ok) };
    const transport = createGrpcTransport({
      baseUrl: `http://127.0.0.1:${backend.port}`,
      interceptors: [connectOutcomeInterceptor(sink, { service: "s", instanceId: "i" })],
    });
    const health = createClient(Health, transport);
    let n = 0;
    for await (const _ of health.watch({ service: "" })) n++;
    expect([n, reports]).toEqual([3, [true]]);
    for await (const _ of health.watch({ service: "" })) break; // abandoned after the first answer
    expect(reports).toEqual([true]);
    backend.failing = true;
    await expect(
      (async () => {
        for await (const _ of health.watch({ service: "" })) n++;
      })(),
    ).rejects.toThrow(/told to fail/);
    expect(reports).toEqual([true, false]);
  });
});
