import * as net from "node:net";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createMaxineClient, createMaxineTransport } from "../src/client.js";
import { Watcher } from "../src/watcher.js";
import type { ServerProcess } from "../../../server/test/support/server-process.js";
import { Scope } from "./support/scope.js";
import { startTestServer } from "./support/sdk-server.js";
import { delay, waitFor } from "./support/wait.js";

// The client's keepalive against a network path that goes silent without
// closing. The server's own PINGs are off here (MAXINE_KEEPALIVE_INTERVAL
// 0ms), so only the client's can find the dead path.

let server: ServerProcess;
const scope = new Scope();

beforeAll(async () => {
  server = await startTestServer({ MAXINE_KEEPALIVE_INTERVAL: "0ms" });
});
afterAll(async () => {
  await server?.stop();
});
afterEach(() => scope.close());

/**
 * silentPath is a loopback TCP proxy to the server. stall() makes every
 * connection open at that moment forward nothing and close nothing (a dead
 * network path); connections opened later work.
 */
async function silentPath(): Promise<{ url: string; stall(): void }> {
  const port = Number(new URL(server.url).port);
  const sockets = new Set<net.Socket>();
  const stalled = new WeakSet<net.Socket>();
  const proxy = net.createServer((client) => {
    const upstream = net.connect(port, "127.0.0.1");
    for (const [from, to] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      sockets.add(from);
      from.on("data", (d) => {
        if (!stalled.has(from)) to.write(d);
      });
      from.on("error", () => {});
      from.on("close", () => {
        sockets.delete(from);
        if (!stalled.has(from)) to.destroy();
      });
    }
  });
  await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
  scope.defer(proxy, async (p) => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => p.close(() => resolve()));
  });
  return {
    url: `http://127.0.0.1:${(proxy.address() as net.AddressInfo).port}`,
    stall() {
      for (const s of sockets) stalled.add(s);
    },
  };
}

/** watchThrough opens a Watcher on service "ka" through path's url, and records its disconnects. */
async function watchThrough(url: string, ping: { pingIntervalMs: number; pingTimeoutMs?: number }) {
  const client = createMaxineClient({ baseUrl: url, ...ping });
  const watcher = scope.defer(new Watcher(client, { services: "ka" }), (w) => w.close());
  const disconnects: ConnectError[] = [];
  watcher.on("disconnect", (err) => disconnects.push(ConnectError.from(err)));
  watcher.on("error", () => {});
  await watcher.ready();
  return { watcher, disconnects };
}

const direct = () => createMaxineClient({ baseUrl: server.url });

describe("client keepalive (HTTP/2 PINGs)", () => {
  it("finds a silent path by its unanswered PING: the watcher reconnects on a new connection and gets the change it missed", async () => {
    const path = await silentPath();
    const { watcher, disconnects } = await watchThrough(path.url, { pingIntervalMs: 200, pingTimeoutMs: 300 });
    path.stall();
    await direct().register({ instance: { service: "ka", instanceId: "ka-1", host: "127.0.0.1", port: 9001 } });
    // PING after at most 200 ms, unanswered for 300 ms, then the reconnect's backoff
    await waitFor(() => watcher.get("ka", "ka-1") !== undefined, "ka-1 on the watcher after its path went silent", 5_000);
    expect(disconnects.length).toBeGreaterThanOrEqual(1);
    expect(disconnects[0]!.code).toBe(Code.Unavailable);
    expect(disconnects[0]!.rawMessage).toMatch(/PING timed out/);
  });

  it("without PINGs (pingIntervalMs 0) the same watcher stays on the dead path and misses the change", async () => {
    const path = await silentPath();
    const { watcher, disconnects } = await watchThrough(path.url, { pingIntervalMs: 0 });
    path.stall();
    await direct().register({ instance: { service: "ka", instanceId: "ka-2", host: "127.0.0.1", port: 9002 } });
    await delay(2_000); // well past when the PING above found the path dead
    expect(watcher.get("ka", "ka-2")).toBeUndefined();
    expect(disconnects).toEqual([]);
  });

  it("refuses keepalive settings that cannot work, naming the option", () => {
    expect(() => createMaxineTransport({ baseUrl: server.url, pingIntervalMs: -1 })).toThrow(/pingIntervalMs must be a number of milliseconds >= 0/);
    expect(() => createMaxineTransport({ baseUrl: server.url, pingTimeoutMs: 0 })).toThrow(/pingTimeoutMs must be a number of milliseconds > 0/);
  });
});
