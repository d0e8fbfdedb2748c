import type http from "node:http";
import http2 from "node:http2";
import type { Readable } from "node:stream";
import { Code, ConnectError } from "@connectrpc/connect";
import type { CallSignal } from "../rpc/context.js";
import { LINGER_MS } from "./unread-body.js";

/**
 * Exchange is one HTTP request and its response as the protocols see it,
 * over an HTTP/2 stream served directly (no compat objects) or an HTTP/1.1
 * (or HTTP/2 compat) request and response. The protocol code (gRPC,
 * gRPC-Web, Connect) is written once against it. Both are classes: a call
 * allocates one object, not a closure per method.
 */
export interface Exchange {
  /** header reads a request header (lower-case name). */
  header(name: string): string | undefined;
  /** headers lists every request header but HTTP/2's pseudo-headers and te (which only says the client takes trailers). */
  headers(): Iterable<[string, string]>;
  readonly body: Readable;
  /** owner identifies the client connection: the HTTP/2 session or the socket. */
  readonly owner: object;
  readonly peer: string;
  /** socket is the client connection's socket (a TLSSocket over TLS; an HTTP/2 session's socket proxy), for its peer certificate. */
  readonly socket: object | undefined;
  /** trailers reports whether HTTP trailers can be sent (HTTP/2). */
  readonly trailers: boolean;
  /** headersSent reports whether the response started. */
  readonly headersSent: boolean;
  /** gone reports whether the client closed or reset the request. */
  readonly gone: boolean;
  /**
   * respond sends the response headers. mode "end": the response is headers
   * only; "body": a body follows; "trailers": a body and HTTP/2 trailers
   * follow (gRPC). A request body not read to its end is cut off once the
   * response has ended (HTTP/2 RST_STREAM NO_ERROR; on HTTP/1.1 the server's
   * response class reads and drops it up to a bound, then closes the
   * connection: see unread-body.ts).
   */
  respond(status: number, headers: http2.OutgoingHttpHeaders, mode: "end" | "body" | "trailers"): void;
  /** write sends body bytes; false when the client does not read (see whenWritable). */
  write(chunk: Uint8Array): boolean;
  /** end ends the response, with last body bytes and (HTTP/2 only) trailers. */
  end(last?: Uint8Array, trailers?: http2.OutgoingHttpHeaders): void;
  whenWritable(fn: () => void): void;
  /** buffered is how many response bytes were written and are not yet sent (queued, or held by flow control). */
  buffered(): number;
  /**
   * cut drops the response at once with what it buffered: HTTP/2 RST_STREAM
   * ENHANCE_YOUR_CALM (gRPC clients read RESOURCE_EXHAUSTED), HTTP/1.1 by
   * closing the connection (its only response). A status would wait behind
   * the unread bytes; this frees them.
   */
  cut(): void;
  /**
   * compactHeaders drops what only the framing read (HTTP/2 pseudo-headers,
   * te) from what the call keeps: a stream is held open for hours, tens of
   * thousands at once.
   */
  compactHeaders(): void;
  /** cancelOnGone aborts the call's signal (CANCELED) once the client closes or resets the request before the response ended. */
  cancelOnGone(signal: CallSignal): void;
}

/** StreamExchange serves an HTTP/2 stream directly. */
export class StreamExchange implements Exchange {
  readonly trailers = true;
  private waitsForTrailers = false;

  /**
   * rawHeaders is the request's header block as Node read it ([name, value,
   * ...], lower-case names): kept instead of Node's header object, a
   * dictionary-mode object three times its size, since a stream may be
   * held open for hours and a header is rarely read after the call starts.
   */
  constructor(
    readonly body: http2.ServerHttp2Stream,
    private rawHeaders: readonly string[],
    /** extraHeaders go with the response's headers (CORS, from the router's guard). */
    private readonly extraHeaders?: http2.OutgoingHttpHeaders,
  ) {
    // A stream reset by the client emits "error"; onGone covers it.
    body.on("error", noop);
  }

  header(name: string): string | undefined {
    const raw = this.rawHeaders;
    let value: string | undefined;
    for (let i = 0; i < raw.length; i += 2) {
      if (raw[i] === name) value = value === undefined ? raw[i + 1] : `${value}, ${raw[i + 1]}`;
    }
    return value;
  }

