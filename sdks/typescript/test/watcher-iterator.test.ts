import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createMaxineClient, type MaxineClient } from "../src/client.js";
import { Watcher, WatchOverflowError } from "../src/watcher.js";
import type { WatchChange } from "../src/instance-view.js";
import type { ServerProcess } from "../../../server/test/support/server-process.js";
import { Scope } from "./support/scope.js";
import { startTestServer } from "./support/sdk-server.js";

// Watcher.changes(): the async-iterator form of the watcher's changes (the
// Python SDK's `async for change in watcher`), against a real server.

let server: ServerProcess;
let client: MaxineClient;
const scope = new Scope();

beforeAll(async () => {
  server = await startTestServer();
  client = createMaxineClient({ baseUrl: server.url });
});
afterAll(async () => {
  await server?.stop();
});
afterEach(() => scope.close());

const register = (service: string, instanceId: string) => client.register({ instance: { service, instanceId, host: "127.0.0.1", port: 9000 } });

async function watcher(service: string): Promise<Watcher> {
  const w = scope.defer(new Watcher(client, { services: service }), (x) => x.close());
  await w.ready();
  return w;
}

describe("Watcher.changes()", () => {
  it("yields the changes from the moment it is called, in revision order, and leaving the loop unsubscribes", async () => {
    await register("it-a", "before");
    const w = await watcher("it-a");
    const changes = w.changes();
    const revisions = [];
    for (const id of ["a1", "a2", "a3"]) revisions.push((await register("it-a", id)).revision);
    const got: WatchChange[] = [];
    for await (const c of changes) {
      got.push(c);
      if (got.length === 3) break;
    }
    expect(got.map((c) => [c.type, c.instance.instanceId, c.revision])).toEqual([
      ["added", "a1", revisions[0]],
      ["added", "a2", revisions[1]],
      ["added", "a3", revisions[2]],
    ]);
    expect(w.listenerCount("change")).toBe(0); // the loop's end unsubscribed
  });

  it("is what for await over the watcher itself iterates, and ends when the watcher closes", async () => {
    const w = await watcher("it-b");
    const done = (async () => {
      const ids: string[] = [];
      for await (const c of w) ids.push(c.instance.instanceId);
      return ids;
    })();
    await register("it-b", "b1");
    await expect.poll(() => w.get("it-b", "b1")).toBeDefined();
    await w.close();
    expect(await done).toEqual(["b1"]);
  });

  it("a consumer more than maxQueued behind gets what was queued, then WatchOverflowError; the view stays right", async () => {
    const w = await watcher("it-c");
    const changes = w.changes({ maxQueued: 2 });
    for (const id of ["c1", "c2", "c3", "c4"]) await register("it-c", id);
    await expect.poll(() => w.instances("it-c").length).toBe(4);
    const got: string[] = [];
    const err = await (async () => {
      try {
        for await (const c of changes) got.push(c.instance.instanceId);
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(got).toEqual(["c1", "c2"]);
    expect(err).toBeInstanceOf(WatchOverflowError);
    expect((err as Error).message).toMatch(/fell more than 2 changes behind \(maxQueued\)/);
    expect(w.instances("it-c").map((i) => i.instanceId).sort()).toEqual(["c1", "c2", "c3", "c4"]);
  });

  it("throws the fatal error that closed the watcher", async () => {
    const w = scope.defer(new Watcher(client, { services: "not a valid name!" }), (x) => x.close());
    w.on("error", () => {});
    const changes = w.changes();
    await expect(w.ready()).rejects.toThrow();
    await expect(changes.next()).rejects.toSatisfy((e: unknown) => ConnectError.from(e).code === Code.InvalidArgument);
    // and one asked for after the close throws it too
    await expect(w.changes().next()).rejects.toSatisfy((e: unknown) => ConnectError.from(e).code === Code.InvalidArgument);
  });

  it("refuses a maxQueued that cannot work", async () => {
    const w = await watcher("it-d");
    expect(() => w.changes({ maxQueued: 0 })).toThrow(/maxQueued must be an integer >= 1, got 0/);
  });
});
