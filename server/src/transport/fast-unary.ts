import type http from "node:http";
import type http2 from "node:http2";
import { gunzipSync } from "node:zlib";
import { fromBinary, fromJsonString, toBinary, toJsonString } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { codeToHttpStatus, errorToJson } from "@connectrpc/connect/protocol-connect";
import { DiscoverRequestSchema, DiscoverResponseSchema, type DiscoverRequest } from "@maxine/sdk/gen/maxine/registry/v1/registry_pb";
import { RegistryError } from "../registry/errors.js";
import { answerDiscover } from "./discover.js";
import { toConnectError } from "./errors.js";
import type { FastPathDeps } from "./grpc-fast-path.js";
import { envelope, fail, finish, FrameReader, requestEncoding, respond } from "./grpc-wire.js";

// Discover is the registry's hot read: callers that do not keep a watcher
// ask it per request. connect-es spends most of a unary call outside the
// handler (Web-API request objects, an abort controller and a DOMException
// per call, async-iterable plumbing); this path parses, answers and writes
// directly, for the Connect protocol (JSON or protobuf, HTTP/1.1 or
// HTTP/2) and gRPC (protobuf, HTTP/2). It answers exactly like the
// connect-es route: answerDiscover is shared, errors keep their codes and
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

/** serveConnectDiscover answers one Connect unary Discover call. */
export async function serveConnectDiscover(deps: FastPathDeps, req: Req, res: Res): Promise<void> {
  const json = req.headers["content-type"] !== "application/proto";
  try {
    const body = await readBody(req, deps.maxMessageBytes, req.headers["content-encoding"] === "gzip");
    let request: DiscoverRequest;
    try {
      request = json
        ? fromJsonString(DiscoverRequestSchema, body.length === 0 ? "{}" : body.toString("utf8"), { ignoreUnknownFields: true })
        : fromBinary(DiscoverRequestSchema, body);
    } catch (err) {
      throw new ConnectError(`cannot decode message maxine.registry.v1.DiscoverRequest from ${json ? "JSON" : "binary"}: ${(err as Error).message}`, Code.InvalidArgument);
    }
    const answer = answerDiscover(deps.registry, request);
    const out = json ? Buffer.from(toJsonString(DiscoverResponseSchema, answer)) : Buffer.from(toBinary(DiscoverResponseSchema, answer));
    (res as http.ServerResponse).writeHead(200, { "content-type": json ? "application/json" : "application/proto", "content-length": out.length });
    res.end(out);
  } catch (err) {
    if (!(err instanceof RegistryError) && !(err instanceof ConnectError)) deps.log.error({ err, procedure: "Discover" }, "unexpected error");
    const ce = toConnectError(err);
    const out = Buffer.from(JSON.stringify(errorToJson(ce, undefined)));
    (res as http.ServerResponse).writeHead(codeToHttpStatus(ce.code), { "content-type": "application/json", "content-length": out.length });
    res.end(out);
  }
}

/** serveGrpcDiscover answers one gRPC unary Discover call. */
export async function serveGrpcDiscover(deps: FastPathDeps, req: http2.Http2ServerRequest, res: http2.Http2ServerResponse): Promise<void> {
  const contentType = req.headers["content-type"]!;
  try {
    const reader = new FrameReader(requestEncoding(req), deps.maxMessageBytes);
    const messages: Uint8Array[] = [];
    for await (const chunk of req as AsyncIterable<Buffer>) messages.push(...reader.push(chunk));
    if (messages.length !== 1 || reader.pending) {
      throw new ConnectError(`request: expected one complete DiscoverRequest message, got ${messages.length}`, Code.InvalidArgument);
    }
    let request: DiscoverRequest;
    try {
      request = fromBinary(DiscoverRequestSchema, messages[0]!);
    } catch (err) {
      throw new ConnectError(`request: not a valid DiscoverRequest: ${(err as Error).message}`, Code.InvalidArgument);
    }
    const out = envelope(toBinary(DiscoverResponseSchema, answerDiscover(deps.registry, request)));
    respond(res, contentType);
    res.stream.write(out);
    finish(res);
  } catch (err) {
    fail(deps.log, "Discover", res, contentType, err);
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