  *headers(): Iterable<[string, string]> {
    const raw = this.rawHeaders;
    for (let i = 0; i < raw.length; i += 2) if (!framingOnly(raw[i]!)) yield [raw[i]!, raw[i + 1]!];
  }

  compactHeaders(): void {
    const raw = this.rawHeaders;
    const kept: string[] = [];
    for (let i = 0; i < raw.length; i += 2) if (!framingOnly(raw[i]!)) kept.push(raw[i]!, raw[i + 1]!);
    this.rawHeaders = kept;
  }

  get owner(): object {
    return this.body.session ?? this.body;
  }

  get peer(): string {
    return this.body.session?.socket?.remoteAddress ?? "";
  }

  get socket(): object | undefined {
    return this.body.session?.socket;
  }

  get headersSent(): boolean {
    return this.body.headersSent;
  }

  get gone(): boolean {
    return this.body.closed || this.body.destroyed;
  }

  respond(status: number, head: http2.OutgoingHttpHeaders, mode: "end" | "body" | "trailers"): void {
    const stream = this.body;
    if (stream.closed || stream.headersSent) return;
    const h = this.extraHeaders === undefined ? head : { ...this.extraHeaders, ...head };
    // Node copies the headers it is given and takes a missing :status as
    // 200: a call answered 200 passes its framing's object as it is.
    const withStatus = status === 200 ? h : { ":status": status, ...h };
    if (mode === "trailers") {
      // The "wantTrailers" listener is added by end(): not one more closure
      // for each of the many streams held open for hours.
      stream.respond(withStatus, WAIT_FOR_TRAILERS);
      this.waitsForTrailers = true;
    } else {
      stream.respond(withStatus, mode === "end" ? END_STREAM : NOT_END_STREAM);
      if (mode === "end") cutUnread(stream);
    }
  }

  write(chunk: Uint8Array): boolean {
    return this.body.closed || this.body.write(chunk);
  }

  end(last?: Uint8Array, trailers?: http2.OutgoingHttpHeaders): void {
    const stream = this.body;
    if (stream.closed || stream.writableEnded) return;
    if (this.waitsForTrailers) {
      (stream as TrailingStream)[TRAILERS] = trailers ?? NO_TRAILERS;
      // "wantTrailers" comes once: on, with one function for every stream
      stream.on("wantTrailers", sendTrailers);
    }
    if (last === undefined) stream.end();
    else stream.end(last);
    if (trailers === undefined) cutUnread(stream);
  }

  whenWritable(fn: () => void): void {
    whenWritable(this.body, fn);
  }

  buffered(): number {
    return this.body.writableLength;
  }

  cut(): void {
    if (!this.body.closed) this.body.close(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
  }

  cancelOnGone(signal: CallSignal): void {
    const stream = this.body;
    // "close" comes once: on, not once, which wraps the listener in two more objects for each stream held open.
    stream.on("close", () => {
      if (!stream.writableFinished || stream.rstCode !== http2.constants.NGHTTP2_NO_ERROR) signal.abort(clientCancelled());
    });
  }
}

/** The options of ServerHttp2Stream.respond, one object each for every call (Node copies them). */
const WAIT_FOR_TRAILERS: http2.ServerStreamResponseOptions = Object.freeze({ waitForTrailers: true });
const END_STREAM: http2.ServerStreamResponseOptions = Object.freeze({ endStream: true });
const NOT_END_STREAM: http2.ServerStreamResponseOptions = Object.freeze({ endStream: false });

/** TRAILERS is where a stream answered with trailers keeps them until Node asks for them. */
const TRAILERS = Symbol("trailers");
const NO_TRAILERS: http2.OutgoingHttpHeaders = Object.freeze({});
type TrailingStream = http2.ServerHttp2Stream & { [TRAILERS]?: http2.OutgoingHttpHeaders };

/** sendTrailers is every stream's "wantTrailers" listener. */
function sendTrailers(this: TrailingStream): void {
  // Trailers are the call's status: the stream is not cut after them (an
  // RST_STREAM right after could overtake them); a request body still
  // coming is read and dropped until the client ends it.
  if (this.closed) return;
  this.sendTrailers(this[TRAILERS]!);
  this[TRAILERS] = undefined;
  this.resume();
}

/**
 * cutUnread ends an HTTP/2 stream answered before its request body was read
 * to its end. The rest of the body is read and dropped; if it has not ended
 * LINGER_MS later, RST_STREAM NO_ERROR tells the client to stop sending (RFC
 * 9113, 8.1). Not at once: on a TLS connection whose socket is still writing,
 * Node can put the RST_STREAM on the wire before the response's frames, and
 * the client then reports a reset instead of the answer (a gRPC client
 * answered UNIMPLEMENTED saw "stream error: NO_ERROR" in about 1 run in 3).
 */
function cutUnread(stream: http2.ServerHttp2Stream): void {
  if (stream.closed || stream.readableEnded) return;
  stream.resume();
  setTimeout(lingerEnded, LINGER_MS, stream).unref();
}

function lingerEnded(stream: http2.ServerHttp2Stream): void {
  if (!stream.closed && !stream.readableEnded) stream.close(http2.constants.NGHTTP2_NO_ERROR);
}

type Req = http.IncomingMessage | http2.Http2ServerRequest;
type Res = http.ServerResponse | http2.Http2ServerResponse;

/** RequestExchange serves an HTTP/1.1 (or HTTP/2 compat) request. */
export class RequestExchange implements Exchange {
  readonly trailers = false;
  private ended = false;

