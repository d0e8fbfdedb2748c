import type http2 from "node:http2";
import { gunzipSync } from "node:zlib";
import { Code, ConnectError } from "@connectrpc/connect";
import { RegistryError } from "../domain/errors.js";
import type { Logger } from "../domain/logger.js";
import { toConnectError } from "./errors.js";

// The gRPC wire protocol over HTTP/2, for the fast paths (grpc-watch.ts,
// grpc-heartbeat.ts, fast-unary.ts), which serve Node's HTTP/2 streams
// directly: length-prefixed messages, request decompression, deadlines and
// status trailers. Everything else is served by connect-es.

const GRPC_PROTO = new Set(["application/grpc", "application/grpc+proto"]);
const TIMEOUT_UNITS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000001 };

/** isGrpcProto reports whether a request with these headers is a gRPC call with protobuf messages. */
export function isGrpcProto(headers: http2.IncomingHttpHeaders): boolean {
  return GRPC_PROTO.has(headers["content-type"] ?? "");
}

/** requestEncoding returns the request's grpc-encoding, or throws UNIMPLEMENTED for one this server cannot read. */
export function requestEncoding(headers: http2.IncomingHttpHeaders): "identity" | "gzip" {
  const encoding = (headers["grpc-encoding"] as string | undefined) ?? "identity";
  if (encoding !== "identity" && encoding !== "gzip") {
    throw new ConnectError(`grpc-encoding "${encoding}" is not supported (supported: gzip, identity)`, Code.Unimplemented);
  }
  return encoding;
}

/** timeoutMs parses a grpc-timeout header; undefined when absent or malformed. */
export function timeoutMs(headers: http2.IncomingHttpHeaders): number | undefined {
  const header = headers["grpc-timeout"] as string | undefined;
  if (header === undefined) return undefined;
  const m = /^(\d{1,8})([HMSmun])$/.exec(header);
  return m === null ? undefined : Math.max(1, Number(m[1]) * TIMEOUT_UNITS[m[2]!]!);
}

/**
 * FrameReader splits a request body into gRPC messages as chunks arrive,
 * enforcing the message size limit and decompressing gzip messages.
 */
export class FrameReader {
  private buf: Buffer = Buffer.alloc(0);

  constructor(
    private readonly encoding: "identity" | "gzip",
    private readonly maxBytes: number,
  ) {}

  /** push adds a chunk and returns the messages it completed. */
  push(chunk: Buffer): Uint8Array[] {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    const out: Uint8Array[] = [];
    while (this.buf.length >= 5) {
      const length = this.buf.readUInt32BE(1);
      if (length > this.maxBytes) {
        throw new ConnectError(`request: message of ${length} bytes exceeds the limit of ${this.maxBytes} bytes (MAXINE_MAX_MESSAGE_BYTES)`, Code.ResourceExhausted);
      }
      if (this.buf.length < 5 + length) break;
      const compressed = (this.buf[0]! & 1) === 1;
      const payload = this.buf.subarray(5, 5 + length);
      this.buf = this.buf.subarray(5 + length);
      out.push(compressed ? this.inflate(payload) : payload);
    }
    return out;
  }

  /** pending reports whether a partial message is buffered (a body that ends here was cut short). */
  get pending(): boolean {
    return this.buf.length > 0;
  }

  private inflate(payload: Uint8Array): Uint8Array {
    if (this.encoding !== "gzip") throw new ConnectError("protocol error: compressed message without grpc-encoding", Code.Internal);
    try {
      return gunzipSync(payload, { maxOutputLength: this.maxBytes });
    } catch {
      throw new ConnectError(`request: gzip message invalid or larger than ${this.maxBytes} bytes (MAXINE_MAX_MESSAGE_BYTES)`, Code.ResourceExhausted);
    }
  }
}

/** envelope frames one encoded message. */
export function envelope(message: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(5 + message.length);
  out[0] = 0;
  out.writeUInt32BE(message.length, 1);
  out.set(message, 5);
  return out;
}

/** respond sends the response headers of a call whose status will follow in trailers. */
export function respond(stream: http2.ServerHttp2Stream, contentType: string): void {
  stream.respond({ ":status": 200, "content-type": contentType, "grpc-accept-encoding": "gzip" }, { waitForTrailers: true });
}

const OK: http2.OutgoingHttpHeaders = { "grpc-status": "0" };

/**
 * finish ends a call that has responded (respond), with last as its final
 * data when given and trailers as its status (OK by default). HTTP/2 asks
 * for the trailers once the last data frame is queued (wantTrailers).
 */
export function finish(stream: http2.ServerHttp2Stream, trailers: http2.OutgoingHttpHeaders = OK, last?: Uint8Array): void {
  if (stream.closed || stream.writableEnded) return;
  stream.once("wantTrailers", () => {
    if (!stream.closed) stream.sendTrailers(trailers);
  });
  if (last === undefined) stream.end();
  else stream.end(last);
}

/**
 * fail ends a call with err's gRPC status (the core's reasons mapped by
 * errors.ts, like connect-es's routes): trailers-only when nothing was
 * responded yet, else in the trailers. Unexpected errors are logged, and
 * reach the client as a retryable UNAVAILABLE with no detail.
 */
export function fail(log: Logger, procedure: string, stream: http2.ServerHttp2Stream, contentType: string, err: unknown): void {
  if (!(err instanceof RegistryError) && !(err instanceof ConnectError)) log.error({ err, procedure }, "unexpected error");
  if (stream.closed || stream.writableEnded) return;
  const ce = toConnectError(err);
  const status = { "grpc-status": String(ce.code), "grpc-message": encodeURIComponent(ce.rawMessage) };
  if (stream.headersSent) finish(stream, status);
  else stream.respond({ ":status": 200, "content-type": contentType, ...status }, { endStream: true });
}

/** whenWritable resolves once stream can take more data (drain) or is gone (close). */
export function whenWritable(stream: http2.ServerHttp2Stream): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      stream.off("drain", done);
      stream.off("close", done);
      resolve();
    };
    stream.on("drain", done);
    stream.on("close", done);
  });
}
