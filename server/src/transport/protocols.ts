import { Code, ConnectError } from "@connectrpc/connect";
import { codeToHttpStatus, errorToJson } from "@connectrpc/connect/protocol-connect";
import type { Protocol } from "../rpc/context.js";
import { jsonCodec, protoCodec, type Codec } from "./codec.js";
import { envelope } from "./envelope.js";
import type { Exchange } from "./exchange.js";

// The three protocols as framing only: how a call's deadline and encoding
// are read from the request, and how its answers and its status are
// written. What a call does is the same for all of them (serve.ts, rpc/).

/** Framing is one protocol with one codec, as negotiated from a request's content type. */
export interface Framing {
  readonly protocol: Protocol;
  readonly codec: Codec;
  /** streamed: requests and answers are enveloped messages (gRPC, gRPC-Web, Connect streams); else one plain body (Connect unary). */
  readonly streamed: boolean;
  /** contentType is the response's content type. */
  readonly contentType: string;
  /** requestEncoding is the request's compression (identity or gzip), or throws UNIMPLEMENTED. */
  requestEncoding(ex: Exchange): "identity" | "gzip";
  /** timeout reads the client's deadline header. */
  timeout(ex: Exchange): { ms?: number; error?: Error };
  /** start sends the response headers of a successful call. */
  start(ex: Exchange): void;
  /** finish ends a call: OK when err is undefined, else with err's status. */
  finish(ex: Exchange, err: ConnectError | undefined): void;
}

const TIMEOUT_UNITS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000001 };

function grpcTimeout(ex: Exchange): { ms?: number; error?: Error } {
  const header = ex.header("grpc-timeout");
  if (header === undefined) return {};
  const m = /^(\d{1,8})([HMSmun])$/.exec(header);
  if (m === null) return { error: new ConnectError(`protocol error: invalid grpc timeout value: ${header}`, Code.InvalidArgument) };
  return { ms: Math.max(1, Number(m[1]) * TIMEOUT_UNITS[m[2]!]!) };
}

function connectTimeout(ex: Exchange): { ms?: number; error?: Error } {
  const header = ex.header("connect-timeout-ms");
  if (header === undefined) return {};
  if (!/^\d{1,10}$/.test(header)) return { error: new ConnectError(`protocol error: invalid connect timeout value: ${header}`, Code.InvalidArgument) };
  return { ms: Math.max(1, Number(header)) };
}

function encodingOf(value: string | undefined, header: string): "identity" | "gzip" {
  const encoding = value ?? "identity";
  if (encoding !== "identity" && encoding !== "gzip") {
    throw new ConnectError(`${header} "${encoding}" is not supported (supported: gzip, identity)`, Code.Unimplemented);
  }
  return encoding;
}

/**
 * grpcMessage percent-encodes a status message as the gRPC spec requires
 * and no more: bytes outside printable ASCII, and '%'. Clients show ':' ','
 * and '/' as written (encodeURIComponent's encoding was shown as %3A by
 * grpc-js).
 */
export function grpcMessage(message: string): string {
  if (/^[\x20-\x24\x26-\x7e]*$/.test(message)) return message;
  let out = "";
  for (const b of Buffer.from(message, "utf8")) {
    out += b < 0x20 || b > 0x7e || b === 0x25 ? `%${b.toString(16).toUpperCase().padStart(2, "0")}` : String.fromCharCode(b);
  }
  return out;
}

function statusHeaders(err: ConnectError | undefined): Record<string, string> {
  return err === undefined ? { "grpc-status": "0" } : { "grpc-status": String(err.code), "grpc-message": grpcMessage(err.rawMessage) };
}

function grpc(contentType: string, codec: Codec): Framing {
  return {
    protocol: "grpc",
    codec,
    streamed: true,
    contentType,
    requestEncoding: (ex) => encodingOf(ex.header("grpc-encoding"), "grpc-encoding"),
    timeout: grpcTimeout,
    start(ex) {
      ex.respond(200, { "content-type": contentType, "grpc-accept-encoding": "gzip" }, "trailers");
    },
    finish(ex, err) {
      // Trailers-only when nothing was answered yet.
      if (!ex.headersSent) ex.respond(200, { "content-type": contentType, ...statusHeaders(err) }, "end");
      else ex.end(undefined, statusHeaders(err));
    },
  };
}

