import type http from "node:http";
import type http2 from "node:http2";
import { gunzipSync } from "node:zlib";
import { fromBinary, fromJsonString, toBinary, toJsonString, type Message } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { codeToHttpStatus, errorToJson } from "@connectrpc/connect/protocol-connect";
import { RegistryError } from "../registry/errors.js";
import type { UnaryMethod } from "./answers.js";
import { toConnectError } from "./errors.js";
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
    let request: Message;
    try {
      request = json
        ? fromJsonString(m.input, body.length === 0 ? "{}" : body.toString("utf8"), { ignoreUnknownFields: true })
        : fromBinary(m.input, body);
    } catch (err) {
      throw new ConnectError(`cannot decode message ${m.input.typeName} from ${json ? "JSON" : "binary"}: ${(err as Error).message}`, Code.InvalidArgument);
    }
    const answer = await m.answer(deps.registry, request);
    const out = json ? Buffer.from(toJsonString(m.output, answer)) : Buffer.from(toBinary(m.output, answer));
    (res as http.ServerResponse).writeHead(200, { "content-type": json ? "application/json" : "application/proto", "content-length": out.length });
    res.end(out);
  } catch (err) {
    if (!(err instanceof RegistryError) && !(err instanceof ConnectError)) deps.log.error({ err, procedure: m.name }, "unexpected error");
    const ce = toConnectError(err);
    const out = Buffer.from(JSON.stringify(errorToJson(ce, undefined)));
    (res as http.ServerResponse).writeHead(codeToHttpStatus(ce.code), { "content-type": "application/json", "content-length": out.length });
    res.end(out);
  }
}

/** serveGrpcUnary answers one gRPC unary call of m. */
export async function serveGrpcUnary(deps: FastPathDeps, m: UnaryMethod, req: http2.Http2ServerRequest, res: http2.Http2ServerResponse): Promise<void> {
  const contentType = req.headers["content-type"]!;
  try {
    const reader = new FrameReader(requestEncoding(req), deps.maxMessageBytes);
    const messages: Uint8Array[] = [];
    for await (const chunk of req as AsyncIterable<Buffer>) messages.push(...reader.push(chunk));
    if (messages.length !== 1 || reader.pending) {
      throw new ConnectError(`request: expected one complete ${m.input.name} message, got ${messages.length}`, Code.InvalidArgument);
    }
    let request: Message;
    try {
      request = fromBinary(m.input, messages[0]!);
    } catch (err) {
      throw new ConnectError(`request: not a valid ${m.input.name}: ${(err as Error).message}`, Code.InvalidArgument);
    }
    const out = envelope(toBinary(m.output, await m.answer(deps.registry, request)));
    respond(res, contentType);
    res.stream.write(out);
    finish(res);
  } catch (err) {
    fail(deps.log, m.name, res, contentType, err);
  }
}

async function readBody(req: Req, maxBytes: number, gzip: boolean): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes) {
      throw new ConnectError(`message size is larger than configured readMaxBytes ${maxBytes} (MAXINE_MAX_MESSAGE_BYTES)`, Code.ResourceExhausted);
    }
    chunks.push(chunk);
  }
  const body = Buffer.concat(chunks, size);
  if (!gzip) return body;
  try {
    return gunzipSync(body, { maxOutputLength: maxBytes });
  } catch {
    throw new ConnectError(`request: gzip body invalid or larger than ${maxBytes} bytes (MAXINE_MAX_MESSAGE_BYTES)`, Code.ResourceExhausted);
  }
}
