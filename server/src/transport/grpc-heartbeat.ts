import type http2 from "node:http2";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { HeartbeatRequestSchema, HeartbeatResponseSchema, type HeartbeatRequest } from "@maxine/sdk/gen/maxine/registry/v1/registry_pb";
import type { HeartbeatStream } from "../registry/leases.js";
import { answerBeats } from "./beats.js";
import type { Connection } from "./connections.js";
import type { FastPathDeps } from "./grpc-fast-path.js";
import { envelope, fail, finish, FrameReader, requestEncoding, respond, timeoutMs } from "./grpc-wire.js";

/**
 * serveGrpcHeartbeat serves one gRPC Heartbeat call (bidirectional): each
 * request is answered in order as it arrives, with no async-generator
 * pipeline per message, so one server holds tens of thousands of streams.
 * Liveness is bound to the stream exactly as on the connect-es route: when
 * the call ends without the instances being deregistered (client gone,
 * connection lost, error), closeStream starts their grace.
 */
export async function serveGrpcHeartbeat(deps: FastPathDeps, req: http2.Http2ServerRequest, res: http2.Http2ServerResponse): Promise<void> {
  const contentType = req.headers["content-type"]!;
  let reader: FrameReader;
  let conn: Connection;
  let hb: HeartbeatStream;
  try {
    reader = new FrameReader(requestEncoding(req), deps.maxMessageBytes);
    conn = deps.connections.of(req);
    conn.acquire("heartbeats");
    try {
      hb = deps.registry.openStream();
    } catch (err) {
      conn.release("heartbeats");
      throw err;
    }
  } catch (err) {
    fail(deps.log, "Heartbeat", res, contentType, err);
    return;
  }
  const stream = res.stream;
  if (stream.destroyed || stream.closed) {
    // The client gave up on the call before it was served (a server under load): nothing to answer.
    deps.registry.closeStream(hb);
    conn.release("heartbeats");
    return;
  }
  respond(res, contentType);
  let ended = false;
  let answering: Promise<void> = Promise.resolve();

  let offShutdown = (): void => {};
  const end = (err?: unknown): void => {
    if (ended) return;
    ended = true;
    clearTimeout(timer);
    offShutdown();
    req.off("data", onData);
    deps.registry.closeStream(hb);
    conn.release("heartbeats");
    if (err === undefined) finish(res);
    else fail(deps.log, "Heartbeat", res, contentType, err);
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
      const response = await answerBeats(deps.registry, hb, r);
      if (ended || stream.closed) return;
      if (!stream.write(envelope(toBinary(HeartbeatResponseSchema, response)))) {
        // A client that does not read its answers is not read either.
        req.pause();
        stream.once("drain", () => req.resume());
      }
    } catch (err) {
      end(err);
    }
  };

  const timeout = timeoutMs(req);
  const timer = timeout === undefined ? undefined : setTimeout(() => end(new ConnectError("the operation timed out", Code.DeadlineExceeded)), timeout);
  if (deps.shutdown.aborted) return end(deps.shutdown.reason);
  offShutdown = deps.shutdown.onShutdown(end);
  req.on("data", onData);
  req.once("end", () => {
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
