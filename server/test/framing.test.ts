import http2 from "node:http2";
import { gzipSync } from "node:zlib";
import * as grpc from "@grpc/grpc-js";
import { create, toBinary } from "@bufbuild/protobuf";
import { DiscoverRequestSchema, WatchServicesRequestSchema } from "@maxine/sdk/gen/maxine/registry/v1/registry_pb";
import fc from "fast-check";
import { pino } from "pino";
import { Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Maxine } from "../src/app.js";
import { ByteBudget } from "../src/rpc/byte-budget.js";
import { EnvelopeReader } from "../src/transport/envelope.js";
import { grpcMessage } from "../src/transport/protocols.js";
import { details, grpcClient, unary } from "./support/grpc-client.js";
import { grpcFrame } from "./support/grpc-frame.js";
import { postJson, startInProcess } from "./support/in-process.js";

// The transport against broken and hostile clients, over raw HTTP/2 frames,
// plain fetch and @grpc/grpc-js: every protocol gets the same limits,
// deadlines and codes, and nothing a client does is an error of the server.

const SERVICE = "/maxine.registry.v1.RegistryService";

interface RawAnswer {
  headers: http2.IncomingHttpHeaders;
  trailers: http2.IncomingHttpHeaders | undefined;
  data: Buffer;
}

/** rawCall sends body on a new stream of session and collects the answer; send may keep writing. */
function rawCall(
  session: http2.ClientHttp2Session,
  path: string,
  headers: http2.OutgoingHttpHeaders,
  body?: Uint8Array,
  keepOpen = false,
): { stream: http2.ClientHttp2Stream; answer: Promise<RawAnswer> } {
  const stream = session.request({ ":method": "POST", ":path": path, te: "trailers", "content-type": "application/grpc", ...headers });
  const answer = new Promise<RawAnswer>((resolve) => {
    const out: RawAnswer = { headers: {}, trailers: undefined, data: Buffer.alloc(0) };
    stream.on("response", (h) => (out.headers = h));
    stream.on("trailers", (t) => (out.trailers = t));
    stream.on("data", (d: Buffer) => (out.data = Buffer.concat([out.data, d])));
    stream.on("error", () => {});
    stream.on("close", () => resolve(out));
  });
  if (body !== undefined) {
    if (keepOpen) stream.write(body);
    else stream.end(body);
  } else if (!keepOpen) stream.end();
  return { stream, answer };
}

/** status reads a gRPC answer's status, trailers-only or in trailers. */
function status(a: RawAnswer): { code: string | undefined; message: string } {
  const h = a.trailers ?? a.headers;
  return { code: h["grpc-status"] as string | undefined, message: decodeURIComponent(String(h["grpc-message"] ?? "")) };
}

const discover = (service: string) => toBinary(DiscoverRequestSchema, create(DiscoverRequestSchema, { service }));

