import type http from "node:http";
import http2 from "node:http2";
import { gunzipSync } from "node:zlib";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  WatchServicesRequestSchema,
  WatchServicesResponseSchema,
  type WatchServicesRequest,
} from "@maxine/sdk/gen/maxine/registry/v1/registry_pb";
import type { InstanceRecord } from "../registry/instance.js";
import { RegistryError } from "../registry/errors.js";
import type { Logger } from "../registry/logger.js";
import type { Limits } from "../registry/validate.js";
import type { WatchHub } from "../watch/hub.js";
import type { WatchEventItem, WatchItem } from "../watch/items.js";
import type { Watcher } from "../watch/watcher.js";
import type { Connections } from "./connections.js";
import { watchItemToPb } from "./convert.js";
import { toConnectError } from "./errors.js";
import type { RequestHandler } from "./listener.js";
import { openWatch } from "./open-watch.js";

const PATH = "/maxine.registry.v1.RegistryService/WatchServices";
const GRPC_PROTO = new Set(["application/grpc", "application/grpc+proto"]);
const TIMEOUT_UNITS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000001 };

/** GrpcWatchDeps are what the fast path serves watches with: the same parts and limits as the connect-es routes. */
export interface GrpcWatchDeps {
  readonly hub: WatchHub;
  readonly limits: Limits;
  readonly connections: Connections;
  readonly maxMessageBytes: number;
  readonly log: Logger;
}

/**
 * withGrpcWatch serves gRPC (protobuf) WatchServices calls over HTTP/2
 * itself and passes every other request to handler (connect-es). A watch
 * event is encoded once and the same bytes are written to every stream
 * that sees it, and items go from the watcher's queue to the HTTP/2 stream
 * with no async-generator pipeline in between: per watcher message this
 * costs a fraction of connect-es's generic path, which is what fan-out to
 * thousands of watchers needs (bench/fanout-vs-etcd.mjs). Requests,
 * limits, errors and stream semantics are those of the connect-es route
 * (openWatch is shared); gRPC-Web and Connect watches still go through
 * connect-es.
 */
export function withGrpcWatch(handler: RequestHandler, deps: GrpcWatchDeps): RequestHandler {
  return (req, res) => {
    if (req.url === PATH && req.method === "POST" && "stream" in req && GRPC_PROTO.has(req.headers["content-type"] ?? "")) {
      void serve(deps, req, res as http2.Http2ServerResponse).catch((err: unknown) => {
        deps.log.error({ err, procedure: "WatchServices" }, "unexpected error");
        req.stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
      });
      return;
    }
    handler(req as http.IncomingMessage, res as http.ServerResponse);
  };
}

async function serve(deps: GrpcWatchDeps, req: http2.Http2ServerRequest, res: http2.Http2ServerResponse): Promise<void> {
  const stream = req.stream;
  const contentType = req.headers["content-type"]!;
  let request: WatchServicesRequest;
  let watcher: Watcher;
  try {
    request = await readRequest(req, deps.maxMessageBytes);
    watcher = openWatch(deps.hub, deps.limits, request, deps.connections.of(req));
  } catch (err) {
    if (!stream.closed) fail(deps, res, contentType, err, true);
    return;
  }
  const w = watcher;
  stream.once("close", () => w.end());
  const timeout = timeoutMs(req.headers["grpc-timeout"] as string | undefined);
  const timer =
    timeout === undefined ? undefined : setTimeout(() => w.end(new ConnectError("the operation timed out", Code.DeadlineExceeded)), timeout);
  stream.respond({ ":status": 200, "content-type": contentType, "grpc-accept-encoding": "gzip" }, { waitForTrailers: true });
  try {
    await pump(stream, w);
    if (!stream.closed) finish(res, { "grpc-status": "0" });
  } catch (err) {
    if (!stream.closed) fail(deps, res, contentType, err, false);
  } finally {
    clearTimeout(timer);
    w.end();
  }
}

/** pump writes the watcher's items to the stream until the watcher ends (or throws its error), waiting whenever the stream is full. */
async function pump(stream: http2.ServerHttp2Stream, w: Watcher): Promise<void> {
  for (;;) {
    let item = w.take();
    if (item === undefined) {
      const r = await w.next();
      if (r.done) return;
      item = r.value;
    }
    if (stream.closed) return;
    if (!stream.write(encode(item))) {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          stream.off("drain", done);
          stream.off("close", done);
          resolve();
        };
        stream.on("drain", done);
        stream.on("close", done);
      });
    }
  }
}

