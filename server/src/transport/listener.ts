import http from "node:http";
import http2 from "node:http2";
import net from "node:net";

/** ListenerOptions configure the HTTP servers behind the one port. */
export interface ListenerOptions {
  /** maxStreamsPerConnection is HTTP/2's SETTINGS_MAX_CONCURRENT_STREAMS. */
  readonly maxStreamsPerConnection: number;
  /** maxHeaderBytes bounds request headers (HTTP/1.1 and HTTP/2). */
  readonly maxHeaderBytes: number;
  /** streams, when set, is offered every HTTP/2 stream before it is served as a request. */
  readonly streams?: StreamHandler;
}

/**
 * StreamHandler may serve an HTTP/2 stream itself, from its headers, and
 * returns true when it does; a stream it declines is served as a request.
 * Serving the stream directly spares the compat request and response
 * objects (http2.Http2ServerRequest/Response) that each request costs.
 */
export type StreamHandler = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => boolean;

/** RequestHandler serves HTTP/1.1 and HTTP/2 requests alike, as connectNodeAdapter returns. */
export type RequestHandler = (
  req: http.IncomingMessage | http2.Http2ServerRequest,
  res: http.ServerResponse | http2.Http2ServerResponse,
) => void;

const PREFACE = "PRI"; // the start of HTTP/2's connection preface, "PRI * HTTP/2.0"
/** LINGER_MS is how long a draining HTTP/2 connection whose streams all ended on the server's side is kept for the client to read them. */
const LINGER_MS = 200;

/**
 * Listener serves HTTP/2 cleartext (gRPC, gRPC-Web, Connect) and HTTP/1.1
 * (Connect, gRPC-Web, plain curl) on one port. Node's cleartext HTTP/2
 * server cannot fall back to HTTP/1.1, so the listener reads the first bytes
 * of each connection and hands the socket, data included, to the matching
 * server. Both servers run the same handler; on HTTP/2, opts.streams may
 * serve a stream before it becomes a request.
 */
export class Listener {
  private readonly tcp: net.Server;
  private readonly h1: http.Server;
  private readonly h2: http2.Http2Server;
  private readonly sockets = new Set<net.Socket>();
  private readonly sessions = new Set<http2.Http2Session>();
  private readonly streams = new WeakMap<http2.Http2Session, Set<http2.ServerHttp2Stream>>();
  /** rawSockets maps each HTTP/2 session to its socket (the session only exposes a proxy). */
  private readonly rawSockets = new WeakMap<http2.Http2Session, net.Socket>();
  private connecting: net.Socket | undefined;

  constructor(handler: RequestHandler, opts: ListenerOptions) {
    // No request listener: Node would then make compat objects for every
    // stream; the "stream" listener below makes them only for the streams
    // that opts.streams declines.
    this.h2 = http2.createServer({
      settings: { maxConcurrentStreams: opts.maxStreamsPerConnection },
      maxHeaderListPairs: 256,
      maxSessionMemory: 64,
    });
    this.h2.on("session", (s) => {
      this.sessions.add(s);
      this.streams.set(s, new Set());
      if (this.connecting !== undefined) this.rawSockets.set(s, this.connecting);
      s.once("close", () => this.sessions.delete(s));
    });
    this.h2.on("stream", (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, _flags: number, rawHeaders: string[]) => {
      const open = this.streams.get(stream.session!);
      if (open !== undefined) {
        open.add(stream);
        stream.once("close", () => open.delete(stream));
      }
      if (opts.streams?.(stream, headers) === true) return;
      serveAsRequest(handler, stream, headers, rawHeaders);
    });
    this.h1 = http.createServer({ maxHeaderSize: opts.maxHeaderBytes, requestTimeout: 0, keepAliveTimeout: 65_000 }, handler);
    // Nagle stays on (Node's default for net servers): with TCP_NODELAY,
    // Connect JSON over HTTP/1.1 measured 13,000 instead of 17,500 req/s
    // (bench/discover-throughput.mjs), and heartbeat acks were no faster.
    this.tcp = net.createServer((socket) => this.route(socket));
  }

