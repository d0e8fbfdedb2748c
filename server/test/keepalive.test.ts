import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import http2 from "node:http2";
import net from "node:net";
import { create, toBinary } from "@bufbuild/protobuf";
import { RemovalReason, WatchServicesRequestSchema } from "@maxine/sdk/gen/maxine/registry/v1/registry_pb";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { createMaxineClient, Watcher } from "@maxine/sdk";
import { afterEach, describe, expect, it } from "vitest";
import { grpcFrame } from "./support/grpc-frame.js";
import { startInProcess } from "./support/in-process.js";

// Silent peers: a process that stops answering without closing its
// connection (SIGSTOP, a hang, a network path that drops everything) keeps
// its TCP connection open, so only an HTTP/2 PING the server sends can tell
// (MAXINE_KEEPALIVE_INTERVAL, MAXINE_KEEPALIVE_TIMEOUT). The timings here
// are generous bounds, not measurements: bench/crash-detection.mjs measures.

const FIXTURE = fileURLToPath(new URL("./fixtures/session-child.mjs", import.meta.url));

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function until(cond: () => boolean, what: string, timeoutMs: number, failed: () => boolean = () => false): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (failed() || Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** server starts Maxine with env and a watcher of service "ka" whose removals are recorded. */
async function server(env: Record<string, string>) {
  const s = await startInProcess(env);
  const watcher = new Watcher(createMaxineClient({ baseUrl: s.url }), { services: "ka" });
  const removed: string[] = [];
  const reasons = new Map<string, RemovalReason>();
  watcher.on("removed", (c) => {
    removed.push(c.instance.instanceId);
    reasons.set(c.instance.instanceId, c.removalReason);
  });
  cleanups.push(async () => {
    await watcher.close();
    await s.close();
  });
  await watcher.ready();
  const has = (id: string): boolean => watcher.instances("ka").some((i) => i.instanceId === id);
  const metric = async (name: string): Promise<number> => {
    const text = await (await fetch(`${s.url}/metrics`)).text();
    const line = text.split("\n").find((l) => l.startsWith(`${name} `));
    if (line === undefined) throw new Error(`no ${name} in /metrics`);
    return Number(line.split(" ")[1]);
  };
  return { url: s.url, watcher, removed, reasons, has, metric };
}

/** child starts an SDK session process registering ka/<id> through url; env adds to its environment. */
async function child(url: string, id: string, env: Record<string, string> = {}): Promise<{ proc: ChildProcess; lines: string[] }> {
  const proc = spawn(process.execPath, [FIXTURE, url, "ka", id, "10000"], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } });
  let stderr = "";
  proc.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  const lines: string[] = [];
  createInterface({ input: proc.stdout! }).on("line", (l) => lines.push(l));
  cleanups.push(async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = once(proc, "exit");
    proc.kill("SIGCONT");
    proc.kill("SIGKILL");
    await exited;
  });
  await until(() => lines.includes("ready"), `${id} ready (${stderr})`, 10_000, () => proc.exitCode !== null);
  return { proc, lines };
}

/**
 * frozenPath is a TCP proxy to port that forwards both ways until freeze(),
 * after which it forwards nothing and closes nothing: what a network path
 * that silently drops packets looks like to both ends.
 */
async function frozenPath(port: number): Promise<{ url: string; freeze(): void }> {
  const pairs: Array<[net.Socket, net.Socket]> = [];
  let frozen = false;
  const proxy = net.createServer((client) => {
    const upstream = net.connect(port, "127.0.0.1");
    pairs.push([client, upstream]);
    for (const [a, b] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      a.on("data", (d) => {
        if (!frozen) b.write(d);
      });
      a.on("error", () => {});
      a.on("close", () => {
        if (!frozen) b.destroy();
      });
    }
  });
  await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
  cleanups.push(async () => {
    for (const [a, b] of pairs) {
      a.destroy();
      b.destroy();
    }
    await new Promise<void>((resolve) => proxy.close(() => resolve()));
  });
  return {
    url: `http://127.0.0.1:${(proxy.address() as net.AddressInfo).port}`,
    freeze() {
      frozen = true;
    },
  };
}

