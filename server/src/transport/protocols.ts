import { Code, ConnectError } from "@connectrpc/connect";
import { codeToHttpStatus, codeToString, errorToJson } from "@connectrpc/connect/protocol-connect";
import { setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import type http2 from "node:http2";
import type { Protocol, ResponseMetadata } from "../rpc/context.js";
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
  /** start sends the response headers of a successful call, with those its handler set (meta). */
  start(ex: Exchange, meta?: ResponseMetadata): void;
  /** answer writes a unary call's answer (bytes encoded, and enveloped when streamed) and its OK status. */
  answer(ex: Exchange, bytes: Uint8Array, meta?: ResponseMetadata): void;
  /** finish ends a call: OK when err is undefined, else with err's status (its details and metadata too); the handler's trailers go with it. */
  finish(ex: Exchange, err: ConnectError | undefined, meta?: ResponseMetadata): void;
}

type Head = http2.OutgoingHttpHeaders;

/** isEmpty reports whether h holds no header (or was never made). */
function isEmpty(h: Headers | undefined): boolean {
  return h === undefined || h.keys().next().done === true;
}

/** withHeaders adds the entries of h to head, names prefixed with prefix (Connect unary's `trailer-`). */
function withHeaders(head: Head, h: Headers | undefined, prefix = ""): Head {
  h?.forEach((v, k) => {
    const name = prefix + k;
    const prev = head[name];
    head[name] = prev === undefined ? v : `${String(prev)}, ${v}`;
  });
  return head;
}

/** answerStreamed writes one enveloped answer then the OK status (gRPC, gRPC-Web, Connect streams). */
function answerStreamed(this: Framing, ex: Exchange, frame: Uint8Array, meta?: ResponseMetadata): void {
  this.start(ex, meta);
  ex.write(frame);
  this.finish(ex, undefined, meta);
}

/** NO_TIMEOUT is the deadline of a call that sets none (one object for all). */
const NO_TIMEOUT: { ms?: number; error?: Error } = Object.freeze({});

const TIMEOUT_UNITS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000001 };

function grpcTimeout(ex: Exchange): { ms?: number; error?: Error } {
  const header = ex.header("grpc-timeout");
  if (header === undefined) return NO_TIMEOUT;
  const m = /^(\d{1,8})([HMSmun])$/.exec(header);
  if (m === null) return { error: new ConnectError(`protocol error: invalid grpc timeout value: ${header}`, Code.InvalidArgument) };
  return { ms: Math.max(1, Number(m[1]) * TIMEOUT_UNITS[m[2]!]!) };
}

