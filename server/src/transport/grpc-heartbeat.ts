import type http2 from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import type { HeartbeatStream } from "../registry/leases.js";
import type { BeatOutcome } from "../registry/registry.js";
import { decodeHeartbeatRequest, heartbeatFrame, type BeatsRequest } from "./heartbeat-wire.js";
import { applyBeats } from "./beats.js";
import type { Connection } from "./connections.js";
import type { FastPathDeps } from "./grpc-fast-path.js";
import { fail, finish, FrameReader, requestEncoding, respond, timeoutMs } from "./grpc-wire.js";

/**
 * serveGrpcHeartbeat serves one gRPC Heartbeat call (bidirectional): each
 * request is answered in order as it arrives, with no async-generator
 * pipeline per message, so one server holds tens of thousands of streams.
 * Liveness is bound to the stream exactly as on the connect-es route: when
 * the call ends without the instances being deregistered (client gone,
 * connection lost, error), closeStream starts their grace.
 */
export async function serveGrpcHeartbeat(deps: FastPathDeps, stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): Promise<void> {
  const contentType = headers["content-type"]!;
  let reader: FrameReader;
  let conn: Connection;
  let hb: HeartbeatStream;
  try {
    reader = new FrameReader(requestEncoding(headers), deps.maxMessageBytes);
    conn = deps.connections.ofStream(stream);
    conn.acquire("heartbeats");
    try {
      hb = deps.registry.openStream();
    } catch (err) {
      conn.release("heartbeats");
      throw err;
    }
  } catch (err) {
    fail(deps.log, "Heartbeat", stream, contentType, err);
    return;
  }
  if (stream.destroyed || stream.closed) {
    // The client gave up on the call before it was served (a server under load): nothing to answer.
    deps.registry.closeStream(hb);
    conn.release("heartbeats");
    return;
  }
  respond(stream, contentType);
  let ended = false;
  // Requests are answered in order: at once while none is waiting for the
  // store (the usual case: the answer leaves in the same network write as
  // the turn's other answers), else after the ones before it.
  let waiting = 0;
  let answering: Promise<void> = Promise.resolve();

  let offShutdown = (): void => {};
  const end = (err?: unknown): void => {
    if (ended) return;
    ended = true;
    clearTimeout(timer);
    offShutdown();
    stream.off("data", onData);
    deps.registry.closeStream(hb);
    conn.release("heartbeats");
    if (err === undefined) finish(stream);
    else fail(deps.log, "Heartbeat", stream, contentType, err);
  };
  const onData = (chunk: Buffer): void => {
    let requests: BeatsRequest[];
    try {
      requests = reader.push(chunk).map(decode);
    } catch (err) {
      end(err);
      return;
    }
    for (const r of requests) {
      if (waiting === 0) {
        const later = answer(r);
        if (later === undefined) continue;
        answering = later;
      } else {
        answering = answering.then(() => answer(r));
      }
      waiting++;
      answering = answering.finally(() => waiting--);
    }
  };
  /** answer answers r, or returns the promise of its answer when the store must be written first. */
  const answer = (r: BeatsRequest): Promise<void> | undefined => {
    if (ended) return;
    let outcomes: ReturnType<typeof applyBeats>;
    try {
      outcomes = applyBeats(deps.registry, hb, r);
    } catch (err) {
      end(err);
      return;
    }
    if (!(outcomes instanceof Promise)) return write(r, outcomes);
    return outcomes.then((o) => write(r, o), end);
  };
  const write = (r: BeatsRequest, outcomes: BeatOutcome[]): undefined => {
    if (ended || stream.closed) return;
    if (!stream.write(heartbeatFrame(r.sequence, outcomes))) {
      // A client that does not read its answers is not read either.
      stream.pause();
      stream.once("drain", () => stream.resume());
    }
  };

  const timeout = timeoutMs(headers);
  const timer = timeout === undefined ? undefined : setTimeout(() => end(new ConnectError("the operation timed out", Code.DeadlineExceeded)), timeout);
  if (deps.shutdown.aborted) return end(deps.shutdown.reason);
  offShutdown = deps.shutdown.onShutdown(end);
  stream.on("data", onData);
  stream.once("end", () => {
    if (reader.pending) end(new ConnectError("request: the stream ended inside a message", Code.InvalidArgument));
    else void answering.then(() => end());
  });
  stream.once("close", () => end());
}

function decode(bytes: Uint8Array): BeatsRequest {
  try {
    return decodeHeartbeatRequest(bytes);
  } catch (err) {
    throw new ConnectError(`request: not a valid HeartbeatRequest: ${(err as Error).message}`, Code.InvalidArgument);
  }
}
