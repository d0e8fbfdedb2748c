import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import tls from "node:tls";
import type { Logger } from "../domain/logger.js";
import { drainingResponses } from "./unread-body.js";

/** ListenerOptions configure the HTTP servers behind the one port. */
export interface ListenerOptions {
  /** maxStreamsPerConnection is HTTP/2's SETTINGS_MAX_CONCURRENT_STREAMS. */
  readonly maxStreamsPerConnection: number;
  /** maxHeaderBytes bounds request headers (HTTP/1.1 and HTTP/2; MAXINE_MAX_HEADER_BYTES). */
  readonly maxHeaderBytes: number;
  /** handshakeTimeoutMs closes a connection that has not sent the first bytes that name its protocol in time (MAXINE_HANDSHAKE_TIMEOUT). */
  readonly handshakeTimeoutMs: number;
  /** headersTimeoutMs answers 408 to an HTTP/1.1 request whose header block takes longer (MAXINE_HEADERS_TIMEOUT). */
  readonly headersTimeoutMs: number;
  /** idleTimeoutMs closes a connection with no open request or stream for this long (MAXINE_IDLE_TIMEOUT). */
  readonly idleTimeoutMs: number;
  /** maxConnections closes new connections at once while this many are open (MAXINE_MAX_CONNECTIONS). */
  readonly maxConnections: number;
  /** maxConnectionsPerAddress does the same per client address (MAXINE_MAX_CONNECTIONS_PER_ADDRESS). */
  readonly maxConnectionsPerAddress: number;
  /**
   * unreadBodyBytes is how much of an HTTP/1.1 request body answered before
   * it ended is read and dropped (whichever framing answered) before the
   * connection is cut: unreadBodyLimit in unread-body.ts.
   */
  readonly unreadBodyBytes: number;
  /** maxUnsentBytesPerConnection bounds the answer bytes an HTTP/2 connection may leave unread (MAXINE_MAX_UNSENT_BYTES_PER_CONNECTION). */
  readonly maxUnsentBytesPerConnection: number;
  /**
   * keepaliveIntervalMs is how long after its last PING was acknowledged an
   * HTTP/2 connection holding open streams is sent another
   * (MAXINE_KEEPALIVE_INTERVAL; 0: no PINGs).
   */
  readonly keepaliveIntervalMs: number;
  /** keepaliveTimeoutMs closes a connection whose PING is not acknowledged within it, ending its streams (MAXINE_KEEPALIVE_TIMEOUT). */
  readonly keepaliveTimeoutMs: number;
  /** log hears of refused connections and of clients that break the protocol (warn or debug, never error). */
  readonly log: Logger;
  /** onSilentPeer hears of a connection about to be closed because its PING went unanswered (before its streams end). */
  readonly onSilentPeer?: (session: object) => void;
  /** streams, when set, is offered every HTTP/2 stream before it is served as a request. */
  readonly streams?: StreamHandler;
  /** tls, when set, makes every connection TLS: ALPN picks h2 or http/1.1 (MAXINE_TLS_*). */
  readonly tls?: ListenerTls;
}

/** ListenerTls is the listener's TLS: the first certificate, and whether clients must show one (mTLS). */
export interface ListenerTls {
  /** context is the certificate, key and client CAs (tls-certificates.ts loadCertificate); setSecureContext replaces it. */
  readonly context: tls.SecureContextOptions;
  /**
   * clientAuth (MAXINE_TLS_CLIENT_AUTH): "none" asks no certificate;
   * "request" asks for one and lets a client without one, or with one that
   * does not verify against the CA, in without an identity; "require"
   * closes the handshake of a client without a verified certificate.
   */
  readonly clientAuth: "none" | "request" | "require";
}

/**
 * StreamHandler may serve an HTTP/2 stream itself, from its headers, and
 * returns true when it does; a stream it declines is served as a request.
 * Serving the stream directly spares the compat request and response
 * objects (http2.Http2ServerRequest/Response) that each request costs.
 */
export type StreamHandler = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, rawHeaders: string[]) => boolean;

/** RequestHandler serves HTTP/1.1 and HTTP/2 requests alike, as connectNodeAdapter returns. */
export type RequestHandler = (
  req: http.IncomingMessage | http2.Http2ServerRequest,
  res: http.ServerResponse | http2.Http2ServerResponse,
) => void;

