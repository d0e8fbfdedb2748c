import type http from "node:http";
import http2 from "node:http2";
import type { Readable } from "node:stream";

/**
 * Exchange is one HTTP request and its response as the protocols see it,
 * over an HTTP/2 stream served directly (no compat objects) or an HTTP/1.1
 * (or HTTP/2 compat) request and response. The protocol code (gRPC,
 * gRPC-Web, Connect) is written once against it.
 */
export interface Exchange {
  /** header reads a request header (lower-case name). */
  header(name: string): string | undefined;
  /** headers lists every request header but HTTP/2's pseudo-headers. */
  headers(): Iterable<[string, string]>;
  readonly body: Readable;
  /** owner identifies the client connection: the HTTP/2 session or the socket. */
  readonly owner: object;
  readonly peer: string;
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
   * response has ended (HTTP/2 RST_STREAM NO_ERROR, HTTP/1.1 connection: close).
   */
  respond(status: number, headers: http2.OutgoingHttpHeaders, mode: "end" | "body" | "trailers"): void;
  /** write sends body bytes; false when the client does not read (see whenWritable). */
  write(chunk: Uint8Array): boolean;
  /** end ends the response, with last body bytes and (HTTP/2 only) trailers. */
  end(last?: Uint8Array, trailers?: http2.OutgoingHttpHeaders): void;
  whenWritable(fn: () => void): void;
  /** onGone calls fn once when the client closes or resets the request before the response ended. */
  onGone(fn: () => void): void;
}

/** streamExchange serves an HTTP/2 stream directly. */
export function streamExchange(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): Exchange {
  // A stream reset by the client emits "error"; onGone covers it.
  stream.on("error", noop);
  const session = stream.session;
  let trailersToSend: http2.OutgoingHttpHeaders | undefined;
  return {
    header: (name) => headerValue(headers[name]),
    headers: () => entriesOf(headers),
    body: stream,
    owner: session ?? stream,
    peer: session?.socket?.remoteAddress ?? "",
    trailers: true,
    get headersSent() {
      return stream.headersSent;
    },
    get gone() {
      return stream.closed || stream.destroyed;
    },
    respond(status, h, mode) {
      if (stream.closed || stream.headersSent) return;
      if (mode === "trailers") {
        stream.respond({ ":status": status, ...h }, { waitForTrailers: true });
        stream.once("wantTrailers", () => {
          // Trailers are the call's status: the stream is not cut after them
          // (an RST_STREAM right after could overtake them); a request body
          // still coming is read and dropped until the client ends it.
          if (stream.closed) return;
          stream.sendTrailers(trailersToSend ?? {});
          stream.resume();
        });
      } else {
        stream.respond({ ":status": status, ...h }, { endStream: mode === "end" });
        if (mode === "end") cutUnread(stream);
      }
    },
    write: (chunk) => stream.closed || stream.write(chunk),
    end(last, trailers) {
      if (stream.closed || stream.writableEnded) return;
      trailersToSend = trailers;
      if (last === undefined) stream.end();
      else stream.end(last);
      if (trailers === undefined) cutUnread(stream);
    },
    whenWritable: (fn) => whenWritable(stream, fn),
    onGone(fn) {
      stream.once("close", () => {
        if (!stream.writableFinished || stream.rstCode !== http2.constants.NGHTTP2_NO_ERROR) fn();
      });
    },
  };
}

/** cutUnread ends an HTTP/2 stream whose request body was not read to its end, after the response: RST_STREAM NO_ERROR tells the client to stop sending (RFC 9113, 8.1); Node sends the response's frames first. */
function cutUnread(stream: http2.ServerHttp2Stream): void {
  if (!stream.closed && !stream.readableEnded) stream.close(http2.constants.NGHTTP2_NO_ERROR);
}

type Req = http.IncomingMessage | http2.Http2ServerRequest;
type Res = http.ServerResponse | http2.Http2ServerResponse;

/** requestExchange serves an HTTP/1.1 (or HTTP/2 compat) request. */
export function requestExchange(req: Req, res: Res): Exchange {
  const h2 = "stream" in req;
  const owner: object = h2 ? (req.stream.session ?? req.stream) : req.socket;
  let ended = false;
  const r = res as http.ServerResponse;
  return {
    header: (name) => headerValue(req.headers[name]),
    headers: () => entriesOf(req.headers),
    body: req,
    owner,
    peer: req.socket?.remoteAddress ?? "",
    trailers: false,
    get headersSent() {
      return res.headersSent;
    },
    get gone() {
      return res.destroyed || (req.destroyed && !req.complete);
    },
    respond(status, h, mode) {
      if (res.headersSent) return;
      // A body not read to its end is cut off with the connection once the answer is out.
      if (!req.complete && !h2) r.setHeader("connection", "close");
      r.writeHead(status, h as http.OutgoingHttpHeaders);
      if (mode === "end") {
        ended = true;
        res.end();
      }
    },
    write: (chunk) => res.destroyed || r.write(chunk),
    end(last) {
      if (ended) return;
      ended = true;
      if (last === undefined) res.end();
      else res.end(last);
      if (h2) cutUnread((req as http2.Http2ServerRequest).stream);
    },
    whenWritable(fn) {
      const done = (): void => {
        res.off("drain", done);
        res.off("close", done);
        fn();
      };
      res.on("drain", done);
      res.on("close", done);
    },
    onGone(fn) {
      res.once("close", () => {
        if (!res.writableFinished) fn();
      });
    },
  };
}

function headerValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v.join(", ") : v;
}

/** entriesOf lists request headers, HTTP/2 pseudo-headers left out. */
export function* entriesOf(headers: http2.IncomingHttpHeaders): Generator<[string, string]> {
  for (const name in headers) {
    if (name.startsWith(":")) continue;
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
