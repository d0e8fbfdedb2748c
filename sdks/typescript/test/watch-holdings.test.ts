import type { Interceptor } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import { ResetReason, type WatchServicesRequest, type WatchServicesResponse } from "../src/gen/maxine/registry/v1/registry_pb.js";
import { instanceDigest } from "../src/instance-digest.js";
import type { Timers } from "../src/timers.js";
import { Watcher } from "../src/watcher.js";
import type { ServerProcess } from "../../../server/test/support/server-process.js";
import { collectChanges, nextEvent, Scope } from "./support/scope.js";
import { ownedClient, startTestServer } from "./support/sdk-server.js";
import { freePort, waitFor } from "./support/wait.js";

// End to end against a real server process: a namespace-wide Watcher that
// resumes into a restarted registry names what it holds, gets a
// differential reset carrying only the differences, and ends with a view
// equal to the registry's.

const scope = new Scope();
afterEach(() => scope.close());

/** Tap records the WatchServices requests a client sends and the messages it receives. */
class Tap {
  readonly requests: WatchServicesRequest[] = [];
  readonly received: WatchServicesResponse[] = [];
  readonly interceptor: Interceptor = (next) => async (req) => {
    if (req.method.name !== "WatchServices" || !req.stream) return next(req);
    const requests = this.requests;
    const received = this.received;
    const res = await next({
      ...req,
      message: (async function* () {
        for await (const m of req.message) {
          requests.push(m as WatchServicesRequest);
          yield m;
        }
      })(),
    });
    if (!res.stream) return res;
    return {
      ...res,
      message: (async function* () {
        for await (const m of res.message) {
          received.push(m as WatchServicesResponse);
          yield m;
        }
      })(),
    };
  };
}

/** Gate is a Timers whose timeouts wait while it is shut: a watcher's backoff then holds until the test opens it. */
class Gate implements Timers {
  private shut = false;
  private held: Array<() => void> = [];
  setTimeout(fn: () => void, ms: number): unknown {
    if (!this.shut) return setTimeout(fn, ms);
    this.held.push(fn);
    return fn;
  }
  clearTimeout(handle: unknown): void {
    if (typeof handle === "function") this.held = this.held.filter((f) => f !== handle);
    else clearTimeout(handle as ReturnType<typeof setTimeout>);
  }
  now(): number {
    return Date.now();
  }
  close(): void {
    this.shut = true;
  }
  open(): void {
    this.shut = false;
    for (const f of this.held.splice(0)) f();
  }
  get waiting(): number {
    return this.held.length;
  }
}

const inst = (service: string, id: string, port = 9000) => ({
  service,
  instanceId: id,
  host: "127.0.0.1",
  port,
  metadata: (id.endsWith("3") ? { rack: "r3" } : {}) as Record<string, string>,
});
const ids = Array.from({ length: 15 }, (_, i) => `i${i}`);

