import http2 from "node:http2";
import net from "node:net";
import { create, toBinary } from "@bufbuild/protobuf";
import { WatchServicesRequestSchema } from "@maxine/sdk/gen/maxine/registry/v1/registry_pb";
import { afterEach, describe, expect, it } from "vitest";
import { startMaxine, type Maxine } from "../src/app.js";
import { loadConfig } from "../src/config.js";
import type { Logger } from "../src/domain/logger.js";
import { Collector, grpcClient, unary } from "./support/grpc-client.js";
import { grpcFrame } from "./support/grpc-frame.js";

// Issue 14 §3: the watch memory budget (MAXINE_WATCH_MEMORY_BUDGET) over a
// real server and real HTTP/2. Slow watchers are raw HTTP/2 streams whose
// flow-control window is never opened (SETTINGS_INITIAL_WINDOW_SIZE 0), so
// every answer byte the server writes for them stays buffered on the
// server; a healthy watcher (@grpc/grpc-js) reads everything.

const SERVICE = "budget";
const PATH = "/maxine.registry.v1.RegistryService/WatchServices";
const PAD = "x".repeat(8000);

interface LogLine {
  readonly level: string;
  readonly obj: Record<string, unknown>;
  readonly msg?: string;
}
type Running = Maxine & { url: string; logs: LogLine[] };
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function start(env: Record<string, string>): Promise<Running> {
  const logs: LogLine[] = [];
  const at = (level: string) => (obj: object, msg?: string) => void logs.push({ level, obj: obj as Record<string, unknown>, msg });
  const logger: Logger = { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
  const config = loadConfig([], { MAXINE_HOST: "127.0.0.1", MAXINE_PORT: "0", MAXINE_SHUTDOWN_GRACE: "1s", ...env });
  const m = await startMaxine(config, { logger });
  const running = Object.assign(m, { url: `http://127.0.0.1:${m.port}`, logs });
  cleanups.push(() => running.close());
  return running;
}

async function until(cond: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function metric(url: string, name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const m = new RegExp(`^${name} (\\S+)$`, "m").exec(text);
  if (m === null) throw new Error(`no metric ${name}`);
  return Number(m[1]);
}

/** slowWatch opens a watch stream that never reads (its connection's streams have a window of 0), in gRPC or Connect framing. */
function slowWatch(session: http2.ClientHttp2Session, protocol: "grpc" | "connect") {
  const headers: http2.OutgoingHttpHeaders =
    protocol === "grpc"
      ? { ":method": "POST", ":path": PATH, "content-type": "application/grpc", te: "trailers" }
      : { ":method": "POST", ":path": PATH, "content-type": "application/connect+proto", "connect-protocol-version": "1" };
  const stream = session.request(headers);
  const call = { stream, protocol, rstCode: undefined as number | undefined, closed: false, data: 0 };
  stream.on("data", (d: Buffer) => (call.data += d.length));
  stream.on("error", () => {});
  stream.on("close", () => {
    call.rstCode = stream.rstCode;
    call.closed = true;
  });
  stream.end(grpcFrame(toBinary(WatchServicesRequestSchema, create(WatchServicesRequestSchema, { services: [SERVICE] }))));
  return call;
}

describe("the watch memory budget (MAXINE_WATCH_MEMORY_BUDGET)", () => {
  it("cuts the slowest watchers (stalled longest, most unsent bytes) until the rest fits, frees them, and a reading watcher keeps receiving", async () => {
    const budget = 96 * 1024;
    const server = await start({
      MAXINE_WATCH_MEMORY_BUDGET: String(budget),
      // the per-connection bound stays out of the way: the budget is what acts
      MAXINE_MAX_UNSENT_BYTES_PER_CONNECTION: String(1 << 30),
      MAXINE_MAX_METADATA_BYTES: "70000",
      // one instance (8 KB) per snapshot message: a stalled stream holds a write batch (16 KB) and what one write adds
      MAXINE_WATCH_SNAPSHOT_CHUNK: "1",
    });
    const client = grpcClient(server.port);
    cleanups.push(() => client.close());
    // a snapshot of 40 instances of 8 KB: each slow stream buffers what its first write held
    for (let i = 0; i < 40; i++) await unary(client, "Register", { instance: { service: SERVICE, instanceId: `i${i}`, host: "10.0.0.1", port: 80, metadata: { pad: PAD } } });

    const healthy = new Collector(client.WatchServices({ services: [SERVICE] }));
    await healthy.waitFor((m) => m.some((x: any) => x.snapshotEnd));

    const sessions = [0, 1].map(() => http2.connect(server.url, { settings: { initialWindowSize: 0 } }));
    for (const s of sessions) {
      s.on("error", () => {});
      cleanups.push(() => void s.destroy());
    }
    const slow = Array.from({ length: 16 }, (_, i) => slowWatch(sessions[i % 2]!, i % 4 === 3 ? "connect" : "grpc"));

    // 16 stalled streams of 16-24 KB each pass the 96 KB budget: the slowest are cut until the rest fits
    await until(async () => (await metric(server.url, "maxine_watch_buffered_bytes")) <= budget && slow.some((c) => c.closed), 10_000, "the budget to cut slow streams");
    await new Promise((r) => setTimeout(r, 500));
    const cut = slow.filter((c) => c.closed);
    expect(cut.length).toBeGreaterThanOrEqual(8);
    // only as many as needed: the rest fit the budget and stay open
    expect(cut.length).toBeLessThan(slow.length);
    expect(cut.every((c) => c.rstCode === http2.constants.NGHTTP2_ENHANCE_YOUR_CALM)).toBe(true);
    expect(cut.some((c) => c.protocol === "connect")).toBe(true);
    // nothing was ever sent to them: the window stayed shut
    expect(slow.every((c) => c.data === 0)).toBe(true);
    expect(await metric(server.url, "maxine_watch_budget_closes_total")).toBe(cut.length);
    // their watcher slots are released
    await until(async () => (await metric(server.url, "maxine_watchers")) === 1 + slow.length - cut.length, 5_000, "the cut watchers to end");
    const warn = server.logs.find((l) => l.msg?.includes("watch memory budget"));
    expect(warn?.level).toBe("warn");
    expect(warn?.obj.limit).toBe("MAXINE_WATCH_MEMORY_BUDGET");

    // more changes: the stalled streams left stay stalled (their bytes were
    // already counted), the reading watcher gets every change in order
    let last = 0;
    for (let i = 0; i < 30; i++) last = Number((await unary<any>(client, "Register", { instance: { service: SERVICE, instanceId: `i${i}`, host: "10.0.0.1", port: 80, metadata: { pad: PAD, n: String(i) } } })).revision);
    await healthy.waitFor((m) => m.some((x: any) => Number(x.event?.revision) === last));
    const revisions = healthy.messages.filter((x: any) => x.event).map((x: any) => Number(x.event.revision));
    expect(revisions).toEqual([...revisions].sort((a, b) => a - b));
    expect(revisions.slice(-30)).toEqual(Array.from({ length: 30 }, (_, i) => last - 29 + i));
    expect(healthy.error).toBeUndefined();
    expect(await metric(server.url, "maxine_watch_buffered_bytes")).toBeLessThanOrEqual(budget);
  });

  it("cuts an HTTP/1.1 Connect watch that does not read by closing its connection", async () => {
    // a stalled stream holds about one write batch past what the kernel took: a budget below that
    const budget = 4096;
    const server = await start({ MAXINE_WATCH_MEMORY_BUDGET: String(budget), MAXINE_MAX_METADATA_BYTES: "70000" });
    const client = grpcClient(server.port);
    cleanups.push(() => client.close());
    for (let i = 0; i < 20; i++) await unary(client, "Register", { instance: { service: SERVICE, instanceId: `i${i}`, host: "10.0.0.1", port: 80, metadata: { pad: PAD } } });
    const body = Buffer.from(JSON.stringify({ services: [SERVICE] }));
    const frame = Buffer.concat([Buffer.from([0, 0, 0, 0, 0]), body]);
    frame.writeUInt32BE(body.length, 1);
    const socket = net.connect(server.port, "127.0.0.1");
    let closed = false;
    socket.on("close", () => (closed = true));
    socket.on("error", () => {});
    cleanups.push(() => void socket.destroy());
    await new Promise((r) => socket.once("connect", r));
    socket.write(
      `POST ${PATH} HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/connect+json\r\nconnect-protocol-version: 1\r\ncontent-length: ${frame.length}\r\n\r\n`,
    );
    socket.write(frame);
    // the client never reads: once the kernel's buffers are full the server holds the rest
    socket.pause();
    const healthy = new Collector(client.WatchServices({ services: [SERVICE] }));
    let n = 0;
    await until(
      async () => {
        if ((await metric(server.url, "maxine_watch_budget_closes_total")) > 0) return true;
        await Promise.all(Array.from({ length: 10 }, () => unary(client, "Register", { instance: { service: SERVICE, instanceId: `i${n++ % 20}`, host: "10.0.0.1", port: 80, metadata: { pad: PAD, n: String(n) } } })));
        return false;
      },
      60_000,
      "the budget to close the HTTP/1.1 watch",
    );
    expect(await metric(server.url, "maxine_watch_budget_closes_total")).toBe(1);
    await until(async () => (await metric(server.url, "maxine_watchers")) === 1, 5_000, "the cut watcher to end");
    // its connection is closed: read what the kernel held, then the end comes (a paused socket reports no end)
    socket.resume();
    await until(() => closed, 5_000, "the HTTP/1.1 connection to close");
    const last = Number((await unary<any>(client, "Register", { instance: { service: SERVICE, instanceId: "after", host: "10.0.0.1", port: 80 } })).revision);
    await healthy.waitFor((m) => m.some((x: any) => Number(x.event?.revision) === last));
    expect(healthy.error).toBeUndefined();
  }, 90_000);
});
