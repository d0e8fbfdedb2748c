import http2 from "node:http2";
import { gzipSync } from "node:zlib";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  BeatResult,
  EventType,
  HeartbeatRequestSchema,
  HeartbeatResponseSchema,
  ServingStatus,
  type HeartbeatResponse,
  RemovalReason,
  ResetReason,
  WatchServicesRequestSchema,
  WatchServicesResponseSchema,
  type WatchServicesResponse,
} from "@maxine/sdk/gen/maxine/registry/v1/registry_pb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Maxine } from "../src/app.js";
import { grpcFrame } from "./support/grpc-frame.js";
import { postJson, startInProcess } from "./support/in-process.js";

// The gRPC fast paths for WatchServices and Heartbeat (transport/grpc-*.ts), spoken to
// with a raw HTTP/2 client so that the protocol's edges can be reached:
// request encodings, sizes, deadlines, malformed input, a reader that stops
// reading, and one change seen differently by watchers with different filters.

const PATH = "/maxine.registry.v1.RegistryService/WatchServices";

interface RawCall {
  readonly headers: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader;
  readonly messages: WatchServicesResponse[];
  readonly trailers: http2.IncomingHttpHeaders | undefined;
  readonly stream: http2.ClientHttp2Stream;
}


/** parse splits gRPC envelopes off buf, returning the messages and what is left. */
function parse(buf: Buffer): { messages: WatchServicesResponse[]; rest: Buffer } {
  const messages: WatchServicesResponse[] = [];
  while (buf.length >= 5 && buf.length >= 5 + buf.readUInt32BE(1)) {
    const n = buf.readUInt32BE(1);
    messages.push(fromBinary(WatchServicesResponseSchema, buf.subarray(5, 5 + n)));
    buf = buf.subarray(5 + n);
  }
  return { messages, rest: buf };
}

