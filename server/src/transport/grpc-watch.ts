import type http2 from "node:http2";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  WatchEventSchema,
  WatchServicesRequestSchema,
  WatchServicesResponseSchema,
  type WatchServicesRequest,
} from "@maxine/sdk/gen/maxine/registry/v1/registry_pb";
import type { InstanceRecord } from "../registry/instance.js";
import type { WatchEventItem, WatchItem } from "../watch/items.js";
import type { Watcher } from "../watch/watcher.js";
import { watchEventFieldsOf, watchItemToPb } from "./convert.js";
import { instanceBytes, lengthDelimited } from "./encoded.js";
import type { FastPathDeps } from "./grpc-fast-path.js";
import { envelope, fail, finish, FrameReader, requestEncoding, respond, timeoutMs, whenWritable } from "./grpc-wire.js";
import { openWatch } from "./open-watch.js";

/**
 * serveGrpcWatch serves one gRPC WatchServices call. A watch event is
 * encoded once and the same bytes are written to every stream that sees
 * it, and items go from the watcher's queue to the HTTP/2 stream with no
 * async-generator pipeline in between. Requests, limits and errors are
 * those of the connect-es route (openWatch is shared).
 */
export async function serveGrpcWatch(deps: FastPathDeps, req: http2.Http2ServerRequest, res: http2.Http2ServerResponse): Promise<void> {
  const contentType = req.headers["content-type"]!;
  let watcher: Watcher;
  try {
    const request = await readOne(req, deps.maxMessageBytes);
    watcher = openWatch(deps.hub, deps.limits, request, deps.connections.of(req));
  } catch (err) {
    fail(deps.log, "WatchServices", res, contentType, err);
    return;
  }
  const w = watcher;
  const stream = res.stream;
  stream.once("close", () => w.end());
  const timeout = timeoutMs(req);
  const timer =
    timeout === undefined ? undefined : setTimeout(() => w.end(new ConnectError("the operation timed out", Code.DeadlineExceeded)), timeout);
  respond(res, contentType);
  try {
    await pump(stream, w);
    finish(res);
  } catch (err) {
    fail(deps.log, "WatchServices", res, contentType, err);
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
    if (!stream.write(encode(item))) await whenWritable(stream);
  }
}

/** readOne reads the call's one request message. */
async function readOne(req: http2.Http2ServerRequest, maxBytes: number): Promise<WatchServicesRequest> {
  const reader = new FrameReader(requestEncoding(req), maxBytes);
  const messages: Uint8Array[] = [];
  for await (const chunk of req as AsyncIterable<Buffer>) messages.push(...reader.push(chunk));
  if (messages.length !== 1 || reader.pending) {
    throw new ConnectError(`request: expected one complete WatchServicesRequest message, got ${messages.length}`, Code.InvalidArgument);
  }
  try {
    return fromBinary(WatchServicesRequestSchema, messages[0]!);
  } catch (err) {
    throw new ConnectError(`request: not a valid WatchServicesRequest: ${(err as Error).message}`, Code.InvalidArgument);
  }
}

// Encoding. Each event's whole message is kept, per record, for the
// fan-out: every watcher that sees a change gets the same bytes, and a
// snapshot chunk is mostly a copy of cached Instance bytes (encoded.ts).
// Fields are written by hand only around the cached Instance bytes
// (length-delimited fields: the snapshot's and the event's instance, the
// response's oneof).

const encodedEvents = new WeakMap<InstanceRecord, { item: WatchEventItem; bytes: Buffer }>();

const SNAPSHOT_FIELD = 1; // WatchServicesResponse.snapshot
const EVENT_FIELD = 3; // WatchServicesResponse.event
const INSTANCES_FIELD = 1; // SnapshotChunk.instances
const EVENT_INSTANCE_FIELD = 2; // WatchEvent.instance

function encode(item: WatchItem): Buffer {
  switch (item.kind) {
    case "snapshot": {
      const parts = item.instances.map((r) => lengthDelimited(INSTANCES_FIELD, instanceBytes(r)));
      return envelope(lengthDelimited(SNAPSHOT_FIELD, Buffer.concat(parts)));
    }
    case "event": {
      const cached = encodedEvents.get(item.instance);
      if (cached !== undefined && sameEvent(cached.item, item)) return cached.bytes;
      // the event without its instance, then the cached instance as field 2
      const head = toBinary(WatchEventSchema, create(WatchEventSchema, watchEventFieldsOf(item)));
      const body = Buffer.concat([head, lengthDelimited(EVENT_INSTANCE_FIELD, instanceBytes(item.instance))]);
      const bytes = envelope(lengthDelimited(EVENT_FIELD, body));
      encodedEvents.set(item.instance, { item, bytes });
      return bytes;
    }
    default:
      return envelope(toBinary(WatchServicesResponseSchema, watchItemToPb(item)));
  }
}

function sameEvent(a: WatchEventItem, b: WatchEventItem): boolean {
  return a.revision === b.revision && a.type === b.type && a.removalReason === b.removalReason;
}