  constructor(
    readonly body: Req,
    private readonly res: Res,
  ) {}

  header(name: string): string | undefined {
    return headerValue(this.body.headers[name]);
  }

  headers(): Iterable<[string, string]> {
    return entriesOf(this.body.headers);
  }

  get owner(): object {
    const req = this.body;
    return "stream" in req ? (req.stream.session ?? req.stream) : req.socket;
  }

  get peer(): string {
    return this.body.socket?.remoteAddress ?? "";
  }

  get socket(): object | undefined {
    return this.body.socket ?? undefined;
  }

  get headersSent(): boolean {
    return this.res.headersSent;
  }

  get gone(): boolean {
    return this.res.destroyed || (this.body.destroyed && !this.body.complete);
  }

  respond(status: number, h: http2.OutgoingHttpHeaders, mode: "end" | "body" | "trailers"): void {
    const res = this.res as http.ServerResponse;
    if (res.headersSent) return;
    res.writeHead(status, h as http.OutgoingHttpHeaders);
    if (mode === "end") {
      this.ended = true;
      res.end();
    }
  }

  write(chunk: Uint8Array): boolean {
    return this.res.destroyed || (this.res as http.ServerResponse).write(chunk);
  }

  end(last?: Uint8Array): void {
    if (this.ended) return;
    this.ended = true;
    if (last === undefined) this.res.end();
    else this.res.end(last);
    if ("stream" in this.body) cutUnread(this.body.stream);
  }

  whenWritable(fn: () => void): void {
    const res = this.res;
    const done = (): void => {
      res.off("drain", done);
      res.off("close", done);
      fn();
    };
    res.on("drain", done);
    res.on("close", done);
  }

  buffered(): number {
    const req = this.body;
    return "stream" in req ? req.stream.writableLength : (this.res as http.ServerResponse).writableLength;
  }

  cut(): void {
    const req = this.body;
    if ("stream" in req) {
      if (!req.stream.closed) req.stream.close(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
    } else this.res.destroy();
  }

  /** compactHeaders keeps Node's request object as it is: an HTTP/1.1 or compat request holds it anyway. */
  compactHeaders(): void {}

  cancelOnGone(signal: CallSignal): void {
    const res = this.res;
    res.once("close", () => {
      if (!res.writableFinished) signal.abort(clientCancelled());
    });
  }
}

function clientCancelled(): ConnectError {
  return new ConnectError("the client cancelled the call", Code.Canceled);
}

function headerValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v.join(", ") : v;
}

/** framingOnly reports whether a request header is only the framing's: an HTTP/2 pseudo-header or te. */
export function framingOnly(name: string): boolean {
  return name.startsWith(":") || name === "te";
}

/** entriesOf lists request headers, the framing's own (framingOnly) left out. */
export function* entriesOf(headers: http2.IncomingHttpHeaders): Generator<[string, string]> {
  for (const name in headers) {
    if (framingOnly(name)) continue;
    const v = headerValue(headers[name]);
    if (v !== undefined) yield [name, v];
  }
}

function whenWritable(stream: http2.ServerHttp2Stream, fn: () => void): void {
  const done = (): void => {
    stream.off("drain", done);
    stream.off("close", done);
    fn();
  };
  stream.on("drain", done);
  stream.on("close", done);
}

function noop(): void {}