describe("gRPC WatchServices fast path (raw HTTP/2)", () => {
  let server: Maxine & { url: string };
  let session: http2.ClientHttp2Session;

  beforeAll(async () => {
    server = await startInProcess({ MAXINE_MAX_MESSAGE_BYTES: "4096", MAXINE_WATCH_QUEUE: "8", MAXINE_MAX_HEARTBEATS_PER_CONNECTION: "2" });
    session = http2.connect(`http://127.0.0.1:${server.port}`);
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => session.close(() => resolve()));
    await server.close();
  });

  /** call opens a watch with body (already framed) and collects until the call ends or until is true. */
  function call(body: Buffer, headers: http2.OutgoingHttpHeaders = {}): RawCall & { ended: Promise<void>; until(p: (m: WatchServicesResponse[]) => boolean): Promise<void> } {
    const stream = session.request({ ":method": "POST", ":path": PATH, "content-type": "application/grpc", te: "trailers", ...headers });
    const result = { headers: {} as RawCall["headers"], messages: [] as WatchServicesResponse[], trailers: undefined as RawCall["trailers"], stream };
    let buf: Buffer = Buffer.alloc(0);
    const waiters: Array<() => void> = [];
    stream.on("response", (h) => {
      result.headers = h;
      if (h["grpc-status"] !== undefined) result.trailers = h; // trailers-only
    });
    stream.on("data", (d: Buffer) => {
      const parsed = parse(Buffer.concat([buf, d]));
      buf = parsed.rest;
      result.messages.push(...parsed.messages);
      waiters.splice(0).forEach((w) => w());
    });
    stream.on("trailers", (t) => (result.trailers = t));
    const ended = new Promise<void>((resolve) => stream.on("close", resolve));
    stream.end(body);
    return Object.assign(result, {
      ended,
      async until(p: (m: WatchServicesResponse[]) => boolean) {
        const deadline = Date.now() + 5000;
        while (!p(result.messages)) {
          if (Date.now() > deadline) throw new Error(`timed out; got ${result.messages.length} messages`);
          await new Promise<void>((resolve) => {
            waiters.push(resolve);
            setTimeout(resolve, 50);
          });
        }
      },
    });
  }

  const request = (init: Parameters<typeof create<typeof WatchServicesRequestSchema>>[1]) => toBinary(WatchServicesRequestSchema, create(WatchServicesRequestSchema, init));
  const register = (id: string, zone: string) =>
    postJson(server.url, "Register", { instance: { service: "fast", instanceId: id, host: "10.1.0.1", port: 80, zone } });

  it("streams a snapshot, then events, with the request's content type and OK trailers on cancel-free end", async () => {
    const c = call(grpcFrame(request({ services: ["fast"] })));
    await c.until((m) => m.some((x) => x.message.case === "snapshotEnd"));
    expect(c.headers[":status"]).toBe(200);
    expect(c.headers["content-type"]).toBe("application/grpc");
    await register("f1", "a");
    await c.until((m) => m.some((x) => x.message.case === "event"));
    const ev = c.messages.find((x) => x.message.case === "event")!.message.value as { type: EventType; instance: { instanceId: string } };
    expect(ev.type).toBe(EventType.ADDED);
    expect(ev.instance.instanceId).toBe("f1");
    c.stream.close(http2.constants.NGHTTP2_CANCEL);
    await c.ended;
  });

  it("gives each watcher its own view of one change: UPDATED for one, REMOVED (FILTERED) for another", async () => {
    await register("f2", "a");
    const all = call(grpcFrame(request({ services: ["fast"] })));
    const zoneA = call(grpcFrame(request({ services: ["fast"], filter: { zone: "a" } })));
    const zoneB = call(grpcFrame(request({ services: ["fast"], filter: { zone: "b" } })));
    for (const c of [all, zoneA, zoneB]) await c.until((m) => m.some((x) => x.message.case === "snapshotEnd"));
    await register("f2", "b"); // moves f2 from zone a to zone b
    const eventOf = async (c: typeof all) => {
      await c.until((m) => m.some((x) => x.message.case === "event"));
      return c.messages.find((x) => x.message.case === "event")!.message.value as { type: EventType; removalReason: RemovalReason; revision: bigint; instance: { zone: string } };
    };
    const [e1, e2, e3] = [await eventOf(all), await eventOf(zoneA), await eventOf(zoneB)];
    expect([e1.type, e2.type, e3.type]).toEqual([EventType.UPDATED, EventType.REMOVED, EventType.ADDED]);
    expect(e2.removalReason).toBe(RemovalReason.FILTERED);
    expect(e1.revision).toBe(e2.revision);
    expect(e2.revision).toBe(e3.revision);
    expect([e1.instance.zone, e2.instance.zone, e3.instance.zone]).toEqual(["b", "b", "b"]);
    for (const c of [all, zoneA, zoneB]) c.stream.close(http2.constants.NGHTTP2_CANCEL);
    await Promise.all([all.ended, zoneA.ended, zoneB.ended]);
  });

  it("accepts a gzip-compressed request", async () => {
    const c = call(grpcFrame(gzipSync(request({ services: ["fast"] })), true), { "grpc-encoding": "gzip" });
    await c.until((m) => m.some((x) => x.message.case === "snapshotEnd"));
    c.stream.close(http2.constants.NGHTTP2_CANCEL);
    await c.ended;
  });

  it.each([
    ["an unsupported grpc-encoding", grpcFrame(request({})), { "grpc-encoding": "snappy" }, "12", /grpc-encoding "snappy" is not supported/],
    ["a request over MAXINE_MAX_MESSAGE_BYTES", grpcFrame(request({ services: ["x".repeat(5000)] })), {}, "8", /limit of 4096 bytes/],
    ["a malformed message", grpcFrame(Buffer.from([0x0a, 0xff, 0xff])), {}, "3", /not a valid maxine.registry.v1.WatchServicesRequest/],
    ["no message at all (UNIMPLEMENTED, as connect-es answers a cardinality violation)", Buffer.alloc(0), {}, "12", /missing input message for server-streaming method/],
    ["an invalid service name", grpcFrame(request({ services: ["Bad Name"] })), {}, "3", /services\[0\]/],
  ])("answers %s with a trailers-only status naming the problem", async (_what, body, headers, code, message) => {
    const c = call(body, headers);
    await c.ended;
    expect(c.trailers?.["grpc-status"]).toBe(code);
    expect(decodeURIComponent(String(c.trailers?.["grpc-message"]))).toMatch(message);
    expect(c.messages).toEqual([]);
  });

  it("ends a watch at its grpc-timeout with DEADLINE_EXCEEDED", async () => {
    const c = call(grpcFrame(request({ services: ["fast"] })), { "grpc-timeout": "200m" });
    await c.ended;
    expect(c.messages.some((x) => x.message.case === "snapshotEnd")).toBe(true);
    expect(c.trailers?.["grpc-status"]).toBe("4");
  });

  it("resets a reader that stopped reading once its queue overflows, without blocking anyone else", async () => {
    const slow = call(grpcFrame(request({ services: ["flood"] })));
    await slow.until((m) => m.some((x) => x.message.case === "snapshotEnd"));
    slow.stream.pause(); // stop reading: HTTP/2 flow control fills, then the server-side queue (MAXINE_WATCH_QUEUE=8)
    const meta = "m".repeat(3000);
    for (let i = 0; i < 200; i++) {
      const r = await postJson(server.url, "Register", {
        instance: { service: "flood", instanceId: `i${i}`, host: "10.1.0.1", port: 80, metadata: { pad: meta } },
      });
      expect(r.status).toBe(200); // writers never wait on the slow reader
    }
    slow.stream.resume();
    await slow.until((m) => m.some((x) => x.message.case === "snapshotEnd" && x.message.value.reset));
    const reset = slow.messages.find((x) => x.message.case === "snapshotEnd" && x.message.value.reset)!.message.value as { reason: ResetReason };
    expect(reset.reason).toBe(ResetReason.OVERFLOW);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(Number(/^maxine_watch_overflows_total (\d+)$/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(1);
    slow.stream.close(http2.constants.NGHTTP2_CANCEL);
    await slow.ended;
  });

  it("delivers a burst of changes to more watchers than one write turn holds, each once and in revision order", async () => {
    // 300 watchers take three turns of writes (WRITES_PER_TURN = 128 in grpc-watch.ts); a watcher
    // left to a later turn must still get every change, once, in order, while new changes arrive.
    const watchers = Array.from({ length: 300 }, () => call(grpcFrame(request({ services: ["burst"] }))));
    await Promise.all(watchers.map((c) => c.until((m) => m.some((x) => x.message.case === "snapshotEnd"))));
    const ids = ["b0", "b1", "b2", "b3", "b4", "b5"];
    const answers = await Promise.all(
      ids.map((id) => postJson(server.url, "Register", { instance: { service: "burst", instanceId: id, host: "10.1.0.1", port: 80 } })),
    );
    expect(answers.map((r) => r.status)).toEqual(ids.map(() => 200));
    const events = (c: RawCall) =>
      c.messages.flatMap((x) => (x.message.case === "event" ? [x.message.value as { revision: bigint; instance: { instanceId: string } }] : []));
    await Promise.all(watchers.map((c) => c.until(() => events(c).length >= ids.length)));
    const expected = events(watchers[0]!);
    expect(expected.map((e) => e.instance.instanceId).sort()).toEqual(ids);
    for (let i = 1; i < expected.length; i++) expect(expected[i]!.revision).toBeGreaterThan(expected[i - 1]!.revision);
    for (const c of watchers) {
      expect(events(c).map((e) => [e.revision, e.instance.instanceId])).toEqual(expected.map((e) => [e.revision, e.instance.instanceId]));
      expect(c.messages.some((x) => x.message.case === "snapshotEnd" && x.message.value.reset)).toBe(false);
      c.stream.close(http2.constants.NGHTTP2_CANCEL);
    }
    await Promise.all(watchers.map((c) => c.ended));
  });

  /** beat opens a raw Heartbeat call on conn and sends requests; it resolves with the responses and the trailers. */
  async function heartbeat(conn: http2.ClientHttp2Session, requests: Uint8Array[], keepOpen = false) {
    const stream = conn.request({ ":method": "POST", ":path": "/maxine.registry.v1.RegistryService/Heartbeat", "content-type": "application/grpc", te: "trailers" });
    let trailers: http2.IncomingHttpHeaders | undefined;
    let buf: Buffer = Buffer.alloc(0);
    const responses: HeartbeatResponse[] = [];
    stream.on("response", (h) => h["grpc-status"] !== undefined && (trailers = h));
    stream.on("trailers", (t) => (trailers = t));
    stream.on("data", (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 5 && buf.length >= 5 + buf.readUInt32BE(1)) {
        responses.push(fromBinary(HeartbeatResponseSchema, buf.subarray(5, 5 + buf.readUInt32BE(1))));
        buf = buf.subarray(5 + buf.readUInt32BE(1));
      }
    });
    const closed = new Promise<void>((resolve) => stream.on("close", resolve));
    for (const r of requests) stream.write(grpcFrame(r));
    if (!keepOpen) stream.end();
    return { stream, closed, responses, get trailers() { return trailers; } };
  }
  const beatRequest = (sequence: bigint, status: number) =>
    toBinary(HeartbeatRequestSchema, create(HeartbeatRequestSchema, { sequence, beats: [{ key: { service: "fast", instanceId: "f1" }, status }] }));

  it("Heartbeat answers in order, then ends with INVALID_ARGUMENT naming the field of an unknown status", async () => {
    await register("f1", "a");
    const hb = await heartbeat(session, [beatRequest(1n, ServingStatus.SERVING), beatRequest(2n, 42)]);
    await hb.closed;
    expect(hb.responses.map((r) => [r.sequence, r.acks[0]?.result])).toEqual([[1n, BeatResult.RENEWED]]);
    expect(hb.trailers?.["grpc-status"]).toBe("3");
    expect(decodeURIComponent(String(hb.trailers?.["grpc-message"]))).toMatch(/beats\[0\]\.status: unknown value 42/);
  });

  it("Heartbeat answers in order when status changes wait for the store between beats answered at once", async () => {
    await register("f1", "a");
    const statuses = [ServingStatus.SERVING, ServingStatus.DRAINING, ServingStatus.DRAINING, ServingStatus.SERVING, ServingStatus.UNSPECIFIED, ServingStatus.NOT_SERVING];
    const hb = await heartbeat(session, statuses.map((st, i) => beatRequest(BigInt(i + 1), st)));
    await hb.closed;
    expect(hb.trailers?.["grpc-status"]).toBe("0");
    expect(hb.responses.map((r) => [r.sequence, r.acks[0]?.result])).toEqual(statuses.map((_, i) => [BigInt(i + 1), BeatResult.RENEWED]));
    const found = await postJson(server.url, "Discover", { service: "fast", includeAll: true });
    const f1 = (found.json.instances as Array<{ instanceId: string; status: string }>).find((x) => x.instanceId === "f1");
    expect(f1?.status).toBe("SERVING_STATUS_NOT_SERVING");
  });

  it("Heartbeat registers an unknown instance from a first beat that carries it (REGISTERED), then renews it", async () => {
    const whole = { service: "fast", instanceId: "from-beat", host: "10.1.0.9", port: 81, zone: "c" };
    const first = toBinary(
      HeartbeatRequestSchema,
      create(HeartbeatRequestSchema, { sequence: 1n, beats: [{ key: { service: "fast", instanceId: "from-beat" }, instance: whole, leaseTtl: { seconds: 20n } }] }),
    );
    const next = toBinary(HeartbeatRequestSchema, create(HeartbeatRequestSchema, { sequence: 2n, beats: [{ key: { service: "fast", instanceId: "from-beat" } }] }));
    const hb = await heartbeat(session, [first, next], true);
    const deadline = Date.now() + 5000;
    while (hb.responses.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(hb.responses.map((r) => [r.sequence, r.acks[0]?.result])).toEqual([
      [1n, BeatResult.REGISTERED],
      [2n, BeatResult.RENEWED],
    ]);
    const expires = hb.responses[0]!.acks[0]!.leaseExpiresAt!;
    expect(Number(expires.seconds) * 1000 - Date.now()).toBeGreaterThan(15_000); // the beat's 20-s TTL, not the 10-s default
    const found = await postJson(server.url, "Discover", { service: "fast", includeAll: true });
    expect((found.json.instances as Array<{ instanceId: string; zone: string }>).find((x) => x.instanceId === "from-beat")).toMatchObject({ zone: "c" });
    hb.stream.end();
    await hb.closed;
    expect(hb.trailers?.["grpc-status"]).toBe("0");
    await postJson(server.url, "Deregister", { key: { service: "fast", instanceId: "from-beat" } });
  });

  it("Heartbeat holds MAXINE_MAX_HEARTBEATS_PER_CONNECTION streams per connection and frees a slot when one ends", async () => {
    const conn = http2.connect(`http://127.0.0.1:${server.port}`);
    try {
      const a = await heartbeat(conn, [beatRequest(1n, ServingStatus.SERVING)], true);
      const b = await heartbeat(conn, [beatRequest(1n, ServingStatus.SERVING)], true);
      const c = await heartbeat(conn, [beatRequest(1n, ServingStatus.SERVING)]);
      await c.closed;
      expect(c.trailers?.["grpc-status"]).toBe("8");
      expect(decodeURIComponent(String(c.trailers?.["grpc-message"]))).toMatch(/maximum of 2 heartbeat streams/);
      a.stream.end();
      await a.closed;
      expect(a.trailers?.["grpc-status"]).toBe("0");
      const d = await heartbeat(conn, [beatRequest(1n, ServingStatus.SERVING)]);
      await d.closed;
      expect(d.trailers?.["grpc-status"]).toBe("0");
      expect(d.responses).toHaveLength(1);
      b.stream.close(http2.constants.NGHTTP2_CANCEL);
      await b.closed;
    } finally {
      await new Promise<void>((resolve) => conn.close(() => resolve()));
    }
  });
});