/** readRequest reads the one enveloped request message, enforcing the size limit and the request's grpc-encoding. */
async function readRequest(req: http2.Http2ServerRequest, maxBytes: number): Promise<WatchServicesRequest> {
  const encoding = req.headers["grpc-encoding"] ?? "identity";
  if (encoding !== "identity" && encoding !== "gzip") {
    throw new ConnectError(`grpc-encoding "${encoding}" is not supported (supported: gzip, identity)`, Code.Unimplemented);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes + 5) {
      throw new ConnectError(`request: message larger than the limit of ${maxBytes} bytes (MAXINE_MAX_MESSAGE_BYTES)`, Code.ResourceExhausted);
    }
    chunks.push(chunk);
  }
  const body = Buffer.concat(chunks, size);
  if (body.length < 5) throw new ConnectError("request: expected one WatchServicesRequest message, got none", Code.InvalidArgument);
  const flags = body[0]!;
  const length = body.readUInt32BE(1);
  if (body.length !== 5 + length) {
    throw new ConnectError("request: expected exactly one complete WatchServicesRequest message", Code.InvalidArgument);
  }
  let payload: Uint8Array = body.subarray(5);
  if ((flags & 1) === 1) {
    if (encoding !== "gzip") throw new ConnectError("protocol error: compressed message without grpc-encoding", Code.Internal);
    try {
      payload = gunzipSync(payload, { maxOutputLength: maxBytes });
    } catch {
      throw new ConnectError(`request: gzip message invalid or larger than ${maxBytes} bytes (MAXINE_MAX_MESSAGE_BYTES)`, Code.ResourceExhausted);
    }
  }
  try {
    return fromBinary(WatchServicesRequestSchema, payload);
  } catch (err) {
    throw new ConnectError(`request: not a valid WatchServicesRequest: ${(err as Error).message}`, Code.InvalidArgument);
  }
}

function timeoutMs(header: string | undefined): number | undefined {
  if (header === undefined) return undefined;
  const m = /^(\d{1,8})([HMSmun])$/.exec(header);
  return m === null ? undefined : Math.max(1, Number(m[1]) * TIMEOUT_UNITS[m[2]!]!);
}

// The compat response (Http2ServerResponse) answers the stream's wantTrailers
// event with its own trailers, so trailers are handed to it.
function finish(res: http2.Http2ServerResponse, trailers: http2.OutgoingHttpHeaders): void {
  res.addTrailers(trailers);
  res.stream.end();
}

/** fail ends the call with err's gRPC status: trailers-only before the response started, else in the trailers. */
function fail(deps: GrpcWatchDeps, res: http2.Http2ServerResponse, contentType: string, err: unknown, trailersOnly: boolean): void {
  if (!(err instanceof RegistryError) && !(err instanceof ConnectError)) {
    deps.log.error({ err, procedure: "WatchServices" }, "unexpected error");
  }
  const ce = toConnectError(err);
  const status = { "grpc-status": String(ce.code), "grpc-message": encodeURIComponent(ce.rawMessage) };
  if (trailersOnly) res.stream.respond({ ":status": 200, "content-type": contentType, ...status }, { endStream: true });
  else finish(res, status);
}

// Encoded events, per instance record: every watcher that sees a change
// gets the same item content, so the bytes are built once per change.
const encodedEvents = new WeakMap<InstanceRecord, { item: WatchEventItem; bytes: Buffer }>();

function encode(item: WatchItem): Buffer {
  if (item.kind !== "event") return envelope(toBinary(WatchServicesResponseSchema, watchItemToPb(item)));
  const cached = encodedEvents.get(item.instance);
  if (cached !== undefined && sameEvent(cached.item, item)) return cached.bytes;
  const bytes = envelope(toBinary(WatchServicesResponseSchema, watchItemToPb(item)));
  encodedEvents.set(item.instance, { item, bytes });
  return bytes;
}

function sameEvent(a: WatchEventItem, b: WatchEventItem): boolean {
  return a.revision === b.revision && a.type === b.type && a.removalReason === b.removalReason;
}

function envelope(message: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(5 + message.length);
  out[0] = 0;
  out.writeUInt32BE(message.length, 1);
  out.set(message, 5);
  return out;
}
