import type http2 from "node:http2";
import { fromBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { HeartbeatRequestSchema, type HeartbeatRequest } from "@maxine/sdk/gen/maxine/registry/v1/registry_pb";
import type { HeartbeatStream } from "../registry/leases.js";
import { heartbeatFrame } from "./beat-acks.js";
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
    let requests: HeartbeatRequest[];
    try {
      requests = reader.push(chunk).map(decode);
    } catch (err) {
      end(err);
      return;
    }
    for (const r of requests) answering = answering.then(() => answer(r));
  };
  const answer = async (r: HeartbeatRequest): Promise<void> => {
    if (ended) return;
    try {
      const outcomes = await applyBeats(deps.registry, hb, r);
      if (ended || stream.closed) return;
      if (!stream.write(heartbeatFrame(r.sequence, outcomes))) {
        // A client that does not read its answers is not read either.
        stream.pause();
        stream.once("drain", () => stream.resume());
      }
    } catch (err) {
      end(err);
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

function decode(bytes: Uint8Array): HeartbeatRequest {
  try {
    return fromBinary(HeartbeatRequestSchema, bytes);
  } catch (err) {
    throw new ConnectError(`request: not a valid HeartbeatRequest: ${(err as Error).message}`, Code.InvalidArgument);
  }
}
