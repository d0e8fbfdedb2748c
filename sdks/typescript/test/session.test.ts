import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { HeartbeatRequest } from "../src/gen/maxine/registry/v1/registry_pb.js";
import { OperatorStatus, RemovalReason, ServingStatus, Strategy } from "../src/gen/maxine/registry/v1/registry_pb.js";
import { Session } from "../src/session.js";
import { Watcher } from "../src/watcher.js";
import type { ServerProcess } from "../../../server/test/support/server-process.js";
import { Recorder } from "./support/recorder.js";
import { collectChanges, nextEvent, Scope } from "./support/scope.js";
import { ownedClient, startTestServer, type OwnedClient } from "./support/sdk-server.js";
import { TrackingTimers } from "./support/tracking-timers.js";
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

function client(rec?: Recorder): OwnedClient {
  const c = ownedClient(server.url, rec !== undefined ? { interceptors: [rec.interceptor] } : {});
  return scope.defer(c, (x) => x.connection.abort());
}

async function watch(service: string): Promise<Watcher> {
  const w = scope.defer(new Watcher(client().client, { services: service }), (x) => x.close());
  await w.ready();
  return w;
}

const instance = (service: string, instanceId: string) => ({ service, instanceId, host: "127.0.0.1", port: 8080 });

describe("Session", () => {
  it("beats all instances on one stream at a third of the smallest TTL", async () => {
    const rec = new Recorder();
    const session = scope.defer(new Session(client(rec).client), (s) => s.close());
    await session.register(instance("beat", "slow"), { ttlMs: 900 });
    expect(session.heartbeatIntervalMs).toBe(300);
    await session.register(instance("beat", "fast"), { ttlMs: 300 });
    expect(session.heartbeatIntervalMs).toBe(100);
    const from = Date.now();
    const periodic = () => rec.of<HeartbeatRequest>("Heartbeat").filter((_, i) => rec.times("Heartbeat")[i]! > from);
    await waitFor(() => periodic().length >= 6, "six periodic beats", 5000);
    // paced at the 100 ms interval (each wait within ±10 %), not sent in a burst: the sixth comes five waits after the first
    expect(Date.now() - from).toBeGreaterThanOrEqual(5 * 90);
    for (const req of periodic()) expect(req.beats.map((b) => b.key!.instanceId).sort()).toEqual(["fast", "slow"]);
    expect(rec.calls.get("Heartbeat")).toBe(1); // one stream for every instance
    // The 300 ms lease survives because of the beats, well past its TTL.
    const d = await client().client.discover({ service: "beat", includeAll: true });
    expect(d.instances.map((i) => i.instanceId)).toEqual(["fast", "slow"]);
  });

  it("carries status and load on heartbeats", async () => {
    const watcher = await watch("status");
    const rec = new Recorder();
    const session = scope.defer(new Session(client(rec).client), (s) => s.close());
    const h = await session.register(instance("status", "s1"), { ttlMs: 3000 });
    const { changes } = collectChanges(watcher);
    await h.drain();
    await waitFor(() => changes.length === 1, "the UPDATED event");
    expect(changes[0]).toMatchObject({ type: "updated" });
    expect(changes[0]!.instance.status).toBe(ServingStatus.DRAINING);
    expect(watcher.pick(Strategy.ROUND_ROBIN)).toBeUndefined(); // a draining instance is not picked
    h.setLoad(7.5);
    await h.setStatus(ServingStatus.SERVING);
    const last = rec.of<HeartbeatRequest>("Heartbeat").at(-1)!;
    expect(last.beats[0]).toMatchObject({ status: ServingStatus.SERVING, load: 7.5 });
    expect(() => h.setLoad(-1)).toThrow(RangeError);
    expect(() => h.setStatus(ServingStatus.UNSPECIFIED)).toThrow(RangeError);
  });

  it("a process that registers while an operator drained its instance reports its own status, so undrain brings it back", async () => {
    const c = client();
    const key = { namespace: "", service: "restarted", instanceId: "r1" };
    await c.client.register({ instance: instance("restarted", "r1") });
    await c.client.setOperatorStatus({ key, status: OperatorStatus.DRAINING });
    // the process restarts and registers the same instance: the answer shows the override
    const rec = new Recorder();
    const session = scope.defer(new Session(client(rec).client), (s) => s.close());
    const handle = await session.register(instance("restarted", "r1"), { ttlMs: 1000 });
    expect(handle.instance).toMatchObject({ status: ServingStatus.DRAINING, operatorStatus: OperatorStatus.DRAINING });
    expect(handle.status).toBe(ServingStatus.SERVING); // what its beats report, not the override
    const beats = rec.of<HeartbeatRequest>("Heartbeat").length;
    await waitFor(() => rec.of<HeartbeatRequest>("Heartbeat").length >= beats + 2, "two beats at a third of the 1 s TTL", 5000);
    for (const req of rec.of<HeartbeatRequest>("Heartbeat")) expect(req.beats[0]!.status).toBe(ServingStatus.SERVING);
    await c.client.setOperatorStatus({ key, status: OperatorStatus.UNSPECIFIED });
    const d = await c.client.discover({ service: "restarted" });
    expect(d.instance).toMatchObject({ instanceId: "r1", status: ServingStatus.SERVING, operatorStatus: OperatorStatus.UNSPECIFIED });
  });

  it("registers again an instance the server no longer knows (UNKNOWN ack)", async () => {
    const watcher = await watch("forgot");
    const session = scope.defer(new Session(client().client), (s) => s.close());
    const h = await session.register(instance("forgot", "f1"), { ttlMs: 300 });
    const { summary } = collectChanges(watcher);
    const reregistered = nextEvent(session, "reregister", 3000);
    await client().client.deregister({ key: h.key }); // behind the session's back
    const [again] = await reregistered;
    expect(again).toBe(h);
    await waitFor(() => watcher.get("forgot", "f1") !== undefined, "the instance back in the watcher");
    expect(summary().map((s) => s.split("@")[0])).toEqual(["removed:f1", "added:f1"]);
    expect(h.registered).toBe(true);
    await delay(400); // past the TTL: the new lease is heartbeated too (a sleep that proves f1 is NOT removed)
    expect(watcher.get("forgot", "f1")).toBeDefined();
  });

  it("close deregisters every instance, then ends the stream and its timers", async () => {
    const watcher = await watch("closing");
    const timers = new TrackingTimers();
    const owned = client();
    const session = new Session(owned.client, { timers });
    const states: string[] = [];
    session.on("state", (s) => states.push(s));
    const a = await session.register(instance("closing", "a"), { ttlMs: 1000 });
    await session.register(instance("closing", "b"), { ttlMs: 1000 });
    expect(timers.pending).toBe(1); // the beat timer
    const { changes } = collectChanges(watcher);
    await session.close();
    expect(changes.map((c) => [c.type, c.instance.instanceId, c.removalReason]).sort()).toEqual([
      ["removed", "a", RemovalReason.DEREGISTERED],
      ["removed", "b", RemovalReason.DEREGISTERED],
    ]);
    expect(states).toEqual(["connecting", "connected", "closing", "closed"]);
    expect(timers.pending).toBe(0);
    await waitFor(() => owned.connection.state() === "idle", "no stream left open on the connection", 1000);
    expect(a.registered).toBe(false);
    await expect(session.register(instance("closing", "c"))).rejects.toThrow(/closed/);
    await delay(1200); // past the grace: nothing else happens (a sleep that proves it)
    expect(changes).toHaveLength(2);
  });

  it("deregister of the last instance ends the stream; an aborted signal closes the session", async () => {
    const watcher = await watch("signal");
    const timers = new TrackingTimers();
    const ac = new AbortController();
    const owned = client();
    const session = new Session(owned.client, { timers, signal: ac.signal });
    const a = await session.register(instance("signal", "a"), { ttlMs: 1000 });
    const { changes } = collectChanges(watcher);
    await a.deregister();
    await waitFor(() => session.state === "idle", "the session to go idle");
    expect(timers.pending).toBe(0);
    await session.register(instance("signal", "b"), { ttlMs: 1000 });
    expect(session.state).toBe("connected");
    const closed = nextEvent(session, "close", 3000);
    ac.abort();
    await closed;
    expect(changes.map((c) => `${c.type}:${c.instance.instanceId}:${RemovalReason[c.removalReason]}`)).toEqual([
      "removed:a:DEREGISTERED",
      "added:b:UNSPECIFIED",
      "removed:b:DEREGISTERED",
    ]);
    expect(timers.pending).toBe(0);
    await waitFor(() => owned.connection.state() === "idle", "no stream left open on the connection", 1000);
  });
});