describe("keepalive PINGs find silent peers", () => {
  it("closes a connection whose path goes silent (a PING unanswered): its heartbeat stream ends, the instance goes at once (no grace on top of the timeout), its watcher is freed", async () => {
    // a grace of 30 s: only a removal without it can come within the bound below
    const s = await server({ MAXINE_KEEPALIVE_INTERVAL: "200ms", MAXINE_KEEPALIVE_TIMEOUT: "400ms", MAXINE_GRACE: "30s" });
    const path = await frozenPath(Number(new URL(s.url).port));
    await child(path.url, "frozen-1");
    // a raw gRPC watch over the same kind of path
    const session = http2.connect(path.url);
    session.on("error", () => {});
    cleanups.push(() => void session.destroy());
    const watch = session.request({ ":method": "POST", ":path": "/maxine.registry.v1.RegistryService/WatchServices", "content-type": "application/grpc", te: "trailers" });
    watch.on("error", () => {});
    watch.end(grpcFrame(toBinary(WatchServicesRequestSchema, create(WatchServicesRequestSchema, { services: ["ka"] }))));
    await once(watch, "data");
    await until(() => s.has("frozen-1"), "frozen-1 ADDED", 5_000);
    expect(await s.metric("maxine_watchers")).toBe(2); // the test's own and the raw one
    path.freeze();
    // the lease is 10 s and the grace 30 s: only the PING, with no grace after it, can remove it this soon
    await until(() => s.removed.includes("frozen-1"), "frozen-1 REMOVED", 5_000);
    expect(s.reasons.get("frozen-1")).toBe(RemovalReason.STREAM_CLOSED);
    // the raw watch's connection went silent at the same moment: its PING times out too (a tick later, at most)
    const deadline = Date.now() + 5_000;
    while ((await s.metric("maxine_connections_silent_closed_total")) < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(await s.metric("maxine_connections_silent_closed_total")).toBeGreaterThanOrEqual(2);
    expect(await s.metric("maxine_watchers")).toBe(1);
  });

  it("keeps the grace for a stream that ended (the process died, its kernel closed the connection): the control", async () => {
    const s = await server({ MAXINE_KEEPALIVE_INTERVAL: "200ms", MAXINE_KEEPALIVE_TIMEOUT: "400ms", MAXINE_GRACE: "30s" });
    const { proc } = await child(s.url, "killed-1");
    await until(() => s.has("killed-1"), "killed-1 ADDED", 5_000);
    const exited = once(proc, "exit");
    proc.kill("SIGKILL");
    await exited;
    // proves the absence: past several keepalive timeouts, the instance is still in its 30 s grace
    await new Promise((r) => setTimeout(r, 2_000));
    expect(s.removed).toEqual([]);
    expect(s.has("killed-1")).toBe(true);
    expect(await s.metric("maxine_connections_silent_closed_total")).toBe(0);
  });

  it("with MAXINE_KEEPALIVE_INTERVAL=0ms a silent path keeps its instance until the lease (the control)", async () => {
    const s = await server({ MAXINE_KEEPALIVE_INTERVAL: "0ms", MAXINE_GRACE: "200ms" });
    const path = await frozenPath(Number(new URL(s.url).port));
    await child(path.url, "frozen-2");
    await until(() => s.has("frozen-2"), "frozen-2 ADDED", 5_000);
    path.freeze();
    await new Promise((r) => setTimeout(r, 1_500));
    expect(s.removed).toEqual([]);
    expect(s.has("frozen-2")).toBe(true);
    expect(await s.metric("maxine_connections_silent_closed_total")).toBe(0);
  });

  it("removes the instance of a SIGSTOPped SDK process at the default settings", async () => {
    const s = await server({});
    const { proc } = await child(s.url, "stopped-1");
    await until(() => s.has("stopped-1"), "stopped-1 ADDED", 5_000);
    proc.kill("SIGSTOP");
    await until(() => s.removed.includes("stopped-1"), "stopped-1 REMOVED", 8_000);
  });

  it("keeps its peers while the server itself stalls 1.5 s at a time: their ACKs are read late, not missing", async () => {
    const s = await server({});
    await child(s.url, "busy-1");
    await until(() => s.has("busy-1"), "busy-1 ADDED", 5_000);
    // This process is the server (in-process): block its event loop, as a
    // long GC or a burst of registrations does, while the child answers. The
    // blocks come from a timer of the server's keepalive tick (125 ms at the
    // defaults), so each one starts right after the server's own timer ran
    // in the same loop turn: a PING it just sent is in flight through the
    // block, and its ACK waits unread in the socket until the block ends.
    const blocked = new Int32Array(new SharedArrayBuffer(4));
    let blocks = 0;
    const blocker = setInterval(() => {
      if (blocks < 6) Atomics.wait(blocked, 0, 0, 1_500);
      blocks++;
    }, 125);
    await until(() => blocks >= 6, "six blocks of 1.5 s", 20_000);
    clearInterval(blocker);
    await new Promise((r) => setTimeout(r, 1_500)); // past another interval and timeout
    expect(s.removed).toEqual([]);
    expect(s.has("busy-1")).toBe(true);
    expect(await s.metric("maxine_connections_silent_closed_total")).toBe(0);
  });

  it("keeps the instance of a process whose event loop stalls 500 ms at a time (GC pauses) at the default settings", async () => {
    const s = await server({});
    const { lines } = await child(s.url, "stalls-1", { STALL_MS: "500", STALL_EVERY_MS: "700" });
    await until(() => s.has("stalls-1"), "stalls-1 ADDED", 5_000);
    await until(() => lines.filter((l) => l === "stalled").length >= 6, "six stalls", 15_000);
    expect(s.removed).toEqual([]);
    expect(await s.metric("maxine_connections_silent_closed_total")).toBe(0);
  });
});
