import type { DescMessage, Message } from "@bufbuild/protobuf";
import { ANONYMOUS_PRINCIPAL, type Access } from "../domain/access.js";
import type { Connection } from "./connections.js";

/** Protocol is the RPC protocol a call arrived with; framing only, never behaviour. */
export type Protocol = "grpc" | "grpc-web" | "connect";

/** MethodKind is how many messages flow each way. */
export type MethodKind = "unary" | "server_streaming" | "client_streaming" | "bidi_streaming";

/** MethodInfo names one RPC, for interceptors (metrics labels, logs, authorization). */
export interface MethodInfo {
  /** service is the fully-qualified protobuf service name, e.g. maxine.registry.v1.RegistryService. */
  readonly service: string;
  /** name is the method's name, e.g. Register. */
  readonly name: string;
  /** path is the HTTP path the method is served at: /service/name. */
  readonly path: string;
  readonly kind: MethodKind;
  readonly input: DescMessage;
  readonly output: DescMessage;
}

/** Principal is who a call acts for, set by the authentication interceptor. */
export interface Principal {
  /** name identifies the caller in logs and audit trails, and owns the instances it registers; "anonymous" while authentication is off. */
  readonly name: string;
  /** roles are what the policy grants permissions to. */
  readonly roles: readonly string[];
  /** source is where the principal was proven: a token of the tokens file, a JWT, a client certificate, or none (authentication off, or a public method). */
  readonly source: "token" | "jwt" | "mtls" | "none";
}

/** ANONYMOUS is the principal of every call while authentication is off. */
export const ANONYMOUS: Principal = { name: ANONYMOUS_PRINCIPAL, roles: [], source: "none" };

/**
 * CallSignal tells a call that it must end: the client cancelled, its
 * deadline passed, or the server drains. Unlike AbortSignal, adding and
 * removing a handler is O(1) with no event objects, which matters with tens
 * of thousands of open streams.
 */
/**
 * AbortListener is told when a call must end: a function, or an object
 * with callAborted (a long-lived call object listens as itself, with no
 * closure for each of the many streams held open).
 */
export type AbortListener = ((reason: unknown) => void) | { callAborted(reason: unknown): void };

export class CallSignal {
  // Most calls have one handler (the stream's own end): it is kept in a
  // field, and a Set is made only for a second one.
  private first: AbortListener | undefined;
  private more: Set<AbortListener> | undefined;
  private ended: { reason: unknown } | undefined;

  /** aborted reports whether the call must end. */
  get aborted(): boolean {
    return this.ended !== undefined;
  }

  /** reason is the error the call ends with (DEADLINE_EXCEEDED, CANCELED, UNAVAILABLE). */
  get reason(): unknown {
    return this.ended?.reason;
  }

  /** onAbort calls fn once when the call must end (at once if it already must); offAbort(fn) removes it. */
  onAbort(fn: AbortListener): void {
    if (this.ended !== undefined) tell(fn, this.ended.reason);
    else if (this.first === undefined) this.first = fn;
    else (this.more ??= new Set()).add(fn);
  }

  offAbort(fn: AbortListener): void {
    if (this.first === fn) this.first = undefined;
    else this.more?.delete(fn);
  }

  /** abort ends the call with reason; later calls are ignored. */
  abort(reason: unknown): void {
    if (this.ended !== undefined) return;
    this.ended = { reason };
    const first = this.first;
    const more = this.more;
    this.first = undefined;
    this.more = undefined;
    if (first !== undefined) tell(first, reason);
    if (more !== undefined) for (const h of more) tell(h, reason);
  }
}

function tell(l: AbortListener, reason: unknown): void {
  if (typeof l === "function") l(reason);
  else l.callAborted(reason);
}

/**
 * CallContext is one call as every interceptor and handler sees it, whatever
 * the protocol: the method, the request headers, the peer and its
 * connection, the deadline, the principal, and the signal that ends it.
 */
