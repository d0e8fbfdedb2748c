import type http from "node:http";
import http2 from "node:http2";
import { gunzipSync } from "node:zlib";
import { fromBinary, fromJsonString, toBinary, toJsonString, type Message } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { codeToHttpStatus, errorToJson } from "@connectrpc/connect/protocol-connect";
import { RegistryError } from "../domain/errors.js";
import type { UnaryMethod } from "./answers.js";
import { toConnectError } from "./errors.js";
import { eachChunk } from "./body.js";
import type { FastPathDeps } from "./grpc-fast-path.js";
import { envelope, fail, finish, FrameReader, requestEncoding, respond } from "./grpc-wire.js";

// The unary RPCs are the registry's hot calls (Discover from callers that
// keep no watcher, Register from curl-style clients and fleets coming up).
// connect-es spends most of a unary call outside the handler (Web-API
// request objects, an abort controller and a DOMException per call,
// async-iterable plumbing); this path parses, answers and writes directly,
// for the Connect protocol (JSON or protobuf, HTTP/1.1 or HTTP/2) and gRPC
// (protobuf, HTTP/2). It answers exactly like the connect-es routes: the
// answer functions (answers.ts) are shared, errors keep their codes and
// messages, and Connect errors are written with connect-es's own encoder.
// GET requests, compressed responses and other media types go to connect-es.

type Req = http.IncomingMessage | http2.Http2ServerRequest;
type Res = http.ServerResponse | http2.Http2ServerResponse;

/** isConnectUnary reports whether req is a Connect unary POST this path serves (JSON or protobuf, identity or gzip body). */
export function isConnectUnary(req: Req): boolean {
  const ct = req.headers["content-type"];
  if (ct !== "application/json" && ct !== "application/json; charset=utf-8" && ct !== "application/proto") return false;
  const enc = req.headers["content-encoding"];
  return enc === undefined || enc === "identity" || enc === "gzip";
}

/** serveConnectUnary answers one Connect unary call of m. */
export async function serveConnectUnary(deps: FastPathDeps, m: UnaryMethod, req: Req, res: Res): Promise<void> {
  const json = req.headers["content-type"] !== "application/proto";
  try {
    const body = await readBody(req, deps.maxMessageBytes, req.headers["content-encoding"] === "gzip");
    const request = decode(m, json ? "json" : "binary", body, (err) => {
      throw new ConnectError(`cannot decode message ${m.input.typeName} from ${json ? "JSON" : "binary"}: ${err.message}`, Code.InvalidArgument);
    });
    const answered = await answer(deps, m, request, json ? "json" : "binary");
    const out = typeof answered === "string" ? Buffer.from(answered) : answered;
    (res as http.ServerResponse).writeHead(200, { "content-type": json ? "application/json" : "application/proto", "content-length": out.length });
    res.end(out);
  } catch (err) {
    if (!(err instanceof RegistryError) && !(err instanceof ConnectError)) deps.log.error({ err, procedure: m.name }, "unexpected error");
    const ce = toConnectError(err);
    const out = Buffer.from(JSON.stringify(errorToJson(ce, undefined)));
    // A body not read to its end (too large) is cut off once the answer is out.
    const unreadH1 = !req.complete && !("stream" in req);
    (res as http.ServerResponse).writeHead(codeToHttpStatus(ce.code), {
      "content-type": "application/json",
      "content-length": out.length,
      ...(unreadH1 ? { connection: "close" } : {}),
    });
    res.end(out);
    if (!req.complete && "stream" in req) closeUnread(req.stream);
  }
}