describe("framing against broken and hostile clients", () => {
  let server: Maxine & { url: string };
  let session: http2.ClientHttp2Session;
  const logged: Array<{ level: number; msg: string }> = [];

  beforeAll(async () => {
    const sink = new Writable({
      write(chunk, _enc, cb) {
        for (const line of String(chunk).split("\n").filter(Boolean)) logged.push(JSON.parse(line));
        cb();
      },
    });
    server = await startInProcess(
      { MAXINE_MAX_MESSAGE_BYTES: "65536", MAXINE_MAX_BUFFERED_BYTES_PER_CONNECTION: "200000" },
      {
        logger: pino({ level: "debug" }, sink),
        debugEnabled: () => true,
        interceptors: [
          // a slow method for deadline tests: ListServices of namespace "slow" waits 300 ms
          {
            async onStart(ctx) {
              if (ctx.header("x-test-slow") !== undefined) await new Promise((r) => setTimeout(r, 300));
            },
          },
        ],
      },
    );
    session = http2.connect(server.url);
    expect((await postJson(server.url, "Register", { instance: { service: "fr", instanceId: "a", host: "10.0.0.1", port: 80 } })).status).toBe(200);
  });
  afterAll(async () => {
    session.close();
    await server.close();
  });

  it("answers an unknown gRPC method with UNIMPLEMENTED (grpc-status 12, trailers-only), not an HTTP 404", async () => {
    const { answer } = rawCall(session, `${SERVICE}/NoSuchMethod`, {}, grpcFrame(discover("fr")));
    const a = await answer;
    expect(a.headers[":status"]).toBe(200);
    expect(status(a)).toEqual({ code: "12", message: `${SERVICE}/NoSuchMethod is not a method this server serves` });
    const web = await fetch(`${server.url}/maxine.registry.v1.Nope/X`, { method: "POST", headers: { "content-type": "application/grpc-web+proto" }, body: grpcFrame(discover("fr")) });
    expect(web.headers.get("grpc-status")).toBe("12");
  });

  it("sends status messages as written: only non-printable bytes and '%' are percent-encoded", async () => {
    expect(grpcMessage("key: a/b, c")).toBe("key: a/b, c");
    expect(grpcMessage("100% ü\n")).toBe("100%25 %C3%BC%0A");
    const client = grpcClient(server.port);
    try {
      const err = await unary(client, "Discover", { service: "nowhere", strategy: "STRATEGY_RENDEZVOUS" }).catch((e: unknown) => e);
      expect((err as grpc.ServiceError).details).toBe("hash_key: is required for STRATEGY_RENDEZVOUS"); // grpc-js shows ':' as written
      expect(details(err)).toBe((err as grpc.ServiceError).details);
    } finally {
      client.close();
    }
  });

  it("refuses a malformed deadline with INVALID_ARGUMENT, on gRPC and Connect", async () => {
    const { answer } = rawCall(session, `${SERVICE}/Discover`, { "grpc-timeout": "soon" }, grpcFrame(discover("fr")));
    expect(status(await answer)).toEqual({ code: "3", message: "protocol error: invalid grpc timeout value: soon" });
    const res = await fetch(`${server.url}${SERVICE}/Discover`, {
      method: "POST",
      headers: { "content-type": "application/json", "connect-timeout-ms": "-1" },
      body: JSON.stringify({ service: "fr" }),
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ code: "invalid_argument", message: "protocol error: invalid connect timeout value: -1" });
  });

  it("enforces deadlines on unary calls and streams, on every protocol", async () => {
    const slow = rawCall(session, `${SERVICE}/ListServices`, { "grpc-timeout": "50m", "x-test-slow": "1" }, grpcFrame(new Uint8Array()));
    expect(status(await slow.answer).code).toBe("4");
    const res = await fetch(`${server.url}${SERVICE}/ListServices`, {
      method: "POST",
      headers: { "content-type": "application/json", "connect-timeout-ms": "50", "x-test-slow": "1" },
      body: "{}",
    });
    expect(res.status).toBe(504);
    expect(await res.json()).toMatchObject({ code: "deadline_exceeded" });
    const watch = rawCall(session, `${SERVICE}/WatchServices`, { "grpc-timeout": "200m" }, grpcFrame(toBinary(WatchServicesRequestSchema, create(WatchServicesRequestSchema, { services: ["fr"] }))));
    const w = await watch.answer;
    expect(w.data.length).toBeGreaterThan(0); // the snapshot came first
    expect(status(w)).toEqual({ code: "4", message: "the operation timed out" });
    await expect.poll(() => server.hub.watchers).toBe(0);
  });

  it("answers a corrupt gzip body with INVALID_ARGUMENT, on Connect and gRPC", async () => {
    const res = await fetch(`${server.url}${SERVICE}/Discover`, {
      method: "POST",
      headers: { "content-type": "application/json", "content-encoding": "gzip" },
      body: Buffer.from("not gzip at all"),
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ code: "invalid_argument", message: expect.stringMatching(/^request: not valid gzip/) });
    const { answer } = rawCall(session, `${SERVICE}/Discover`, { "grpc-encoding": "gzip" }, grpcFrame(Buffer.from("not gzip"), true));
    expect(status(await answer)).toMatchObject({ code: "3" });
    const good = rawCall(session, `${SERVICE}/Discover`, { "grpc-encoding": "gzip" }, grpcFrame(gzipSync(discover("fr")), true));
    expect(status(await good.answer).code).toBe("0");
  });

  it("answers undecodable protobuf with INVALID_ARGUMENT on every protocol", async () => {
    const garbage = Buffer.from([0x0a, 0xff, 0xff, 0xff]);
    const g = rawCall(session, `${SERVICE}/Discover`, {}, grpcFrame(garbage));
    expect(status(await g.answer)).toMatchObject({ code: "3", message: expect.stringContaining("not a valid maxine.registry.v1.DiscoverRequest") });
    const web = await fetch(`${server.url}${SERVICE}/Discover`, { method: "POST", headers: { "content-type": "application/grpc-web+proto" }, body: grpcFrame(garbage) });
    expect(web.headers.get("grpc-status")).toBe("3");
    const connect = await fetch(`${server.url}${SERVICE}/Discover`, { method: "POST", headers: { "content-type": "application/proto" }, body: garbage });
    expect(connect.status).toBe(400);
    const json = await fetch(`${server.url}${SERVICE}/Discover`, { method: "POST", headers: { "content-type": "application/json" }, body: '{"service": 7}' });
    const body = (await json.json()) as { code: string; message: string };
    expect(body.code).toBe("invalid_argument");
    expect(body.message).toMatch(/maxine\.registry\.v1\.DiscoverRequest\.service/); // names the field, once
    expect(body.message.match(/cannot decode/g)?.length).toBe(1);
  });

  it("refuses a length prefix over MAXINE_MAX_MESSAGE_BYTES before reading its payload", async () => {
    const head = Buffer.alloc(5);
    head.writeUInt32BE(4 * 1024 * 1024, 1);
    const { stream, answer } = rawCall(session, `${SERVICE}/Discover`, {}, head, true); // the payload never comes
    const a = await answer;
    expect(status(a)).toEqual({ code: "8", message: "request: a message of 4194304 bytes exceeds the limit of 65536 bytes (MAXINE_MAX_MESSAGE_BYTES)" });
    expect(stream.rstCode).toBe(http2.constants.NGHTTP2_NO_ERROR); // the client is told to stop sending
  });

  it("bounds unfinished messages per connection (MAXINE_MAX_BUFFERED_BYTES_PER_CONNECTION), frees the budget when they end", async () => {
    const conn = http2.connect(server.url);
    try {
      const announce = (n: number): Buffer => {
        const b = Buffer.alloc(5 + 1000);
        b.writeUInt32BE(n, 1);
        return b;
      };
      // two messages of 60,000 bytes announced and started fit in 200,000; a fourth does not
      const open = [0, 1, 2].map(() => rawCall(conn, `${SERVICE}/Discover`, {}, announce(60_000), true));
      const fourth = rawCall(conn, `${SERVICE}/Discover`, {}, announce(60_000), true);
      expect(status(await fourth.answer)).toMatchObject({ code: "8", message: expect.stringContaining("MAXINE_MAX_BUFFERED_BYTES_PER_CONNECTION") });
      for (const o of open) o.stream.close(http2.constants.NGHTTP2_CANCEL);
      await Promise.all(open.map((o) => o.answer));
      // another connection was never affected, and this one has its budget back
      const again = rawCall(conn, `${SERVICE}/Discover`, {}, grpcFrame(discover("fr")));
      expect(status(await again.answer).code).toBe("0");
    } finally {
      conn.close();
    }
  });

  it("reassembles a message sent in tiny DATA frames (64 bytes each)", async () => {
    const request = toBinary(DiscoverRequestSchema, create(DiscoverRequestSchema, { service: "fr", strategy: 5, hashKey: "k".repeat(30_000) }));
    const frame = grpcFrame(request);
    const { stream, answer } = rawCall(session, `${SERVICE}/Discover`, {}, undefined, true);
    for (let at = 0; at < frame.length; at += 64) stream.write(frame.subarray(at, at + 64));
    stream.end();
    const a = await answer;
    expect(status(a).code).toBe("0");
    expect(a.data.length).toBeGreaterThan(5);
  });

  it.each(["on", "off"])("refuses answers over MAXINE_MAX_RESPONSE_BYTES on every protocol (MAXINE_FAST_PATH=%s)", async (fastPath) => {
    const small = await startInProcess({ MAXINE_MAX_RESPONSE_BYTES: "1024", MAXINE_FAST_PATH: fastPath });
    const named = fastPath === "on" ? expect.stringContaining("MAXINE_MAX_RESPONSE_BYTES") : expect.any(String);
    try {
      for (let i = 0; i < 40; i++) await postJson(small.url, "Register", { instance: { service: `big-service-name-${i}`, instanceId: "x", host: "10.0.0.1", port: 80 } });
      const c = http2.connect(small.url);
      const g = rawCall(c, `${SERVICE}/ListServices`, {}, grpcFrame(new Uint8Array()));
      expect(status(await g.answer)).toMatchObject({ code: "8", message: named });
      c.close();
      const web = await fetch(`${small.url}${SERVICE}/ListServices`, { method: "POST", headers: { "content-type": "application/grpc-web+proto" }, body: grpcFrame(new Uint8Array()) });
      // in the headers (Maxine's framing: trailers-only) or in the trailer frame (connect-es)
      const webBody = Buffer.from(await web.arrayBuffer()).toString("latin1");
      expect(web.headers.get("grpc-status") ?? /grpc-status: ?(\d+)/.exec(webBody)?.[1]).toBe("8");
      const json = await postJson(small.url, "ListServices", {});
      expect(json.json).toMatchObject({ code: "resource_exhausted", message: named });
    } finally {
      await small.close();
    }
  });

  // The conformance suite's Server Message Size cases: a request of exactly
  // MAXINE_MAX_MESSAGE_BYTES is served, and its answer (larger than that) is
  // bounded by MAXINE_MAX_RESPONSE_BYTES alone.
  it.each(["on", "off"])("bounds requests by MAXINE_MAX_MESSAGE_BYTES and answers by MAXINE_MAX_RESPONSE_BYTES, separately (MAXINE_FAST_PATH=%s)", async (fastPath) => {
    const limits = await startInProcess({ MAXINE_MAX_MESSAGE_BYTES: "1024", MAXINE_MAX_RESPONSE_BYTES: "65536", MAXINE_FAST_PATH: fastPath });
    try {
      for (let i = 0; i < 40; i++) await postJson(limits.url, "Register", { instance: { service: `big-service-name-${i}`, instanceId: "x", host: "10.0.0.1", port: 80 } });
      const c = http2.connect(limits.url);
      const list = await rawCall(c, `${SERVICE}/ListServices`, {}, grpcFrame(new Uint8Array())).answer;
      expect(status(list).code).toBe("0");
      expect(list.data.length).toBeGreaterThan(1024 + 5); // an answer over the request limit
      const tooBig = toBinary(DiscoverRequestSchema, create(DiscoverRequestSchema, { service: "s".repeat(1100) }));
      const refused = await rawCall(c, `${SERVICE}/Discover`, {}, grpcFrame(tooBig)).answer;
      expect(status(refused).code).toBe("8");
      c.close();
    } finally {
      await limits.close();
    }
  });

  it("logs what clients do (cancels, bad input) below error level, and each call at debug", async () => {
    const before = logged.length;
    const watch = rawCall(session, `${SERVICE}/WatchServices`, {}, grpcFrame(toBinary(WatchServicesRequestSchema, create(WatchServicesRequestSchema, { services: ["fr"] }))));
    await expect.poll(() => server.hub.watchers).toBe(1);
    watch.stream.close(http2.constants.NGHTTP2_CANCEL);
    await watch.answer;
    const ac = new AbortController();
    const res = await fetch(`${server.url}${SERVICE}/WatchServices`, {
      method: "POST",
      headers: { "content-type": "application/connect+json" },
      body: Buffer.concat([Buffer.from([0, 0, 0, 0, 2]), Buffer.from("{}")]),
      signal: ac.signal,
    });
    await res.body!.getReader().read();
    ac.abort(); // Ctrl-C on the README's curl watch
    await expect.poll(() => server.hub.watchers).toBe(0);
    await postJson(server.url, "Register", { instance: { service: "fr" } });
    const lines = logged.slice(before);
    expect(lines.filter((l) => l.level >= 50)).toEqual([]);
    expect(lines.filter((l) => l.msg === "call").length).toBeGreaterThanOrEqual(3);
  });
});

