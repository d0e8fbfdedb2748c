import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { OperatorStatus, ServingStatus, Strategy } from "../src/gen/maxine/registry/v1/registry_pb.js";
import { Watcher, type WatcherState } from "../src/watcher.js";
import type { ServerProcess } from "../../../server/test/support/server-process.js";
import { collectChanges, Scope } from "./support/scope.js";
import { ownedClient, startTestServer, type OwnedClient } from "./support/sdk-server.js";
import { TrackingTimers } from "./support/tracking-timers.js";
import { Recorder } from "./support/recorder.js";
import { delay, waitFor } from "./support/wait.js";

let server: ServerProcess;
const scope = new Scope();

beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  await server?.stop();
});
afterEach(() => scope.close());

function client(): OwnedClient {
  return scope.defer(ownedClient(server.url), (c) => c.connection.abort());
}

const add = (c: OwnedClient, service: string, instanceId: string, tags: string[] = []) =>
  c.client.register({ instance: { service, instanceId, host: "127.0.0.1", port: 9000, tags } });

describe("Watcher", () => {
  it("emits the first snapshot as added changes, then live events, and picks locally", async () => {
    const c = client();
    await add(c, "orders", "o2");
    await add(c, "orders", "o1");
    await add(c, "billing", "b1");
    const watcher = scope.defer(new Watcher(c.client, { services: ["orders", "billing"] }), (w) => w.close());
    const { summary } = collectChanges(watcher);
    await watcher.ready();
    expect(summary().map((s) => s.split("@")[0]).sort()).toEqual(["added:b1", "added:o1", "added:o2"]);
    expect(watcher.instances().map((i) => `${i.service}/${i.instanceId}`)).toEqual(["billing/b1", "orders/o1", "orders/o2"]);
    expect(watcher.state).toBe("live");
    expect(() => watcher.pick(Strategy.ROUND_ROBIN)).toThrow(/name the service/);
    expect([1, 2, 3].map(() => watcher.pick(Strategy.ROUND_ROBIN, undefined, "orders")!.instanceId)).toEqual(["o1", "o2", "o1"]);
    await add(c, "orders", "o3");
    await add(c, "shipping", "s1"); // not watched
    await waitFor(() => watcher.get("orders", "o3") !== undefined, "o3 in the watcher");
    expect(watcher.instances("shipping")).toEqual([]);
    expect(watcher.revision).toBe(4n);
  });

  it("applies its filter: an instance that stops matching is removed", async () => {
    const c = client();
    await add(c, "tagged", "t1", ["blue"]);
    await add(c, "tagged", "t2", ["green"]);
    const watcher = scope.defer(new Watcher(c.client, { services: "tagged", filter: { tags: ["blue"] } }), (w) => w.close());
    await watcher.ready();
    expect(watcher.instances().map((i) => i.instanceId)).toEqual(["t1"]);
    await add(c, "tagged", "t1", ["red"]);
    await waitFor(() => watcher.instances().length === 0, "t1 to leave the filtered view");
  });

  it("sees an operator's drain (SetOperatorStatus) as an update carrying operator_status, and stops picking the instance until it is cleared", async () => {
    const c = client();
    await add(c, "drained", "d1");
    const watcher = scope.defer(new Watcher(c.client, { services: "drained" }), (w) => w.close());
    await watcher.ready();
    expect(watcher.pick(Strategy.ROUND_ROBIN)?.instanceId).toBe("d1");
    const key = { namespace: "", service: "drained", instanceId: "d1" };
    await c.client.setOperatorStatus({ key, status: OperatorStatus.DRAINING });
    await waitFor(() => watcher.get("drained", "d1")?.operatorStatus === OperatorStatus.DRAINING, "the override in the watcher");
    expect(watcher.get("drained", "d1")?.status).toBe(ServingStatus.DRAINING);
    expect(watcher.pick(Strategy.ROUND_ROBIN)).toBeUndefined();
    await c.client.setOperatorStatus({ key, status: OperatorStatus.UNSPECIFIED });
    await waitFor(() => watcher.get("drained", "d1")?.status === ServingStatus.SERVING, "the reported status back");
    expect(watcher.get("drained", "d1")?.operatorStatus).toBe(OperatorStatus.UNSPECIFIED);
    expect(watcher.pick(Strategy.ROUND_ROBIN)?.instanceId).toBe("d1");
  });

  it("close ends the stream and timers, and rejects ready() if it never synced", async () => {
    const timers = new TrackingTimers();
    const c = client();
    const watcher = new Watcher(c.client, { services: "x", timers });
    const states: WatcherState[] = [];
    watcher.on("state", (s) => states.push(s));
    await watcher.ready();
    await watcher.close();
    expect(states).toEqual(["live", "closed"]);
    expect(timers.pending).toBe(0);
    await waitFor(() => c.connection.state() === "idle", "no stream left open on the connection", 1000);

    const early = new Watcher(client().client, { services: "x" });
    const ready = early.ready();
    await early.close();
    await expect(ready).rejects.toThrow(/closed/);
  });

  it("stops retrying on an error a retry cannot fix", async () => {
    const timers = new TrackingTimers();
    const watcher = new Watcher(client().client, { services: "not a valid name!", timers });
    const errors: unknown[] = [];
    watcher.on("error", (e) => errors.push(e));
    await expect(watcher.ready()).rejects.toThrow(/services\[0\]/);
    await waitFor(() => watcher.state === "closed", "the watcher to close itself");
    expect(errors).toHaveLength(1);
    expect(timers.pending).toBe(0);
  });

  it("retries with backoff while the server is unreachable, and an aborted signal closes it", async () => {
    const timers = new TrackingTimers();
    const ac = new AbortController();
    const watcher = new Watcher(ownedClient("http://127.0.0.1:1").client, {
      services: "x",
      timers,
      signal: ac.signal,
      backoff: { baseMs: 10, maxMs: 20 },
    });
    const errors: unknown[] = [];
    watcher.on("error", (e) => errors.push(e));
    await waitFor(() => errors.length >= 3, "several failed attempts");
    ac.abort();
    await waitFor(() => watcher.state === "closed", "the watcher to close");
    expect(timers.pending).toBe(0);
    await expect(watcher.ready()).rejects.toThrow(/closed/);
  });
  it("follows the aligned lifecycle: {start: false} opens no stream until start() or ready(), both idempotent; ready(timeoutMs) is bounded", async () => {
    const c = client();
    await add(c, "life", "l1");
    const rec = new Recorder();
    const watched = scope.defer(ownedClient(server.url, { interceptors: [rec.interceptor] }), (o) => o.connection.abort());
    const watcher = scope.defer(new Watcher(watched.client, { services: "life", start: false }), (w) => w.close());
    await delay(100); // proves that no stream opens by itself: a constructed watcher calls within microtasks
    expect(rec.calls.get("WatchServices") ?? 0).toBe(0);
    expect(watcher.start()).toBe(watcher);
    await watcher.ready(10_000);
    watcher.start();
    expect(rec.calls.get("WatchServices")).toBe(1);
    expect(watcher.instances().map((i) => i.instanceId)).toEqual(["l1"]);

    // a watcher closed before it started never starts; ready() rejects
    const never = new Watcher(c.client, { services: "life", start: false });
    await never.close();
    never.start();
    await expect(never.ready()).rejects.toThrow(/closed before the first snapshot/);
    // the bound: a server that never answers (a port nobody listens on keeps the watcher retrying)
    const nowhere = scope.defer(ownedClient("http://127.0.0.1:1"), (o) => o.connection.abort());
    const unreachable = scope.defer(new Watcher(nowhere.client, { services: "life" }), (w) => w.close());
    await expect(unreachable.ready(200)).rejects.toThrow(/no snapshot within 200 ms/);
    await expect(unreachable.ready(-1)).rejects.toThrow(/timeoutMs must be >= 0/);
  });
});
