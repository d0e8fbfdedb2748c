import { createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
  type Http2SessionManager,
} from "@connectrpc/connect-node";
import { bearerInterceptor, tlsNodeOptions, type TlsOptions, type TokenSource } from "./credentials.js";
import { createFailoverTransport } from "./failover.js";
import { RegistryService } from "./gen/maxine/registry/v1/registry_pb.js";

/** MaxineClient is a typed connect-es client of maxine.registry.v1.RegistryService. */
export type MaxineClient = Client<typeof RegistryService>;

/** Protocol is the RPC protocol a client speaks; a Maxine server answers all three on one port. */
export type Protocol = "connect" | "grpc" | "grpc-web";

/** MaxineClientOptions configure createMaxineClient and createMaxineTransport. */
export interface MaxineClientOptions {
  /**
   * baseUrl is the server's address, e.g. "http://127.0.0.1:7400" (https
   * for TLS), or several addresses of replicas sharing one registry (Redis
   * mode): calls then go to one at a time and move to the next when it
   * fails (see createFailoverTransport).
   */
  readonly baseUrl: string | readonly string[];
  /** protocol defaults to "grpc". */
  readonly protocol?: Protocol;
  /**
   * httpVersion defaults to "2". "1.1" works for unary calls and server
   * streams (Watcher) with "connect" and "grpc-web"; gRPC and the
   * Heartbeat stream (Session) need HTTP/2.
   */
  readonly httpVersion?: "1.1" | "2";
  /**
   * sessionManager is the HTTP/2 connection to use. Pass your own
   * Http2SessionManager to share one connection between clients or to close
   * it yourself (abort()); by default each transport opens its own, which
   * connect-node lets idle out and never keeps the process alive when idle.
   */
  readonly sessionManager?: Http2SessionManager;
  /**
   * pingIntervalMs is how often an HTTP/2 connection with open calls (a
   * Session's heartbeat stream, a Watcher) is sent a PING, to find a peer
   * that went silent without closing: a stopped server, a dead network path
   * (default 10,000 ms; 0: no PINGs). The calls on a connection whose PING
   * goes unanswered for pingTimeoutMs fail UNAVAILABLE, and Sessions and
   * Watchers reconnect (to the next baseUrl, if several). Idle connections
   * are not pinged. Applies to the connections this client opens, not to a
   * sessionManager you pass.
   */
  readonly pingIntervalMs?: number;
  /** pingTimeoutMs is how long a PING may go unanswered before the connection is dropped (default 5,000 ms). */
  readonly pingTimeoutMs?: number;
  /** useBinaryFormat selects protobuf (default) or JSON for "connect" and "grpc-web". */
  readonly useBinaryFormat?: boolean;
  /** interceptors run around every call (auth headers, logging, tests that inject failures). */
  readonly interceptors?: Interceptor[];
  /** defaultTimeoutMs is a deadline for calls that set none; streams normally set none. */
  readonly defaultTimeoutMs?: number;
  /**
   * token is sent as `authorization: Bearer <token>` with every call: a
   * string, or a function called before each call and each (re)opened
   * stream, for tokens that are refreshed.
   */
  readonly token?: TokenSource;
  /**
   * tls sets the CA that signed the server's certificate and, for mTLS, the
   * client certificate and key, for https:// addresses. With your own
   * sessionManager, give these to it instead (connect-node ignores them then).
   */
  readonly tls?: TlsOptions;
}

/**
 * createMaxineTransport builds the connect-node transport createMaxineClient
 * uses, for callers that make their own clients or share one transport.
 */
export function createMaxineTransport(opts: MaxineClientOptions): Transport {
  if (typeof opts.baseUrl !== "string") {
    const urls = [...opts.baseUrl];
    if (urls.length === 0) throw new TypeError("createMaxineClient: baseUrl must name at least one address");
    if (urls.length === 1) return createMaxineTransport({ ...opts, baseUrl: urls[0]! });
    if (opts.sessionManager !== undefined) throw new TypeError("createMaxineClient: sessionManager needs a single baseUrl");
    return createFailoverTransport(urls.map((baseUrl) => createMaxineTransport({ ...opts, baseUrl })));
  }
  const protocol = opts.protocol ?? "grpc";
  if (opts.tls !== undefined && !opts.baseUrl.startsWith("https://")) {
    throw new TypeError(`createMaxineClient: tls needs an https:// baseUrl, got ${JSON.stringify(opts.baseUrl)}`);
  }
  const nodeOptions = opts.tls !== undefined ? { nodeOptions: tlsNodeOptions(opts.tls) } : {};
  const common = {
    baseUrl: opts.baseUrl,
    // the token goes first: the caller's interceptors see (and may replace) the header
    interceptors: [...(opts.token !== undefined ? [bearerInterceptor(opts.token)] : []), ...(opts.interceptors ?? [])],
    ...nodeOptions,
    ...(opts.defaultTimeoutMs !== undefined ? { defaultTimeoutMs: opts.defaultTimeoutMs } : {}),
  };
  const h2 = {
    httpVersion: "2" as const,
    ...(opts.sessionManager !== undefined ? { sessionManager: opts.sessionManager } : {}),
    ...keepalive(opts),
  };
  const http = (opts.httpVersion ?? "2") === "2" ? h2 : { httpVersion: "1.1" as const };
  switch (protocol) {
    case "grpc":
      if (opts.httpVersion === "1.1") throw new TypeError('createMaxineClient: protocol "grpc" needs httpVersion "2"');
      return createGrpcTransport({ ...common, ...h2 });
    case "grpc-web":
      return createGrpcWebTransport({ ...common, ...http, useBinaryFormat: opts.useBinaryFormat ?? true });
    case "connect":
      return createConnectTransport({ ...common, ...http, useBinaryFormat: opts.useBinaryFormat ?? true });
    default:
      throw new TypeError(`createMaxineClient: protocol must be "connect", "grpc" or "grpc-web", got ${JSON.stringify(protocol)}`);
  }
}

/** DEFAULT_PING_INTERVAL_MS and DEFAULT_PING_TIMEOUT_MS are the keepalive of the connections a client opens (MaxineClientOptions). */
export const DEFAULT_PING_INTERVAL_MS = 10_000;
export const DEFAULT_PING_TIMEOUT_MS = 5_000;

/** keepalive turns pingIntervalMs / pingTimeoutMs into connect-node's options, checking them. */
function keepalive(opts: MaxineClientOptions): { pingIntervalMs: number; pingTimeoutMs: number } {
  const interval = opts.pingIntervalMs ?? DEFAULT_PING_INTERVAL_MS;
  const timeout = opts.pingTimeoutMs ?? DEFAULT_PING_TIMEOUT_MS;
  if (!Number.isFinite(interval) || interval < 0) throw new TypeError(`createMaxineClient: pingIntervalMs must be a number of milliseconds >= 0 (0: no PINGs), got ${interval}`);
  if (!Number.isFinite(timeout) || timeout <= 0) throw new TypeError(`createMaxineClient: pingTimeoutMs must be a number of milliseconds > 0, got ${timeout}`);
  return { pingIntervalMs: interval === 0 ? Number.POSITIVE_INFINITY : interval, pingTimeoutMs: timeout };
}

/**
 * createMaxineClient returns a RegistryService client. It is a plain
 * connect-es client: every RPC of the proto is a method, errors are
 * ConnectErrors, and the Session and Watcher of this SDK build on it.
 */
export function createMaxineClient(opts: MaxineClientOptions): MaxineClient {
  return createClient(RegistryService, createMaxineTransport(opts));
}
