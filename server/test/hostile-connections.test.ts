import http2 from "node:http2";
import net from "node:net";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { create, toBinary } from "@bufbuild/protobuf";
import { DiscoverRequestSchema, WatchServicesRequestSchema } from "@maxine/sdk/gen/maxine/registry/v1/registry_pb";
import { afterEach, describe, expect, it } from "vitest";
import { startMaxine, type Maxine } from "../src/app.js";
import { loadConfig } from "../src/config.js";
import type { Logger } from "../src/domain/logger.js";
import { grpcFrame } from "./support/grpc-frame.js";
import { postJson } from "./support/in-process.js";

// Clients that attack the listener (transport/listener.ts) with raw sockets
// and raw HTTP/2 sessions: slowloris, connection floods, huge headers,
// answers never read, too many streams. Each attack is bounded (loopback,
// a few dozen sockets, short timeouts) and every socket is closed after.

const SERVICE = "/maxine.registry.v1.RegistryService/";

interface LogLine {
  readonly level: "debug" | "info" | "warn" | "error";
  readonly obj: object;
  readonly msg: string | undefined;
}

/** Running is a server on 127.0.0.1 port 0 whose log lines are kept. */
interface Running extends Maxine {
  readonly url: string;
  readonly logs: LogLine[];
}

const servers: Running[] = [];
const cleanups: (() => void)[] = [];