const PREFACE = "PRI"; // the start of HTTP/2's connection preface, "PRI * HTTP/2.0"
/** TLS_HANDSHAKE is the first byte of a TLS connection (a handshake record: the ClientHello). */
const TLS_HANDSHAKE = 0x16;
/** ALPN lists the protocols a TLS client may pick, preferred first; a client that names none gets HTTP/1.1. */
const ALPN = ["h2", "http/1.1"];
/** LINGER_MS is how long a draining HTTP/2 connection whose streams all ended on the server's side is kept for the client to read them. */
const LINGER_MS = 200;
/** SWEEP_MS is how often every HTTP/2 connection's unsent answer bytes are summed (besides after each new stream). */
const SWEEP_MS = 1000;
/** WARN_EVERY_MS spaces out the warnings about refused connections: a flood of them is one line a second. */
const WARN_EVERY_MS = 1000;

/**
 * Listener serves HTTP/2 cleartext (gRPC, gRPC-Web, Connect) and HTTP/1.1
 * (Connect, gRPC-Web, plain curl) on one port. Node's cleartext HTTP/2
 * server cannot fall back to HTTP/1.1, so the listener reads the first bytes
 * of each connection and hands the socket, data included, to the matching
 * server. Both servers run the same handler; on HTTP/2, opts.streams may
 * serve a stream before it becomes a request.
 *
 * With ListenerOptions.tls every connection is TLS instead: after the
 * connection caps, the socket goes through a TLS handshake whose ALPN
 * (h2 or http/1.1) picks the server, so every limit below applies to TLS
 * connections alike.
 *
 * It also keeps hostile or broken clients from holding what others need:
 * connections are capped in total and per address, each must say its
 * protocol, send its HTTP/1.1 headers and keep a request or stream open
 * within the timeouts, and an HTTP/2 connection may leave only so many
 * answer bytes unread.
 */
export class Listener {
  private readonly tcp: net.Server;
  private readonly h1: http.Server;
  private readonly h2: http2.Http2Server;
  private readonly secure: tls.Server | undefined;
  /** handshakes holds the deadline of each TLS connection until its handshake ends, by remote address and port. */
  private readonly handshakes = new Map<string, NodeJS.Timeout>();
  private readonly sockets = new Set<net.Socket>();
  private readonly perAddress = new Map<string, number>();
  private readonly sessions = new Map<http2.Http2Session, SessionState>();
  private readonly sweep: NodeJS.Timeout;
  private readonly keepalive: NodeJS.Timeout | undefined;
  private connecting: net.Socket | undefined;
  private refused = 0;
  private lastRefusalWarn = -Infinity;
  /** streamsReset counts the HTTP/2 streams reset because their connection held too many unsent bytes. */
  streamsReset = 0;
  /** silentPeers counts the HTTP/2 connections closed because a PING went unacknowledged (MAXINE_KEEPALIVE_TIMEOUT). */
  silentPeers = 0;