describe("a Watcher resuming into a restarted registry", () => {
  it("names what it holds and applies a differential reset of only the differences", async () => {
    const port = String(await freePort());
    let srv: ServerProcess = await startTestServer({ MAXINE_PORT: port });
    scope.defer(null, () => srv.stop());
    const unary = () => scope.defer(ownedClient(srv.url), (c) => c.connection.abort()).client;
    const registerAll = async (list: ReturnType<typeof inst>[]) => {
      const c = unary();
      await Promise.all(list.map((instance) => c.register({ instance })));
    };
    const before = ["alpha", "beta"].flatMap((s) => ids.map((i) => inst(s, i)));
    await registerAll(before);

    const tap = new Tap();
    const gate = new Gate();
    const watching = scope.defer(ownedClient(srv.url, { interceptors: [tap.interceptor] }), (c) => c.connection.abort());
    const watcher = scope.defer(new Watcher(watching.client, { backoff: { baseMs: 50, maxMs: 100 }, timers: gate }), (w) => w.close());
    await watcher.ready();
    expect(watcher.instances().length).toBe(30);
    const oldRegistry = watcher.registryId;

    // the registry restarts on the same port; the watcher waits in its backoff until everything is back
    gate.close();
    expect(await srv.stop()).toBe(0);
    await waitFor(() => gate.waiting > 0, "the watcher in its backoff");
    srv = await startTestServer({ MAXINE_PORT: port });
    const changed = ["alpha/i0", "alpha/i1"];
    const gone = ["beta/i13", "beta/i14"];
    const added = ["gamma/n1", "gamma/n2"];
    const key = (i: { service: string; instanceId: string }) => `${i.service}/${i.instanceId}`;
    await registerAll([
      ...before.filter((i) => !gone.includes(key(i))).map((i) => (changed.includes(key(i)) ? { ...i, port: 9001 } : i)),
      inst("gamma", "n1"),
      inst("gamma", "n2"),
    ]);

    const changes = collectChanges(watcher);
    const reset = nextEvent(watcher, "synced", 10_000, (s) => s.reset);
    const seenBefore = tap.received.length;
    gate.open();
    const [sync] = await reset;
    expect(sync.reason).toBe(ResetReason.REGISTRY_CHANGED);
    expect(sync.registryId).not.toBe(oldRegistry);

    // the resume named all 30 held instances with their digests
    const resume = tap.requests.at(-1)!;
    expect(resume.registryId).toBe(oldRegistry);
    expect(resume.held?.services.flatMap((s) => s.instances.map((i) => `${s.service}/${i.instanceId}`)).sort()).toEqual(before.map(key).sort());
    // the reset carried only the differences
    const reply = tap.received.slice(seenBefore);
    const sent = reply.flatMap((m) => (m.message.case === "snapshot" ? m.message.value.instances.map(key) : []));
    const removed = reply.flatMap((m) => (m.message.case === "snapshot" ? m.message.value.removed.map(key) : []));
    const end = reply.find((m) => m.message.case === "snapshotEnd")!;
    expect(end.message.case === "snapshotEnd" && end.message.value.differential).toBe(true);
    expect(sent.sort()).toEqual([...changed, ...added].sort());
    expect(removed.sort()).toEqual(gone.sort());
    expect(changes.changes.map((c) => `${c.type}:${key(c.instance)}`).sort()).toEqual(
      [...changed.map((k) => `updated:${k}`), ...added.map((k) => `added:${k}`), ...gone.map((k) => `removed:${k}`)].sort(),
    );

    // the view now equals the registry's instances (what a client acts on: their digests)
    const d = await Promise.all(["alpha", "beta", "gamma"].map((service) => unary().discover({ service, includeAll: true })));
    const server = d.flatMap((r) => r.instances).map((i) => `${key(i)}=${instanceDigest(i)}`).sort();
    expect(watcher.instances().map((i) => `${key(i)}=${instanceDigest(i)}`).sort()).toEqual(server);
    expect(server.length).toBe(30);

    // live changes follow
    await unary().register({ instance: inst("gamma", "n3") });
    await waitFor(() => watcher.get("gamma", "n3") !== undefined, "n3 in the watcher");
  });

  it("resumes without holdings when the server refuses them (MAXINE_WATCH_MAX_HELD lower than the view)", async () => {
    const port = String(await freePort());
    let srv: ServerProcess = await startTestServer({ MAXINE_PORT: port, MAXINE_WATCH_MAX_HELD: "3" });
    scope.defer(null, () => srv.stop());
    const c = scope.defer(ownedClient(srv.url), (x) => x.connection.abort()).client;
    await Promise.all(ids.slice(0, 5).map((i) => c.register({ instance: inst("alpha", i) })));
    const tap = new Tap();
    const watching = scope.defer(ownedClient(srv.url, { interceptors: [tap.interceptor] }), (x) => x.connection.abort());
    const watcher = scope.defer(new Watcher(watching.client, { backoff: { baseMs: 50, maxMs: 100 } }), (w) => w.close());
    await watcher.ready();
    const reset = nextEvent(watcher, "synced", 10_000, (s) => s.reset);
    expect(await srv.stop()).toBe(0);
    srv = await startTestServer({ MAXINE_PORT: port, MAXINE_WATCH_MAX_HELD: "3" });
    await reset;
    expect(watcher.state).toBe("live");
    expect(watcher.instances().length).toBe(0);
    const withHeld = tap.requests.filter((r) => r.held !== undefined);
    expect(withHeld.length).toBeGreaterThan(0);
    expect(tap.requests.at(-1)!.held).toBeUndefined();
  });
});
