import { equals } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import { InstanceSchema, ResetReason, type Instance, type WatchServicesRequest } from "../src/gen/maxine/registry/v1/registry_pb.js";
import type { MaxineClient } from "../src/client.js";
import { instanceDigest } from "../src/instance-digest.js";
import { Session } from "../src/session.js";
import { Watcher } from "../src/watcher.js";
import type { ServerProcess } from "../../../server/test/support/server-process.js";
import { Recorder } from "./support/recorder.js";
import { collectChanges, nextEvent, Scope } from "./support/scope.js";
import { ownedClient, startTestServer, type OwnedClient } from "./support/sdk-server.js";
import { freePort, waitFor } from "./support/wait.js";

// End to end: the session and the watcher survive a server restart (the
// in-memory registry comes back empty under a new registry_id), and a watcher
// that resumes after a brief disconnect gets every event it missed.

const scope = new Scope();
afterEach(() => scope.close());

async function server(env: Record<string, string> = {}): Promise<ServerProcess> {
  return scope.defer(await startTestServer(env), (s) => s.stop());
}

function client(url: string, opts: Parameters<typeof ownedClient>[1] = {}): OwnedClient {
  return scope.defer(ownedClient(url, opts), (c) => c.connection.abort());
}

/**
 * expectViewEqualsServer compares a watcher's view of service with Discover
 * include_all, field by field, but for the live lease state that only
 * include_all carries (reported_load, lease_expires_at: not revisioned, no
 * watch events).
 */
async function expectViewEqualsServer(watcher: Watcher, unary: MaxineClient, service: string): Promise<void> {
  const d = await unary.discover({ service, includeAll: true });
  const view: Instance[] = watcher.instances(service);
  expect(view.map((i) => i.instanceId)).toEqual(d.instances.map((i) => i.instanceId));
  for (const listed of d.instances) {
    expect(listed.leaseExpiresAt, listed.instanceId).toBeDefined(); // memory store: this server holds every lease
    listed.reportedLoad = undefined;
    listed.leaseExpiresAt = undefined;
  }
  view.forEach((inst, i) => expect(equals(InstanceSchema, inst, d.instances[i]!), inst.instanceId).toBe(true));
  expect(watcher.registryId).toBe(d.registryId);
}

describe("end to end", () => {
  it("(c) after a restart on the same port, the session re-registers and the watcher resets to the new registry", async () => {
    const port = String(await freePort());
    let srv = await server({ MAXINE_PORT: port });
    const url = srv.url;
    const backoff = { baseMs: 50, maxMs: 250 };
    const session = scope.defer(new Session(client(url).client, { backoff }), (s) => s.close());
    const watcher = scope.defer(new Watcher(client(url).client, { services: "restart", backoff }), (w) => w.close());
    await watcher.ready();
    const oldRegistry = watcher.registryId;
    const handle = await session.register({ service: "restart", instanceId: "r1", host: "127.0.0.1", port: 9000 }, { ttlMs: 3000 });
    await waitFor(() => watcher.get("restart", "r1") !== undefined, "r1 in the watcher");

    const reregistered = nextEvent(session, "reregister", 10_000);
    const reset = nextEvent(watcher, "synced", 10_000, (s) => s.reset);
    expect(await srv.stop()).toBe(0); // SIGTERM: streams end with UNAVAILABLE
    srv = await server({ MAXINE_PORT: port });
    expect(srv.url).toBe(url);

    const [again] = await reregistered;
    expect(again).toBe(handle);
    // Registered again by the new stream's first beat, which carries the instance whole: no Register call.
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).toMatch(/^maxine_beats_registered_total 1$/m);
    const registers = [...metrics.matchAll(/^maxine_rpc_requests_total\{method="Register",[^}]*\} (\d+)$/gm)];
    expect(registers.length).toBeGreaterThan(0);
    expect(registers.reduce((n, m) => n + Number(m[1]), 0)).toBe(0);
    const [sync] = await reset;
    expect(sync.reason).toBe(ResetReason.REGISTRY_CHANGED);
    expect(sync.registryId).not.toBe(oldRegistry);
    await waitFor(() => watcher.get("restart", "r1") !== undefined, "r1 in the watcher again");
    // The watcher resumed naming what it held (r1): if r1 was back before it, the
    // differential reset kept its copy, with the old registry's times and
    // revisions; what a client acts on (its content digest) equals the server's.
    const d = await client(url).client.discover({ service: "restart", includeAll: true });
    expect(watcher.instances("restart").map((i) => `${i.instanceId}=${instanceDigest(i)}`)).toEqual(d.instances.map((i) => `${i.instanceId}=${instanceDigest(i)}`));
    expect(watcher.registryId).toBe(d.registryId);
  });

  it("(d) a watcher that resumes after a brief disconnect misses no event", async () => {
    const srv = await server();
    const unary = client(srv.url).client;
    const add = (id: string, port = 9000) =>
      unary.register({ instance: { service: "resume", instanceId: id, host: "127.0.0.1", port } });
    await add("a");
    await add("b");
    const rec = new Recorder();
    const owned = client(srv.url, { interceptors: [rec.interceptor] });
    const watcher = scope.defer(new Watcher(owned.client, { services: "resume", backoff: { baseMs: 20, maxMs: 100 } }), (w) => w.close());
    await watcher.ready();
    const before = watcher.revision;
    const { changes, summary } = collectChanges(watcher);
    const syncs: unknown[] = [];
    watcher.on("synced", (s) => syncs.push(s));

    // Drop the watch connection and keep the server unreachable while the registry changes.
    rec.failing.set("WatchServices", new ConnectError("test: server unreachable", Code.Unavailable));
    const down = nextEvent(watcher, "disconnect", 3000);
    owned.connection.abort();
    await down;
    const revisions = [
      (await add("c")).revision,
      (await add("a", 9001)).revision, // UPDATED
      (await unary.deregister({ key: { service: "resume", instanceId: "b" } })).revision,
      (await add("d")).revision,
    ];
    await waitFor(() => (rec.calls.get("WatchServices") ?? 0) >= 3, "a few failed resumes");
    expect(watcher.state).toBe("backoff");
    rec.failing.delete("WatchServices");

    await nextEvent(watcher, "reconnect", 3000);
    await waitFor(() => watcher.revision >= revisions.at(-1)!, "the watcher to catch up");
    expect(summary()).toEqual([`added:c@${revisions[0]}`, `updated:a@${revisions[1]}`, `removed:b@${revisions[2]}`, `added:d@${revisions[3]}`]);
    // Gap-free: every revision after the one the watcher had, in order.
    expect(changes.map((c) => c.revision)).toEqual(revisions.map((_, i) => before + BigInt(i + 1)));
    expect(syncs).toEqual([]); // resumed by replay: no snapshot
    const resume = rec.of<WatchServicesRequest>("WatchServices").at(-1)!;
    expect(resume.resumeRevision).toBe(before);
    expect(resume.registryId).toBe(watcher.registryId);
    await expectViewEqualsServer(watcher, unary, "resume");
  });
});