export interface CallContext {
  readonly method: MethodInfo;
  readonly protocol: Protocol;
  /** header reads a request header (lower-case name). */
  header(name: string): string | undefined;
  /** headers lists every request header (lower-case names, HTTP/2 pseudo-headers left out), for the few handlers that need them all. */
  headers(): Iterable<[string, string]>;
  /** url is the request's URL (path and query) where the framing keeps it: Connect GET requests carry their message in the query. */
  readonly url: string | undefined;
  /**
   * responseHeader holds response headers the handler adds; made on first
   * use, so calls that set none cost nothing. Every framing sends them with
   * the response's headers (set them before a stream's first answer).
   */
  readonly responseHeader: Headers;
  /** responseTrailer holds response trailers the handler adds, sent with the status: gRPC trailers, gRPC-Web's trailer frame, Connect's `trailer-` headers or end-of-stream metadata. */
  readonly responseTrailer: Headers;
  /** peer is the client's address as the socket reports it. */
  readonly peer: string;
  /** connection holds the per-connection counters and budgets of the caller's connection. */
  readonly connection: Connection;
  /** timeoutMs is the deadline the client set (grpc-timeout, connect-timeout-ms), if any. */
  readonly timeoutMs: number | undefined;
  /** timeoutError is set when the client's timeout header was malformed; the deadline interceptor refuses the call. */
  readonly timeoutError?: Error | undefined;
  /** principal is who the call acts for; the authentication interceptor sets it before any handler runs. */
  principal: Principal;
  /** access is what the principal may do, as the core asks it (Access.allows); everything while authentication is off. */
  access: Access;
  readonly signal: CallSignal;
  /** startedAt is when the call started (performance.now()), for durations. */
  readonly startedAt: number;
  /** deadline is the deadline interceptor's timer, while one runs. */
  deadline: ReturnType<typeof setTimeout> | undefined;
}

/**
 * ResponseMetadata is the headers and trailers a call's handler set, as the
 * framing reads them: undefined when the handler set none.
 */
export interface ResponseMetadata {
  readonly headerIfSet: Headers | undefined;
  readonly trailerIfSet: Headers | undefined;
}

/**
 * Interceptor is one link of the chain that every call of every method
 * passes through, on every protocol. Its two hooks have fastify's shape
 * (onRequest / onResponse) rather than connect-go's wrappers: onStart runs,
 * in chain order, before the handler, and may refuse the call (throw, or
 * reject the promise it returns: the next link waits for it) or prepare its
 * context (principal, deadline); onEnd runs, in reverse order, once the
 * call ended, for every link whose onStart let it through. onEnd gets the
 * error the call ended with (undefined for success) and returns the one it
 * ends with: the same, or a replacement (error mapping).
 *
 * A wrapper (next) => (ctx) => next(ctx).then(...) would hold a promise and
 * closures per link for a call's whole life: with tens of thousands of
 * heartbeat streams held for hours, that cost more memory than the streams
 * themselves. Hooks cost nothing between the two ends.
 */
export interface Interceptor {
  onStart?(ctx: CallContext): void | Promise<void>;
  onEnd?(ctx: CallContext, err: unknown): unknown;
}

/**
 * Outgoing is an answer ready to write, in whatever form is cheapest for
 * the protocol: encoded bytes (a prepared message, as grpc-go's
 * PreparedMsg), a whole 5-byte enveloped frame, JSON text, or the message.
 * Framing picks the first form its codec can use.
 */
export interface Outgoing {
  /** message builds the answer as a protobuf-es message (the reference form). */
  message(): Message;
  /** bytes, when set, is the answer in the protobuf binary format. */
  bytes?(): Uint8Array;
  /** frame, when set, is bytes() already enveloped (flags 0, big-endian length): gRPC, gRPC-Web and Connect streams share it. */
  frame?(): Uint8Array;
  /** json, when set, is the answer in the protobuf JSON mapping (text, or its UTF-8 bytes). */
  json?(): string | Uint8Array;
}

/** outgoing wraps a plain message as an Outgoing. */
export function outgoing(m: Message): Outgoing {
  return { message: () => m };
}
