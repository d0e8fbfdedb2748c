import type http2 from "node:http2";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  WatchServicesRequestSchema,
  WatchServicesResponseSchema,
  type WatchServicesRequest,
} from "@maxine/sdk/gen/maxine/registry/v1/registry_pb";
import type { InstanceRecord } from "../domain/instance.js";
import type { WatchEventItem, WatchItem } from "../watch/items.js";
import type { Watcher } from "../watch/watcher.js";
import { watchItemToPb } from "./convert.js";
import { eachChunk } from "./body.js";
import { instanceBytes, lengthDelimited, watchEventFrame } from "./encoded.js";
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
export async function serveGrpcWatch(deps: FastPathDeps, stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): Promise<void> {
  const contentType = headers["content-type"]!;
  let watcher: Watcher;
  try {
    const request = await readOne(stream, headers, deps.maxMessageBytes);
    watcher = openWatch(deps.hub, deps.limits, request, deps.connections.ofStream(stream));
  } catch (err) {
    fail(deps.log, "WatchServices", stream, contentType, err);
    return;
  }
  const w = watcher;
  if (stream.destroyed || stream.closed) {
    // The client gave up on the call before it was served: nothing to answer.
    w.end();
    return;
  }
  stream.once("close", () => w.end());
  const timeout = timeoutMs(headers);
  const timer =
    timeout === undefined ? undefined : setTimeout(() => w.end(new ConnectError("the operation timed out", Code.DeadlineExceeded)), timeout);
  respond(stream, contentType);
  await new Promise<void>((resolve) => {
    const done = (err?: unknown): void => {
      clearTimeout(timer);
      w.end();
      if (err === undefined) finish(stream);
      else fail(deps.log, "WatchServices", stream, contentType, err);
      resolve();
    };
    drain(stream, w, done);
  });
}

/** BATCH_BYTES bounds one write: items queued together go out in one write up to this size. */
const BATCH_BYTES = 64 * 1024;

/**
 * drain writes the watcher's items to the stream until the watcher ends,
 * then calls done (with the watcher's error, if any). A watcher woken by
 * a change is flushed once the dispatch is over (flushSoon: in turns of
 * WRITES_PER_TURN, no promise per watcher), and everything queued by then
 * goes out in one stream write: a burst of changes, or all that piled up
 * while the stream was full (it is resumed on drain).
 */
function drain(stream: http2.ServerHttp2Stream, w: Watcher, done: (err?: unknown) => void): void {
  const flush = (): void => {
    try {
      write();
    } catch (err) {
      done(err);
    }
  };
  const write = (): void => {
    if (stream.closed) return done();
    const first = w.take();
    if (first === undefined) {
      const ended = w.endedWith;
      if (ended !== undefined) return done(ended.error);
      return w.whenQueued(() => flushSoon(flush));
    }
    const head = encode(first);
    const parts = [head];
    let size = head.length;
    while (size < BATCH_BYTES) {
      const next = w.take();
      if (next === undefined) break;
      const bytes = encode(next);
      parts.push(bytes);
      size += bytes.length;
    }
    if (!stream.write(parts.length === 1 ? head : Buffer.concat(parts, size))) void whenWritable(stream).then(flush);
    else w.whenQueued(() => flushSoon(flush));
  };
  flush();
}

// Flushes due run in turns of WRITES_PER_TURN stream writes: the first turn
// in one microtask after the change's dispatch to all watchers, each next
// one in a setImmediate. Between turns Node sends what was written (so
// early watchers hear at once and the client reads while the server writes)
// and serves other I/O: the writer's own answer, heartbeats. Without turns,
// a change seen by 10,000 watchers held the event loop for 60 ms of writes
// and its Register answer waited behind all of them (docs/performance.md).
// A watcher is in the list at most once (whenQueued), and a turn takes
// everything it has queued, so turns change no watcher's order.
const WRITES_PER_TURN = 128;
let due: Array<(() => void) | undefined> = [];
let nextDue = 0;
let scheduled = false;

function flushSoon(f: () => void): void {
  due.push(f);
  if (!scheduled) {
    scheduled = true;
    queueMicrotask(runDue);
  }
}

function runDue(): void {
  const end = Math.min(due.length, nextDue + WRITES_PER_TURN);
  while (nextDue < end) {
    const f = due[nextDue]!;
    due[nextDue++] = undefined;
    f();
  }
  if (nextDue < due.length) {
    setImmediate(runDue);
    return;
  }
  due = [];
  nextDue = 0;
  scheduled = false;
}

/** readOne reads the call's one request message. */
async function readOne(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, maxBytes: number): Promise<WatchServicesRequest> {
  const reader = new FrameReader(requestEncoding(headers), maxBytes);
  const messages: Uint8Array[] = [];
  // Not for-await: its iterator destroys the stream (here the whole call) when the request ends.
  await eachChunk(stream, (chunk) => messages.push(...reader.push(chunk)));
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
// Fields are written by hand only around the cached Instance bytes: the
// snapshot's (here) and the event's (watchEventFrame).

const encodedEvents = new WeakMap<InstanceRecord, { item: WatchEventItem; bytes: Buffer }>();

const SNAPSHOT_FIELD = 1; // WatchServicesResponse.snapshot
const INSTANCES_FIELD = 1; // SnapshotChunk.instances

function encode(item: WatchItem): Buffer {
  switch (item.kind) {
    case "snapshot": {
      const parts = item.instances.map((r) => lengthDelimited(INSTANCES_FIELD, instanceBytes(r)));
      return envelope(lengthDelimited(SNAPSHOT_FIELD, Buffer.concat(parts)));
    }
    case "event": {
      const cached = encodedEvents.get(item.instance);
      if (cached !== undefined && sameEvent(cached.item, item)) return cached.bytes;
      const bytes = watchEventFrame(item);
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