  /** listen binds host:port (port 0 picks a free port) and resolves with the bound port. */
  listen(port: number, host: string): Promise<number> {
    return new Promise((resolve, reject) => {
      this.tcp.once("error", reject);
      this.tcp.listen(port, host, () => {
        this.tcp.off("error", reject);
        resolve((this.tcp.address() as net.AddressInfo).port);
      });
    });
  }

  /** connections counts open client connections. */
  get connections(): number {
    return this.sockets.size;
  }

  /**
   * close stops accepting, sends HTTP/2 GOAWAY, closes idle HTTP/1.1
   * connections, closes HTTP/2 connections whose streams have all been
   * answered, and after graceMs destroys whatever is still open.
   */
  async close(graceMs: number): Promise<void> {
    const closed = new Promise<void>((resolve) => this.tcp.close(() => resolve()));
    for (const s of this.sessions) s.close();
    this.h1.closeIdleConnections();
    const deadline = setTimeout(() => {
      for (const s of this.sockets) s.destroy();
    }, graceMs);
    // An HTTP/2 connection closes after GOAWAY once the client has closed
    // its side of every stream. A client busy reconnecting thousands of
    // sessions can take seconds for that; a connection whose every stream
    // the server has ended (answers and trailers written) is closed after
    // LINGER_MS instead, which is enough to flush the last frames.
    const endedSince = new Map<http2.Http2Session, number>();
    const drained = new Promise<void>((resolve) => {
      const check = (): void => {
        const now = performance.now();
        for (const s of this.sessions) {
          const open = this.streams.get(s);
          if (open === undefined || ![...open].every((st) => st.writableEnded)) {
            endedSince.delete(s);
            continue;
          }
          const since = endedSince.get(s) ?? now;
          endedSince.set(s, since);
          if (now - since >= LINGER_MS) {
            // destroy alone would wait for the client's FIN (the session is closing): cut the socket too
            s.destroy();
            this.rawSockets.get(s)?.destroy();
          }
        }
        if (this.sockets.size === 0) resolve();
        else setTimeout(check, 10).unref();
      };
      check();
    });
    await Promise.all([closed, drained]);
    clearTimeout(deadline);
  }

  private route(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.once("close", () => this.sockets.delete(socket));
    socket.on("error", () => socket.destroy());
    let head: Buffer = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
      if (head.length < PREFACE.length) return;
      socket.off("data", onData);
      socket.pause();
      socket.unshift(head);
      if (head.toString("latin1", 0, PREFACE.length) === PREFACE) {
        // The HTTP/2 session reads the unshifted bytes itself on the next tick;
        // resuming here would hand them to no one.
        this.connecting = socket; // the session is made, and "session" emitted, within emit
        this.h2.emit("connection", socket);
        this.connecting = undefined;
      } else {
        this.h1.emit("connection", socket);
        socket.resume();
      }
    };
    socket.on("data", onData);
  }
}

/**
 * serveAsRequest hands an HTTP/2 stream to handler as a compat request and
 * response, as Node's HTTP/2 server does for a request listener
 * (lib/internal/http2/compat.js, onServerStream): CONNECT is refused with
 * 405, "expect: 100-continue" is answered with 100 first, and any other
 * expectation fails with 417.
 */
function serveAsRequest(handler: RequestHandler, stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, rawHeaders: string[]): void {
  const req = new http2.Http2ServerRequest(stream, headers, {}, rawHeaders);
  const res = new http2.Http2ServerResponse(stream);
  if (headers[":method"] === "CONNECT") {
    res.statusCode = 405;
    res.end();
    return;
  }
  if (headers.expect !== undefined) {
    if (headers.expect !== "100-continue") {
      res.statusCode = 417;
      res.end();
      return;
    }
    res.writeContinue();
  }
  handler(req, res);
}