function grpcWebTrailer(err: ConnectError | undefined): Buffer {
  const text = Object.entries(statusHeaders(err))
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join("");
  return envelope(Buffer.from(text), 0x80);
}

function grpcWeb(contentType: string, codec: Codec): Framing {
  return {
    protocol: "grpc-web",
    codec,
    streamed: true,
    contentType,
    requestEncoding: (ex) => encodingOf(ex.header("grpc-encoding"), "grpc-encoding"),
    timeout: grpcTimeout,
    start(ex) {
      ex.respond(200, { "content-type": contentType, "grpc-accept-encoding": "gzip" }, "body");
    },
    finish(ex, err) {
      if (!ex.headersSent) ex.respond(200, { "content-type": contentType, ...statusHeaders(err) }, "end");
      else ex.end(grpcWebTrailer(err));
    },
  };
}

function connectStream(contentType: string, codec: Codec): Framing {
  return {
    protocol: "connect",
    codec,
    streamed: true,
    contentType,
    requestEncoding: (ex) => encodingOf(ex.header("connect-content-encoding"), "connect-content-encoding"),
    timeout: connectTimeout,
    start(ex) {
      ex.respond(200, { "content-type": contentType, "connect-accept-encoding": "gzip" }, "body");
    },
    finish(ex, err) {
      this.start(ex);
      const end = err === undefined ? {} : { error: errorToJson(err, undefined) };
      ex.end(envelope(Buffer.from(JSON.stringify(end)), 0x02));
    },
  };
}

function connectUnary(contentType: string, codec: Codec): Framing {
  return {
    protocol: "connect",
    codec,
    streamed: false,
    contentType,
    requestEncoding: (ex) => encodingOf(ex.header("content-encoding"), "content-encoding"),
    timeout: connectTimeout,
    start() {},
    finish(ex, err) {
      if (err === undefined) return;
      const body = Buffer.from(JSON.stringify(errorToJson(err, undefined)));
      ex.respond(codeToHttpStatus(err.code), { "content-type": "application/json", "content-length": body.length }, "body");
      ex.end(body);
    },
  };
}

const FRAMINGS = new Map<string, Framing>([
  ["application/grpc", grpc("application/grpc", protoCodec)],
  ["application/grpc+proto", grpc("application/grpc+proto", protoCodec)],
  ["application/grpc+json", grpc("application/grpc+json", jsonCodec)],
  ["application/grpc-web", grpcWeb("application/grpc-web", protoCodec)],
  ["application/grpc-web+proto", grpcWeb("application/grpc-web+proto", protoCodec)],
  ["application/grpc-web+json", grpcWeb("application/grpc-web+json", jsonCodec)],
  ["application/connect+proto", connectStream("application/connect+proto", protoCodec)],
  ["application/connect+json", connectStream("application/connect+json", jsonCodec)],
  ["application/proto", connectUnary("application/proto", protoCodec)],
  ["application/json", connectUnary("application/json", jsonCodec)],
  ["application/json; charset=utf-8", connectUnary("application/json", jsonCodec)],
]);

/**
 * framingOf negotiates a POST request's protocol and codec from its content
 * type; undefined for anything this framing does not serve (GET requests,
 * gRPC-Web text, other types), which connect-es serves instead. gRPC needs
 * HTTP/2 (trailers).
 */
export function framingOf(contentType: string | undefined, http2: boolean): Framing | undefined {
  if (contentType === undefined) return undefined;
  const f = FRAMINGS.get(contentType) ?? FRAMINGS.get(contentType.toLowerCase().replace(/\s+/g, " "));
  if (f === undefined || (f.protocol === "grpc" && !http2)) return undefined;
  return f;
}