function connectTimeout(ex: Exchange): { ms?: number; error?: Error } {
  const header = ex.header("connect-timeout-ms");
  if (header === undefined) return NO_TIMEOUT;
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

/**
 * statusHeaders are gRPC's trailers: the handler's trailers, the error's
 * metadata, grpc-status and grpc-message, and the error's details as
 * grpc-status-details-bin (a google.rpc.Status, as connect-es encodes it).
 */
/** OK_STATUS is the status of a call that ended well with no trailer of its handler's (one object for all calls). */
const OK_STATUS: Head = Object.freeze({ "grpc-status": "0" });

function statusHeaders(err: ConnectError | undefined, meta: ResponseMetadata | undefined): Head {
  const trailer = meta?.trailerIfSet;
  if (err === undefined) return isEmpty(trailer) ? OK_STATUS : { ...withHeaders({}, trailer), "grpc-status": "0" };
  const head = withHeaders({}, trailer);
  if (err.details.length > 0 || !isEmpty(err.metadata)) withHeaders(head, setTrailerStatus(new Headers(), err));
  head["grpc-status"] = String(err.code);
  head["grpc-message"] = grpcMessage(err.rawMessage);
  return head;
}

function grpcWebTrailer(status: Head): Buffer {
  let text = "";
  for (const [k, v] of Object.entries(status)) text += `${k}: ${String(v)}\r\n`;
  return envelope(Buffer.from(text), 0x80);
}

const OK_WEB_TRAILER = grpcWebTrailer(OK_STATUS);

/**
 * grpcLike is gRPC, or gRPC-Web (web): the same headers, statuses and
 * trailers-only rule; gRPC-Web carries the trailers in a last body frame
 * (flag 0x80) since browsers cannot read HTTP trailers.
 */
function grpcLike(protocol: "grpc" | "grpc-web", contentType: string, codec: Codec): Framing {
  const web = protocol === "grpc-web";
  /** endWith ends an answered call with status: HTTP/2 trailers, or gRPC-Web's trailer frame after last. */
  const endWith = (ex: Exchange, status: Head, last?: Uint8Array): void => {
    if (!web) return ex.end(last, status);
    const trailer = status === OK_STATUS ? OK_WEB_TRAILER : grpcWebTrailer(status);
    ex.end(last === undefined ? trailer : Buffer.concat([last, trailer]));
  };
  // the response headers of a call whose handler set none: one frozen object for every such call
  const okHead: Head = Object.freeze({ "content-type": contentType, "grpc-accept-encoding": "gzip" });
  return {
    protocol,
    codec,
    streamed: true,
    contentType,
    requestEncoding: (ex) => encodingOf(ex.header("grpc-encoding"), "grpc-encoding"),
    timeout: grpcTimeout,
    start(ex, meta) {
      ex.respond(200, meta?.headerIfSet === undefined ? okHead : withHeaders({ ...okHead }, meta.headerIfSet), web ? "body" : "trailers");
    },
    answer(ex, frame, meta) {
      // the answer and its status leave together: one write
      this.start(ex, meta);
      endWith(ex, statusHeaders(undefined, meta), frame);
    },
    finish(ex, err, meta) {
      // Trailers-only (the status as HTTP headers) while nothing was answered
      // and the handler set no headers, as connect-go does (a client reads a
      // trailers-only response's headers as trailers).
      if (!ex.headersSent && isEmpty(meta?.headerIfSet)) {
        ex.respond(200, { "content-type": contentType, ...statusHeaders(err, meta) }, "end");
        return;
      }
      if (!ex.headersSent) this.start(ex, meta);
      endWith(ex, statusHeaders(err, meta));
    },
  };
}

/** CODE_NAMES are Connect's names of the codes ("not_found"), made once: connect-es's codeToString makes the name on every call. */
const CODE_NAMES: ReadonlyMap<Code, string> = new Map(
  Object.values(Code)
    .filter((c): c is Code => typeof c === "number")
    .map((c) => [c, codeToString(c)]),
);

/** errorJson is Connect's JSON form of err (connect-es's errorToJson; the common error, without details, with the code's name made once). */
export function errorJson(err: ConnectError): unknown {
  const code = CODE_NAMES.get(err.code);
  if (code === undefined || err.details.length > 0) return errorToJson(err, undefined);
  return err.rawMessage.length > 0 ? { code, message: err.rawMessage } : { code };
}

const END_OK = Buffer.from("{}");

/** endStream is Connect's end-of-stream message: the error, and the handler's trailers and the error's metadata as metadata. */
function endStream(err: ConnectError | undefined, meta: ResponseMetadata | undefined): Buffer {
  const trailer = meta?.trailerIfSet;
  if (err === undefined && isEmpty(trailer)) return END_OK;
  const end: { error?: unknown; metadata?: Record<string, string[]> } = {};
  if (err !== undefined) end.error = errorJson(err);
  const metadata: Record<string, string[]> = {};
  let any = false;
  const add = (v: string, k: string): void => {
    (metadata[k] ??= []).push(v);
    any = true;
  };
  trailer?.forEach(add);
  err?.metadata.forEach(add);
  if (any) end.metadata = metadata;
  return Buffer.from(JSON.stringify(end));
}

function connectStream(contentType: string, codec: Codec): Framing {
  return {
    protocol: "connect",
    codec,
    streamed: true,
    contentType,
    requestEncoding: (ex) => encodingOf(ex.header("connect-content-encoding"), "connect-content-encoding"),
    timeout: connectTimeout,
    start(ex, meta) {
      const head: Head = { "content-type": contentType, "connect-accept-encoding": "gzip" };
      ex.respond(200, meta?.headerIfSet === undefined ? head : withHeaders(head, meta.headerIfSet), "body");
    },
    answer: answerStreamed,
    finish(ex, err, meta) {
      if (!ex.headersSent) this.start(ex, meta);
      ex.end(envelope(endStream(err, meta), 0x02));
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
    answer(ex, bytes, meta) {
      const head: Head = { "content-type": contentType, "content-length": bytes.length };
      if (meta !== undefined) withHeaders(withHeaders(head, meta.headerIfSet), meta.trailerIfSet, "trailer-");
      ex.respond(200, head, "body");
      ex.end(bytes);
    },
    finish(ex, err, meta) {
      if (err === undefined) return;
      const body = Buffer.from(JSON.stringify(errorJson(err)));
      const head: Head = {};
      // connect-es's order: the handler's headers, the error's metadata, the trailers prefixed.
      if (meta !== undefined) withHeaders(head, meta.headerIfSet);
      if (!isEmpty(err.metadata)) withHeaders(head, err.metadata);
      if (meta !== undefined) withHeaders(head, meta.trailerIfSet, "trailer-");
      head["content-type"] = "application/json";
      head["content-length"] = body.length;
      ex.respond(codeToHttpStatus(err.code), head, "body");
      ex.end(body);
    },
  };
}

const FRAMINGS = new Map<string, Framing>([
  ["application/grpc", grpcLike("grpc", "application/grpc", protoCodec)],
  ["application/grpc+proto", grpcLike("grpc", "application/grpc+proto", protoCodec)],
  ["application/grpc+json", grpcLike("grpc", "application/grpc+json", jsonCodec)],
  ["application/grpc-web", grpcLike("grpc-web", "application/grpc-web", protoCodec)],
  ["application/grpc-web+proto", grpcLike("grpc-web", "application/grpc-web+proto", protoCodec)],
  ["application/grpc-web+json", grpcLike("grpc-web", "application/grpc-web+json", jsonCodec)],
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