/** serveGrpcUnary answers one gRPC unary call of m, served from its HTTP/2 stream. */
export async function serveGrpcUnary(deps: FastPathDeps, m: UnaryMethod, stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): Promise<void> {
  const contentType = headers["content-type"]!;
  try {
    const reader = new FrameReader(requestEncoding(headers), deps.maxMessageBytes);
    const messages: Uint8Array[] = [];
    await eachChunk(stream, (chunk) => messages.push(...reader.push(chunk)));
    if (messages.length !== 1 || reader.pending) {
      throw new ConnectError(`request: expected one complete ${m.input.name} message, got ${messages.length}`, Code.InvalidArgument);
    }
    const request = decode(m, "binary", messages[0]!, (err) => {
      throw new ConnectError(`request: not a valid ${m.input.name}: ${err.message}`, Code.InvalidArgument);
    });
    const out = envelope((await answer(deps, m, request, "binary")) as Uint8Array);
    if (stream.closed) return; // the client gave up on the call
    respond(stream, contentType);
    finish(stream, undefined, out);
  } catch (err) {
    fail(deps.log, m.name, stream, contentType, err);
    if (!stream.readableEnded) closeUnread(stream);
  }
}

/**
 * closeUnread ends an HTTP/2 stream whose request body was not read to its
 * end, after the answer: RST_STREAM with NO_ERROR, which tells the client to
 * stop sending (RFC 9113, 8.1); Node sends the answer's frames first.
 */
function closeUnread(stream: http2.ServerHttp2Stream): void {
  if (!stream.closed) stream.close(http2.constants.NGHTTP2_NO_ERROR);
}

/** answer answers request, encoded as format: from cached encodings when m can, else by serialising m's response. */
async function answer(deps: FastPathDeps, m: UnaryMethod, request: Message, format: "binary" | "json"): Promise<Uint8Array | string> {
  if (m.encode !== undefined) return m.encode(deps.registry, request, format);
  const response = await m.answer(deps.registry, request);
  return format === "json" ? toJsonString(m.output, response) : toBinary(m.output, response);
}

// Decoded requests. Callers of the read RPCs repeat the same request (one
// service, one filter), so up to MAX_CACHED small bodies per method keep
// their decoded message; a read RPC only reads its request, so sharing it is
// safe. The oldest entry makes room for a new one.
const MAX_CACHED = 512;
const MAX_CACHED_BODY = 1024;
const decoded = new Map<UnaryMethod, Map<string, Message>>();

/** decode parses body as m's request; onError turns a parse failure into the call's error. */
function decode(m: UnaryMethod, format: "binary" | "json", body: Uint8Array, onError: (err: Error) => never): Message {
  const text = format === "json" ? Buffer.from(body.buffer, body.byteOffset, body.length).toString("utf8") : undefined;
  const key = m.cacheRequests === true && body.length <= MAX_CACHED_BODY ? (text ?? Buffer.from(body.buffer, body.byteOffset, body.length).toString("latin1")) : undefined;
  let cache = decoded.get(m);
  const hit = key === undefined ? undefined : cache?.get(key);
  if (hit !== undefined) return hit;
  let request: Message;
  try {
    request = text !== undefined ? fromJsonString(m.input, text.length === 0 ? "{}" : text, { ignoreUnknownFields: true }) : fromBinary(m.input, body);
  } catch (err) {
    return onError(err as Error);
  }
  if (key !== undefined) {
    if (cache === undefined) decoded.set(m, (cache = new Map()));
    if (cache.size >= MAX_CACHED) cache.delete(cache.keys().next().value!);
    cache.set(key, request);
  }
  return request;
}

/** readBody collects a request body of at most maxBytes, gunzipped when gzip. */
async function readBody(req: Req, maxBytes: number, gzip: boolean): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  await eachChunk(req, (chunk) => {
    size += chunk.length;
    if (size > maxBytes) {
      throw new ConnectError(`message size is larger than configured readMaxBytes ${maxBytes} (MAXINE_MAX_MESSAGE_BYTES)`, Code.ResourceExhausted);
    }
    chunks.push(chunk);
  });
  const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
  if (!gzip) return body;
  try {
    return gunzipSync(body, { maxOutputLength: maxBytes });
  } catch {
    throw new ConnectError(`request: gzip body invalid or larger than ${maxBytes} bytes (MAXINE_MAX_MESSAGE_BYTES)`, Code.ResourceExhausted);
  }
}