describe("EnvelopeReader", () => {
  it("reads the same messages however the body is cut into chunks (property)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 8 }),
        fc.array(fc.integer({ min: 1, max: 97 }), { minLength: 1, maxLength: 20 }),
        (messages, cuts) => {
          const body = Buffer.concat(messages.map((m) => grpcFrame(m)));
          const budget = new ByteBudget(1 << 20, "TEST");
          const reader = new EnvelopeReader(1 << 20, budget, "identity");
          const got: Uint8Array[] = [];
          let at = 0;
          for (let i = 0; at < body.length; i++) {
            const n = cuts[i % cuts.length]!;
            for (const e of reader.push(body.subarray(at, at + n))) got.push(e.data);
            at += n;
          }
          expect(got.map((b) => Buffer.from(b).toString("hex"))).toEqual(messages.map((m) => Buffer.from(m).toString("hex")));
          expect(reader.pending).toBe(false);
          expect(budget.held).toBe(0);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("holds at most the announced bytes of the budget and gives them back on close", () => {
    const budget = new ByteBudget(1000, "TEST_SETTING");
    const reader = new EnvelopeReader(10_000, budget, "identity");
    const head = Buffer.alloc(5);
    head.writeUInt32BE(800, 1);
    reader.push(head);
    expect(budget.held).toBe(800);
    const other = new EnvelopeReader(10_000, budget, "identity");
    expect(() => other.push(head)).toThrow(/TEST_SETTING/);
    reader.close();
    expect(budget.held).toBe(0);
  });
});
