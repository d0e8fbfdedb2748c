import type { ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { RemovalReason, ServingStatus } from "../src/gen/maxine/registry/v1/registry_pb.js";
import { Session } from "../src/session.js";
import { Watcher } from "../src/watcher.js";
import type { ServerProcess } from "../../../server/test/support/server-process.js";
import { spawnReady } from "./support/child.js";
import { collectChanges, nextEvent, Scope } from "./support/scope.js";
import { ownedClient, startTestServer, type OwnedClient } from "./support/sdk-server.js";
import { delay, waitFor } from "./support/wait.js";

// End to end, against a real server child process with MAXINE_GRACE=1s:
// a crashed process's instances go after the grace; a connection that drops
// and comes back within the grace causes no churn at all.

const FIXTURE = fileURLToPath(new URL("./fixtures/register-child.mjs", import.meta.url));
const GRACE_MS = 1000;

let server: ServerProcess;
const scope = new Scope();

beforeAll(async () => {
  server = await startTestServer({ MAXINE_GRACE: `${GRACE_MS}ms` });
});
afterAll(async () => {
  await server?.stop();
});
afterEach(() => scope.close());

function client(): OwnedClient {
  return scope.defer(ownedClient(server.url), (c) => c.connection.abort());
}

async function watch(service: string): Promise<Watcher> {
  const w = scope.defer(new Watcher(client().client, { services: service }), (x) => x.close());
  await w.ready();
  return w;
}

/** spawnService runs the fixture and resolves once it printed "ready"; afterEach kills it by PID if the test did not. */
function spawnService(service: string, instanceId: string): Promise<ChildProcess> {
  return spawnReady(scope, [FIXTURE, server.url, service, instanceId, "10000"]);
}

describe("end to end", () => {
  it("(a) removes the instance of a SIGKILLed process within grace + 0.5 s", async () => {
    const watcher = await watch("crash");
    const child = await spawnService("crash", "crash-1");
    await waitFor(() => watcher.get("crash", "crash-1") !== undefined, "the child's instance in the watcher");
    const removed = nextEvent(watcher, "removed", 5000);
    const killedAt = performance.now();
    process.kill(child.pid!, "SIGKILL");
    const [change] = await removed;
    const elapsed = performance.now() - killedAt;
    expect(change.instance.instanceId).toBe("crash-1");
    // STREAM_CLOSED, not LEASE_EXPIRED: its 10 s lease had long to run.
    expect(change.removalReason).toBe(RemovalReason.STREAM_CLOSED);
    expect(elapsed).toBeGreaterThanOrEqual(GRACE_MS - 100);
    expect(elapsed).toBeLessThan(GRACE_MS + 500);
    expect(watcher.instances("crash")).toEqual([]);
  });

  it("(b) a dropped and reopened connection within the grace causes no watch event", async () => {
    const watcher = await watch("flap");
    const owned = client();
    const session = scope.defer(new Session(owned.client, { backoff: { baseMs: 50, maxMs: 200 } }), (s) => s.close());
    const disconnects: unknown[] = [];
    session.on("disconnect", (err) => disconnects.push(err));
    await session.register({ service: "flap", instanceId: "flap-1", host: "127.0.0.1", port: 9000 }, { ttlMs: 5000 });
    await waitFor(() => watcher.get("flap", "flap-1") !== undefined, "the instance in the watcher");
    const { summary } = collectChanges(watcher);

    const reconnected = nextEvent(session, "reconnect", 3000);
    owned.connection.abort(); // the session's HTTP/2 connection dies under its heartbeat stream
    const [info] = await reconnected;
    expect(disconnects).toHaveLength(1);
    expect(info.downMs).toBeLessThan(GRACE_MS);

    await delay(GRACE_MS + 500); // the old stream's grace has passed
    // A marker change proves the watch stream is live and that nothing came before it.
    const unary = client().client;
    await unary.register({ instance: { service: "flap", instanceId: "marker", host: "127.0.0.1", port: 1 } });
    await waitFor(() => watcher.get("flap", "marker") !== undefined, "the marker in the watcher");
    expect(summary().map((s) => s.split("@")[0])).toEqual(["added:marker"]);
    const d = await unary.discover({ service: "flap", includeAll: true });
    expect(d.instances.map((i) => [i.instanceId, i.status])).toEqual([
      ["flap-1", ServingStatus.SERVING],
      ["marker", ServingStatus.SERVING],
    ]);
    expect(session.state).toBe("connected");
  });
});