afterEach(async () => {
  for (const c of cleanups.splice(0)) c();
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function start(env: Record<string, string> = {}): Promise<Running> {
  const logs: LogLine[] = [];
  const at = (level: LogLine["level"]) => (obj: object, msg?: string) => void logs.push({ level, obj, msg });
  const logger: Logger = { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
  const config = loadConfig([], { MAXINE_HOST: "127.0.0.1", MAXINE_PORT: "0", MAXINE_SHUTDOWN_GRACE: "1s", ...env });
  const m = await startMaxine(config, { logger });
  const running = Object.assign(m, { url: `http://127.0.0.1:${m.port}`, logs });
  servers.push(running);
  return running;
}

/** until polls cond every 10 ms and fails after ms. */
async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** RawSocket is a client socket that records what the server sent and whether it closed. */
interface RawSocket {
  readonly socket: net.Socket;
  received: string;
  closed: boolean;
}

async function rawSocket(port: number): Promise<RawSocket> {
  const socket = net.connect(port, "127.0.0.1");
  const raw: RawSocket = { socket, received: "", closed: false };
  socket.on("data", (d) => (raw.received += d.toString("latin1")));
  socket.on("error", () => {});
  socket.on("close", () => (raw.closed = true));
  cleanups.push(() => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  return raw;
}

function h2connect(url: string, opts: http2.ClientSessionOptions = {}): http2.ClientHttp2Session {
  const session = http2.connect(url, opts);
  session.on("error", () => {});
  cleanups.push(() => session.destroy());
  return session;
}

/** grpcCall sends one gRPC request on session; the result settles when the stream closes. */
function grpcCall(session: http2.ClientHttp2Session, method: string, body: Uint8Array, extra: http2.OutgoingHttpHeaders = {}) {
  const stream = session.request({ ":method": "POST", ":path": SERVICE + method, "content-type": "application/grpc", te: "trailers", ...extra });
  const call = { stream, status: undefined as string | undefined, rstCode: undefined as number | undefined, data: 0, closed: false };
  stream.on("response", (h) => (call.status ??= h["grpc-status"] as string | undefined));
  stream.on("trailers", (t) => (call.status = t["grpc-status"] as string | undefined));
  stream.on("data", (d: Buffer) => (call.data += d.length));
  stream.on("error", () => {});
  stream.on("close", () => {
    call.rstCode = stream.rstCode;
    call.closed = true;
  });
  stream.end(grpcFrame(body));
  return call;
}

/** heldMemory collects garbage and returns the bytes held outside the JS heap (answers are Buffers) plus the heap's. */
function heldMemory(): number {
  setFlagsFromString("--expose-gc");
  (runInNewContext("gc") as () => void)();
  const m = process.memoryUsage();
  return m.external + m.heapUsed;
}

async function healthz(url: string): Promise<number> {
  const res = await fetch(`${url}/healthz`);
  await res.arrayBuffer();
  return res.status;
}

describe("slow and silent clients", () => {
  it("closes a connection that sends two bytes and stops (MAXINE_HANDSHAKE_TIMEOUT)", async () => {
    const server = await start({ MAXINE_HANDSHAKE_TIMEOUT: "300ms" });
    const silent = await rawSocket(server.port);
    const twoBytes = await rawSocket(server.port);
    twoBytes.socket.write("GE");
    await until(() => silent.closed && twoBytes.closed, 5000, "the server to close both connections");
    expect(await healthz(server.url)).toBe(200);
  });

  it("answers 408 naming MAXINE_HEADERS_TIMEOUT to HTTP/1.1 headers dribbled a line at a time", async () => {
    const server = await start({ MAXINE_HEADERS_TIMEOUT: "300ms" });
    const slow = await rawSocket(server.port);
    slow.socket.write("GET /healthz HTTP/1.1\r\nhost: localhost\r\n");
    const dribble = setInterval(() => slow.socket.write("x-slow: 1\r\n"), 50);
    cleanups.push(() => clearInterval(dribble));
    await until(() => slow.closed, 5000, "the server to close the slow connection");
    clearInterval(dribble);
    expect(slow.received).toMatch(/^HTTP\/1\.1 408 /);
    expect(slow.received).toContain("MAXINE_HEADERS_TIMEOUT");
  });

  it("closes an idle HTTP/1.1 keep-alive connection and an HTTP/2 connection with no stream (MAXINE_IDLE_TIMEOUT)", async () => {
    const server = await start({ MAXINE_IDLE_TIMEOUT: "300ms" });
    const h1 = await rawSocket(server.port);
    h1.socket.write("GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n");
    await until(() => h1.received.includes("serving"), 5000, "the answer");
    const session = h2connect(server.url);
    let goaway = false;
    session.on("goaway", () => (goaway = true));
    await until(() => h1.closed && session.closed, 5000, "both idle connections to close");
    expect(goaway).toBe(true);
  });

  it("keeps connections whose streams are open, however quiet, past the idle and header timeouts", async () => {
    const server = await start({ MAXINE_IDLE_TIMEOUT: "200ms", MAXINE_HEADERS_TIMEOUT: "200ms", MAXINE_WATCH_PROGRESS_INTERVAL: "0ms" });
    // gRPC over HTTP/2: a watch stream with no changes sends nothing after its snapshot
    const session = h2connect(server.url);
    const watch = grpcCall(session, "WatchServices", toBinary(WatchServicesRequestSchema, create(WatchServicesRequestSchema, {})));
    // Connect over HTTP/1.1: the same stream is one long request
    const ac = new AbortController();
    cleanups.push(() => ac.abort());
    const res = await fetch(`${server.url}${SERVICE}WatchServices`, {
      method: "POST",
      headers: { "content-type": "application/connect+json" },
      body: Buffer.from([0, 0, 0, 0, 2, 0x7b, 0x7d]), // one envelope: {}
      signal: ac.signal,
    });
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    await reader.read(); // the snapshot
    await until(() => watch.data > 0, 5000, "the gRPC watch's snapshot");
    // several idle periods pass (this wait has to be a wait: it shows that nothing happens)
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(session.closed).toBe(false);
    expect(watch.closed).toBe(false);
    ac.abort();
    await reader.cancel().catch(() => {});
    watch.stream.close();
    await until(() => session.closed, 5000, "the HTTP/2 connection to close once its last stream ended");
  });
});

describe("connection caps", () => {
  it.each([
    ["MAXINE_MAX_CONNECTIONS_PER_ADDRESS", { MAXINE_MAX_CONNECTIONS_PER_ADDRESS: "20" }],
    ["MAXINE_MAX_CONNECTIONS", { MAXINE_MAX_CONNECTIONS: "20" }],
  ])("closes connections over %s at once, warns without flooding the log, and serves again once they go", async (limit, env) => {
    const server = await start({ ...env, MAXINE_HANDSHAKE_TIMEOUT: "30s" });
    const socks: RawSocket[] = [];
    for (let i = 0; i < 25; i++) socks.push(await rawSocket(server.port));
    await until(() => socks.filter((s) => s.closed).length >= 5, 5000, "5 connections closed");
    // the extra ones, not the first 20, which hold (far from their handshake timeout)
    expect(socks.slice(0, 20).every((s) => !s.closed)).toBe(true);
    expect(socks.slice(20).every((s) => s.closed)).toBe(true);
    const warns = server.logs.filter((l) => l.level === "warn");
    expect(warns.length).toBeGreaterThanOrEqual(1);
    expect(warns.length).toBeLessThanOrEqual(2); // one a second at most
    expect(JSON.stringify(warns[0])).toContain(limit);
    expect(server.logs.filter((l) => l.level === "error")).toEqual([]);
    for (const s of socks) s.socket.destroy();
    await until(() => socks.every((s) => s.closed), 5000, "the client sockets to close");
    expect(await healthz(server.url)).toBe(200);
  });

  it("lets a silent flood time out and then serves a normal client", async () => {
    const server = await start({ MAXINE_MAX_CONNECTIONS_PER_ADDRESS: "20", MAXINE_HANDSHAKE_TIMEOUT: "300ms" });
    const socks: RawSocket[] = [];
    for (let i = 0; i < 25; i++) socks.push(await rawSocket(server.port));
    await until(() => socks.every((s) => s.closed), 5000, "every silent connection to be closed by the server");
    expect(await healthz(server.url)).toBe(200);
  });
});

describe("HTTP/2 limits", () => {
  it("refuses an HTTP/2 stream whose headers exceed MAXINE_MAX_HEADER_BYTES, and keeps serving", async () => {
    const server = await start({ MAXINE_MAX_HEADER_BYTES: "4096" });
    const session = h2connect(server.url);
    const get = (extra: http2.OutgoingHttpHeaders) =>
      new Promise<{ status: number | undefined; rstCode: number }>((resolve) => {
        const st = session.request({ ":path": "/healthz", ...extra });
        let status: number | undefined;
        st.on("response", (h) => (status = h[":status"] as number));
        st.on("error", () => {});
        st.on("data", () => {});
        st.on("close", () => resolve({ status, rstCode: st.rstCode ?? 0 }));
      });
    expect((await get({ "x-small": "a".repeat(2000) })).status).toBe(200);
    const big = await get({ "x-big": "a".repeat(60_000) });
    expect(big.status).toBeUndefined();
    expect(big.rstCode).toBe(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
    // the same connection and others still get answers
    expect((await get({})).status).toBe(200);
    expect(await healthz(server.url)).toBe(200);
    // HTTP/1.1 says which setting refused it
    const h1 = await rawSocket(server.port);
    h1.socket.write(`GET /healthz HTTP/1.1\r\nhost: localhost\r\nx-big: ${"a".repeat(60_000)}\r\n\r\n`);
    await until(() => h1.closed, 5000, "the server to close the connection");
    expect(h1.received).toMatch(/^HTTP\/1\.1 431 /);
    expect(h1.received).toContain("MAXINE_MAX_HEADER_BYTES");
  });

  it("resets the streams of a connection that never reads its answers (MAXINE_MAX_UNSENT_BYTES_PER_CONNECTION)", async () => {
    const bound = 1 << 20;
    const server = await start({
      MAXINE_MAX_UNSENT_BYTES_PER_CONNECTION: String(bound),
      MAXINE_MAX_METADATA_BYTES: "70000",
    });
    // one answer is ~ 20 × 8 KB = 160 KB: 2 connections × 200 streams would hold 64 MB unbounded
    for (let i = 0; i < 20; i++) {
      const r = await postJson(server.url, "Register", {
        instance: { service: "big", instanceId: `i${i}`, host: "10.0.0.1", port: 80, metadata: { blob: "x".repeat(8000) } },
      });
      expect(r.status).toBe(200);
    }
    const discover = toBinary(DiscoverRequestSchema, create(DiscoverRequestSchema, { service: "big", includeAll: true }));
    const before = heldMemory();
    const calls: ReturnType<typeof grpcCall>[] = [];
    for (let c = 0; c < 2; c++) {
      // a stream window of 0: the server may send headers but no answer bytes
      const session = h2connect(server.url, { settings: { initialWindowSize: 0 } });
      for (let i = 0; i < 200; i++) calls.push(grpcCall(session, "Discover", discover));
    }
    await until(() => calls.filter((c) => c.closed).length >= 2 * (200 - 8), 10_000, "the server to reset the streams over the bound");
    const reset = calls.filter((c) => c.rstCode === http2.constants.NGHTTP2_ENHANCE_YOUR_CALM).length;
    // memory held by reset streams is freed within a turn or two of the event loop
    let held = Infinity;
    await until(() => (held = heldMemory() - before) < 32 << 20, 5000, "the reset streams' memory to be freed");
    console.log(`unsent bound: ${reset} of ${calls.length} streams reset; held +${(held / 2 ** 20).toFixed(1)} MiB`);
    // what is left per connection fits in the bound: ~6 answers of 160 KB in 1 MiB
    expect(reset).toBeGreaterThanOrEqual(2 * (200 - 8));
    expect(calls.every((c) => c.data === 0)).toBe(true);
    // other clients still get answers
    const found = await postJson(server.url, "Discover", { service: "big", includeAll: true });
    expect(found.status).toBe(200);
    expect(found.json.instances).toHaveLength(20);
    // generous: unbounded, the 400 answers held 64 MB
    expect(held).toBeLessThan(32 << 20);
  });

  it("closes the connection of a client that ignores SETTINGS_MAX_CONCURRENT_STREAMS, logs it at debug, and keeps serving", async () => {
    const server = await start({ MAXINE_MAX_STREAMS_PER_CONNECTION: "5" });
    const flood = await streamFlood(server.port, 300);
    await until(() => flood.closed, 5000, "the server to close the flooding connection");
    await until(() => server.logs.some((l) => l.msg === "HTTP/2 connection error (client)"), 5000, "the debug line");
    expect(server.logs.find((l) => l.msg === "HTTP/2 connection error (client)")!.level).toBe("debug");
    expect(await healthz(server.url)).toBe(200);
  });

  // The streams that were open when Node ended the session fail with its
  // NghttpError: the client's doing, so their calls end as canceled
  // (transport/body.ts), never as an error of the server.
  it("logs nothing at error level for the streams a protocol-breaking client had open", async () => {
    const server = await start({ MAXINE_MAX_STREAMS_PER_CONNECTION: "5" });
    const flood = await streamFlood(server.port, 300);
    await until(() => flood.closed, 5000, "the server to close the flooding connection");
    await until(() => server.logs.some((l) => l.msg === "HTTP/2 connection error (client)"), 5000, "the debug line");
    expect(server.logs.filter((l) => l.level === "error")).toEqual([]);
  });
});

/**
 * streamFlood speaks HTTP/2 from a raw socket (a Node client would respect
 * the server's SETTINGS) and, once the server's SETTINGS are acknowledged,
 * opens n WatchServices streams at once. Node refuses the streams over the
 * limit and, past 100 refusals (maxSessionRejectedStreams), ends the
 * connection.
 */
async function streamFlood(port: number, n: number): Promise<RawSocket> {
  const raw = await rawSocket(port);
  const frame = (type: number, flags: number, id: number, payload: Buffer): Buffer => {
    const head = Buffer.alloc(9);
    head.writeUIntBE(payload.length, 0, 3);
    head[3] = type;
    head[4] = flags;
    head.writeUInt32BE(id, 5);
    return Buffer.concat([head, payload]);
  };
  const literal = (s: string) => Buffer.concat([Buffer.from([s.length]), Buffer.from(s, "latin1")]);
  raw.socket.write(Buffer.concat([Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1"), frame(0x4, 0, 0, Buffer.alloc(0))]));
  await until(() => raw.received.length >= 9, 5000, "the server's SETTINGS");
  // HPACK, no dynamic table: :method POST (static 3), :scheme http (6), then
  // literals without indexing: :path (name 4), :authority (1), content-type (31), te
  const block = Buffer.concat([
    Buffer.from([0x83, 0x86, 0x04]),
    literal(`${SERVICE}WatchServices`),
    Buffer.from([0x01]),
    literal("localhost"), // a loopback :authority: the server answers no other (DNS rebinding)
    Buffer.from([0x0f, 0x10]),
    literal("application/grpc"),
    Buffer.from([0x00]),
    literal("te"),
    literal("trailers"),
  ]);
  const frames = [frame(0x4, 0x1, 0, Buffer.alloc(0))]; // SETTINGS ACK
  for (let i = 0; i < n; i++) frames.push(frame(0x1, 0x4, 1 + 2 * i, block)); // HEADERS, END_HEADERS
  raw.socket.write(Buffer.concat(frames));
  return raw;
}

describe("HTTP/1.1 bodies answered before their end", () => {
  /** writeSlowly writes size bytes of body in 16 KiB pieces, a few ms apart, and reports a failed write. */
  async function writeSlowly(socket: net.Socket, size: number): Promise<Error | undefined> {
    const piece = Buffer.alloc(16 * 1024, 7);
    let failure: Error | undefined;
    socket.on("error", (err) => (failure ??= err));
    for (let sent = 0; sent < size && failure === undefined && !socket.destroyed; sent += piece.length) {
      socket.write(piece.subarray(0, Math.min(piece.length, size - sent)));
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    return failure;
  }

  it("reads and drops the rest of an over-limit Connect body, so the client gets the answer and the connection serves the next request", async () => {
    const server = await start({ MAXINE_MAX_MESSAGE_BYTES: "1024" });
    const client = await rawSocket(server.port);
    const size = 160 * 1024;
    client.socket.write(`POST ${SERVICE}Discover HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/proto\r\ncontent-length: ${size}\r\n\r\n`);
    const failure = await writeSlowly(client.socket, size);
    expect(failure).toBeUndefined();
    await until(() => client.received.includes("resource_exhausted"), 5000, "the answer");
    expect(client.received).toContain("MAXINE_MAX_MESSAGE_BYTES");
    expect(client.received).not.toMatch(/connection: close/i);
    client.received = "";
    client.socket.write("GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n");
    await until(() => client.received.includes("serving"), 5000, "a second answer on the same connection");
    expect(client.closed).toBe(false);
  });

  it("closes the connection once the dropped rest passes 256 KiB (or MAXINE_MAX_MESSAGE_BYTES), after the answer", async () => {
    const server = await start({ MAXINE_MAX_MESSAGE_BYTES: "1024" });
    const client = await rawSocket(server.port);
    const size = 4 * 1024 * 1024;
    client.socket.write(`POST ${SERVICE}Discover HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/proto\r\ncontent-length: ${size}\r\n\r\n`);
    await writeSlowly(client.socket, size);
    await until(() => client.closed, 5000, "the server to close the connection");
    expect(client.received).toContain("resource_exhausted");
  });
});

describe("shutdown", () => {
  it("closes an idle HTTP/1.1 keep-alive connection at once on close, not after the grace", async () => {
    const server = await start({ MAXINE_SHUTDOWN_GRACE: "1s" });
    const scraper = await rawSocket(server.port);
    scraper.socket.write("GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n");
    await until(() => scraper.received.includes("serving"), 5000, "the answer");
    const t0 = performance.now();
    await server.close();
    expect(performance.now() - t0).toBeLessThan(500);
    await until(() => scraper.closed, 1000, "the scraper's connection to close");
  });
});