  constructor(
    handler: RequestHandler,
    private readonly opts: ListenerOptions,
  ) {
    // No request listener: Node would then make compat objects for every
    // stream; the "stream" listener below makes them only for the streams
    // that opts.streams declines.
    this.h2 = http2.createServer({
      // Node enforces SETTINGS_MAX_HEADER_LIST_SIZE on what it receives
      // (each field counts its name, value and 32 bytes, RFC 9113 6.5.2): a
      // stream whose header block is larger is reset with ENHANCE_YOUR_CALM
      // and the connection keeps serving. The default, 64 KiB, let a 60 KB
      // header through whatever MAXINE_MAX_HEADER_BYTES said.
      settings: { maxConcurrentStreams: opts.maxStreamsPerConnection, maxHeaderListSize: opts.maxHeaderBytes },
      maxHeaderListPairs: 256,
      maxSessionMemory: 64,
    });
    this.h2.on("session", (s) => this.track(s));
    this.h2.on("stream", (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, _flags: number, rawHeaders: string[]) => {
      const state = this.sessions.get(stream.session!);
      if (state !== undefined) {
        state.open.add(stream);
        (stream as TrackedStream)[SESSION_STATE] = state;
        stream.on("close", streamClosed);
        this.checkUnsentSoon(stream.session!, state);
      }
      if (opts.streams?.(stream, headers, rawHeaders) === true) return;
      serveAsRequest(handler, stream, headers, rawHeaders);
    });
    this.h1 = http.createServer(
      {
        maxHeaderSize: opts.maxHeaderBytes,
        // requestTimeout stays off: a Connect stream over HTTP/1.1 is one request that lasts as long as the watch.
        requestTimeout: 0,
        headersTimeout: opts.headersTimeoutMs,
        // Node closes an idle keep-alive connection 1 s after the timeout it announces, so that the client closes first
        keepAliveTimeout: opts.idleTimeoutMs,
        connectionsCheckingInterval: Math.max(10, Math.min(1000, Math.floor(opts.headersTimeoutMs / 4))),
        // a response started before its request body ended drains the rest, so the connection's next request is read
        ServerResponse: drainingResponses(opts.unreadBodyBytes),
      },
      handler,
    );
    // Node tracks HTTP/1.1 connections (for headersTimeout and
    // closeIdleConnections) from the server's "listening" event on; this
    // server never listens itself (sockets come from route), so without
    // this neither the header timeout nor closing idle connections on
    // drain did anything.
    this.h1.emit("listening");
    this.h1.on("clientError", (err: NodeJS.ErrnoException, socket: net.Socket) => this.refuseRequest(err, socket));
    if (opts.tls !== undefined) {
      // A tls.Server that never listens: route hands it the sockets (as
      // Node's own HTTPS servers are fed), and setSecureContext swaps the
      // certificate for the connections that come next.
      this.secure = tls.createServer({
        ...opts.tls.context,
        ALPNProtocols: ALPN,
        requestCert: opts.tls.clientAuth !== "none",
        rejectUnauthorized: opts.tls.clientAuth === "require",
        handshakeTimeout: opts.handshakeTimeoutMs,
      });
      this.secure.on("secureConnection", (s: tls.TLSSocket) => this.serveSecure(s));
      this.secure.on("tlsClientError", (err: NodeJS.ErrnoException, s: tls.TLSSocket) => {
        this.opts.log.debug({ err: err.message, code: err.code, address: s.remoteAddress }, "TLS handshake failed (client)");
        s.destroy();
      });
    }
    // TCP_NODELAY, as node:http's own servers and grpc-go set it: an answer
    // leaves when it is written. (Nagle on measured no faster for Connect
    // JSON over HTTP/1.1 under h2load: 45-46k against 48-49k req/s.)
    this.tcp = net.createServer({ noDelay: true }, (socket) => this.route(socket));
    this.sweep = setInterval(() => {
      for (const [s, state] of this.sessions) this.checkUnsent(s, state);
    }, SWEEP_MS).unref();
    if (opts.keepaliveIntervalMs > 0) {
      // One timer for every connection, not one per connection: it ticks a
      // few times per interval and timeout, so a PING leaves (and a silent
      // peer is found) within a quarter of the shorter of them.
      const tick = Math.max(10, Math.min(opts.keepaliveIntervalMs, opts.keepaliveTimeoutMs) / 4);
      // The check runs after the event loop's next read (setImmediate): a
      // timer is due before pending I/O is read, so after the server's own
      // event loop was blocked past the timeout (a burst of registrations)
      // a PING ACK already waiting in the socket would otherwise be missed
      // and a live peer cut (50,000 heartbeat streams lost 115 of their 50
      // connections that way in bench/heartbeat-capacity.mjs).
      const probe = (): void => this.probe(tick);
      this.keepalive = setInterval(() => setImmediate(probe), tick).unref();
    }
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

  /**
   * setSecureContext serves connections that come from now on with a new
   * certificate (and client CAs); open connections keep theirs. The options
   * must have passed loadCertificate: OpenSSL errors here would throw.
   */
  setSecureContext(context: tls.SecureContextOptions): void {
    if (this.secure === undefined) throw new Error("setSecureContext: the listener serves cleartext (no MAXINE_TLS_CERT)");
    this.secure.setSecureContext(context);
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
    clearInterval(this.sweep);
    clearInterval(this.keepalive);
    const closed = new Promise<void>((resolve) => this.tcp.close(() => resolve()));
    for (const s of this.sessions.keys()) s.close();
    // http.Server.close closes the idle connections and stops the header
    // timeout checks; a connection whose request is still open is closed
    // once its answer is written (Node answers "connection: close").
    this.h1.close();
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
        for (const [s, { open, socket }] of this.sessions) {
          if (![...open].every((st) => st.writableEnded)) {
            endedSince.delete(s);
            continue;
          }
          const since = endedSince.get(s) ?? now;
          endedSince.set(s, since);
          if (now - since >= LINGER_MS) {
            // destroy alone would wait for the client's FIN (the session is closing): cut the socket too
            s.destroy();
            socket?.destroy();
          }
        }
        // HTTP/1.1 connections whose last request was answered since are idle now
        this.h1.closeIdleConnections();
        if (this.sockets.size === 0) resolve();
        else setTimeout(check, 10).unref();
      };
      check();
    });
    await Promise.all([closed, drained]);
    clearTimeout(deadline);
  }

  private route(socket: net.Socket): void {
    const address = socket.remoteAddress ?? "";
    const fromAddress = this.perAddress.get(address) ?? 0;
    if (this.sockets.size >= this.opts.maxConnections) return this.refuseConnection(socket, address, "MAXINE_MAX_CONNECTIONS", this.opts.maxConnections);
    if (fromAddress >= this.opts.maxConnectionsPerAddress) {
      return this.refuseConnection(socket, address, "MAXINE_MAX_CONNECTIONS_PER_ADDRESS", this.opts.maxConnectionsPerAddress);
    }
    this.sockets.add(socket);
    this.perAddress.set(address, fromAddress + 1);
    socket.once("close", () => {
      this.sockets.delete(socket);
      const n = this.perAddress.get(address)! - 1;
      if (n === 0) this.perAddress.delete(address);
      else this.perAddress.set(address, n);
    });
    socket.on("error", () => socket.destroy());
    if (this.secure !== undefined) return this.routeTls(socket, address);
    // A connection that never says which protocol it speaks would hold its
    // socket forever: nothing else times it out before the handover.
    const silent = (): void => {
      this.opts.log.debug({ address, limit: "MAXINE_HANDSHAKE_TIMEOUT" }, "connection closed: no protocol preface in time");
      socket.destroy();
    };
    socket.setTimeout(this.opts.handshakeTimeoutMs, silent);
    let head: Buffer = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
      if (head.length < PREFACE.length) return;
      socket.off("data", onData);
      socket.setTimeout(0);
      socket.off("timeout", silent);
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

  /**
   * routeTls starts a TLS connection: its ClientHello and its whole
   * handshake must end within MAXINE_HANDSHAKE_TIMEOUT (one deadline, not
   * renewed by a client that trickles bytes); a client that speaks
   * cleartext HTTP to the TLS port is told so in a plain 400 and closed.
   */
  private routeTls(socket: net.Socket, address: string): void {
    const key = `${address}|${socket.remotePort}`;
    const deadline = setTimeout(() => {
      this.opts.log.debug({ address, limit: "MAXINE_HANDSHAKE_TIMEOUT" }, "connection closed: TLS handshake not finished in time");
      socket.destroy();
    }, this.opts.handshakeTimeoutMs);
    this.handshakes.set(key, deadline);
    socket.once("close", () => {
      clearTimeout(deadline);
      if (this.handshakes.get(key) === deadline) this.handshakes.delete(key);
    });
    socket.once("data", (chunk: Buffer) => {
      socket.pause();
      socket.unshift(chunk);
      if (chunk[0] === TLS_HANDSHAKE) {
        this.secure!.emit("connection", socket);
        return;
      }
      this.opts.log.debug({ address }, "connection closed: cleartext on the TLS port");
      const body = "this port speaks TLS only: use https:// (curl --cacert CA.pem https://...)\n";
      socket.end(`HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-type: text/plain\r\ncontent-length: ${body.length}\r\n\r\n${body}`);
      socket.destroySoon();
    });
  }

  /** serveSecure hands a TLS connection whose handshake ended to the server of the protocol ALPN chose. */
  private serveSecure(s: tls.TLSSocket): void {
    const key = `${s.remoteAddress ?? ""}|${s.remotePort}`;
    clearTimeout(this.handshakes.get(key));
    this.handshakes.delete(key);
    s.on("error", () => s.destroy());
    if (s.alpnProtocol === "h2") {
      this.connecting = s;
      this.h2.emit("connection", s);
      this.connecting = undefined;
    } else {
      this.h1.emit("connection", s);
    }
  }

  /** refuseConnection closes a connection over a cap at once, before it costs a parser, and warns at most once a second. */
  private refuseConnection(socket: net.Socket, address: string, limit: string, max: number): void {
    socket.on("error", () => {});
    socket.destroy();
    this.refused++;
    const now = performance.now();
    if (now - this.lastRefusalWarn < WARN_EVERY_MS) return;
    this.opts.log.warn({ address, limit, max, refused: this.refused }, `connections refused: ${limit} (${max}) reached`);
    this.lastRefusalWarn = now;
    this.refused = 0;
  }

  /**
   * refuseRequest answers an HTTP/1.1 request the parser gave up on, as
   * Node would (431, 408, 400) but naming the setting that refused it, and
   * closes the connection. Node writes nothing when a "clientError" listener
   * exists.
   */
  private refuseRequest(err: NodeJS.ErrnoException, socket: net.Socket): void {
    const [status, reason, text] =
      err.code === "HPE_HEADER_OVERFLOW"
        ? [431, "Request Header Fields Too Large", "request headers exceed MAXINE_MAX_HEADER_BYTES"]
        : err.code === "ERR_HTTP_REQUEST_TIMEOUT"
          ? [408, "Request Timeout", "request headers not received within MAXINE_HEADERS_TIMEOUT"]
          : [400, "Bad Request", "malformed HTTP/1.1 request"];
    if (err.code === "ECONNRESET") return void socket.destroy();
    this.opts.log.debug({ err: err.message, code: err.code, address: socket.remoteAddress }, `HTTP/1.1 request refused: ${text}`);
    const answering = (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage;
    if (socket.writable && answering?.headersSent !== true) {
      const body = `${text}\n`;
      socket.end(`HTTP/1.1 ${status} ${reason}\r\nconnection: close\r\ncontent-type: text/plain\r\ncontent-length: ${body.length}\r\n\r\n${body}`);
    }
    socket.destroySoon();
  }

  /**
   * track follows an HTTP/2 session: its streams (for draining and the
   * unsent-bytes bound), its socket, its errors (the client's doing: debug,
   * never error), and its idle time. An idle session, one with no open
   * stream for idleTimeoutMs, gets GOAWAY; a session holding a heartbeat or
   * watch stream is never idle, however quiet the stream.
   */
  private track(s: http2.Http2Session): void {
    const now = performance.now();
    const state: SessionState = { open: new Set(), socket: this.connecting, idleSince: now, checking: false, pingSentAt: undefined, pingAckedAt: now };
    this.sessions.set(s, state);
    s.on("error", (err: Error & { code?: string }) => this.opts.log.debug({ err: err.message, code: err.code }, "HTTP/2 connection error (client)"));
    s.on("frameError", (type: number, code: number, id: number) => this.opts.log.debug({ type, code, stream: id }, "HTTP/2 frame not sent"));
    const check = (): void => {
      if (state.open.size > 0) state.idleSince = performance.now();
      const left = this.opts.idleTimeoutMs - (performance.now() - state.idleSince);
      if (left > 0) {
        idle = setTimeout(check, left).unref();
        return;
      }
      this.opts.log.debug({ limit: "MAXINE_IDLE_TIMEOUT" }, "HTTP/2 connection idle: GOAWAY");
      s.close();
    };
    let idle = setTimeout(check, this.opts.idleTimeoutMs).unref();
    s.once("close", () => {
      clearTimeout(idle);
      this.sessions.delete(s);
    });
  }

  /** probedAt is when probe last ran (performance.now()), to tell this server's own stalls. */
  private probedAt = 0;

  /**
   * probe finds the peers that went silent without closing: a process
   * stopped or hung, a network path that drops packets. TCP cannot tell: the
   * peer's kernel keeps acknowledging, or nothing says the path is gone. So
   * every HTTP/2 connection holding open streams (heartbeats, watches) gets a
   * PING keepaliveIntervalMs after its last one was acknowledged; the client's
   * HTTP/2 stack acknowledges it as soon as it reads, whatever its
   * application does. One not acknowledged within keepaliveTimeoutMs closes
   * the connection: its streams end as if the client had gone (heartbeat
   * streams release their instances after MAXINE_GRACE; watchers are freed).
   * A connection with no open stream is left to MAXINE_IDLE_TIMEOUT.
   */
  private probe(tick: number): void {
    const now = performance.now();
    // Time this server's event loop was blocked (a GC, a burst of work) past
    // a tick or two is not held against a peer: its ACK could not be read
    // meanwhile. Under 50,000 heartbeat streams opening at once the loop
    // stalled up to 1.5 s and live peers' ACKs took up to 2.4 s to be read.
    const stalled = this.probedAt === 0 ? 0 : Math.max(0, now - this.probedAt - 2 * tick);
    this.probedAt = now;
    for (const [s, state] of this.sessions) {
      if (s.destroyed || s.closed) continue;
      if (state.pingSentAt !== undefined) {
        state.pingSentAt += stalled;
        if (now - state.pingSentAt < this.opts.keepaliveTimeoutMs) continue;
        this.silentPeers++;
        this.opts.log.info(
          { address: state.socket?.remoteAddress, streams: state.open.size, limit: "MAXINE_KEEPALIVE_TIMEOUT", timeoutMs: this.opts.keepaliveTimeoutMs },
          "HTTP/2 connection closed: PING not acknowledged in time (the peer stopped answering)",
        );
        this.opts.onSilentPeer?.(s);
        s.destroy();
        state.socket?.destroy();
        continue;
      }
      if (state.open.size === 0 || now - state.pingAckedAt < this.opts.keepaliveIntervalMs) continue;
      state.pingSentAt = now;
      const sent = s.ping((err) => {
        if (err !== null) return;
        state.pingSentAt = undefined;
        state.pingAckedAt = performance.now();
      });
      if (!sent) state.pingSentAt = undefined; // the session cannot send one now (closing): nothing to wait for
    }
  }

  /** checkUnsentSoon checks s once the streams that arrived in this read have been answered. */
  private checkUnsentSoon(s: http2.Http2Session, state: SessionState): void {
    if (state.checking) return;
    state.checking = true;
    setImmediate(() => {
      state.checking = false;
      this.checkUnsent(s, state);
    });
  }

  /**
   * checkUnsent bounds the answer bytes a connection holds unsent. A client
   * that never reads (a stream or connection flow-control window of 0)
   * would otherwise make the server keep every answer it asks for: 2
   * connections with 1,000 Discover streams each held 157 MB. The bytes
   * that wait are each stream's writableLength (Node completes a write
   * only once HTTP/2 has framed it, so queued and window-blocked bytes both
   * count). Over the bound, the streams holding the most are reset with
   * RST_STREAM ENHANCE_YOUR_CALM until the rest fits: the calls that cost
   * the most fail, the connection and its other streams (a heartbeat, a
   * watch) live on, and a client that reads never loses a call while its
   * answers in flight stay under the bound. It runs after each read that
   * opened streams (most answers are written by then) and every SWEEP_MS
   * for streams that grow later (watches).
   */
  private checkUnsent(s: http2.Http2Session, { open }: SessionState): void {
    if (open.size === 0 || s.destroyed) return;
    let total = 0;
    for (const st of open) total += st.writableLength;
    if (total <= this.opts.maxUnsentBytesPerConnection) return;
    const heaviest = [...open].sort((a, b) => b.writableLength - a.writableLength);
    let reset = 0;
    for (const st of heaviest) {
      if (total <= this.opts.maxUnsentBytesPerConnection) break;
      total -= st.writableLength;
      st.close(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
      reset++;
    }
    this.streamsReset += reset;
    this.opts.log.debug({ reset, limit: "MAXINE_MAX_UNSENT_BYTES_PER_CONNECTION", max: this.opts.maxUnsentBytesPerConnection }, "HTTP/2 streams reset: answers not read");
  }
}

/** SessionState is what the listener keeps of an HTTP/2 session. */
interface SessionState {
  readonly open: Set<http2.ServerHttp2Stream>;
  /** socket is the session's own socket (the session only exposes a proxy). */
  readonly socket: net.Socket | undefined;
  /** idleSince is when the last stream closed (or the session began). */
  idleSince: number;
  /** checking is set while a checkUnsent is scheduled. */
  checking: boolean;
  /** pingSentAt is when the PING awaiting its acknowledgement left (undefined: none waits). */
  pingSentAt: number | undefined;
  /** pingAckedAt is when the last PING was acknowledged (or the session began). */
  pingAckedAt: number;
}

/** SESSION_STATE is where a stream keeps its session's state, for streamClosed. */
const SESSION_STATE = Symbol("session state");
type TrackedStream = http2.ServerHttp2Stream & { [SESSION_STATE]?: SessionState };

/** streamClosed is every tracked stream's close listener: one function, not a closure per stream. */
function streamClosed(this: TrackedStream): void {
  const state = this[SESSION_STATE]!;
  state.open.delete(this);
  if (state.open.size === 0) state.idleSince = performance.now();
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
