import type { Connection } from "./connections.js";
import {
  ANONYMOUS,
  CallSignal,
  type CallContext,
  type CallHandler,
  type Interceptor,
  type MethodInfo,
  type Principal,
  type Protocol,
  type ResponseMetadata,
} from "./context.js";
import type { MethodHandler, Service } from "./service.js";

/** RequestHeaders is where a call's request headers are read: the framing's request. */
export interface RequestHeaders {
  header(name: string): string | undefined;
  headers(): Iterable<[string, string]>;
}

/** CallInit is what the framing knows of a call before it runs. */
export interface CallInit {
  readonly method: MethodInfo;
  readonly protocol: Protocol;
  readonly request: RequestHeaders;
  readonly url?: string | undefined;
  readonly peer: string;
  readonly connection: Connection;
  readonly timeoutMs: number | undefined;
  readonly timeoutError?: Error | undefined;
}

/** Call is a CallContext with the function that runs its handler once the interceptors let it through. */
class Call implements CallContext, ResponseMetadata {
  readonly method: MethodInfo;
  readonly protocol: Protocol;
  readonly url: string | undefined;
  readonly peer: string;
  readonly connection: Connection;
  readonly timeoutMs: number | undefined;
  readonly timeoutError: Error | undefined;
  private readonly request: RequestHeaders;
  principal: Principal = ANONYMOUS;
  readonly signal = new CallSignal();
  headerIfSet: Headers | undefined;
  trailerIfSet: Headers | undefined;

  constructor(
    init: CallInit,
    readonly invoke: (ctx: CallContext) => Promise<unknown>,
  ) {
    this.method = init.method;
    this.protocol = init.protocol;
    this.request = init.request;
    this.url = init.url;
    this.peer = init.peer;
    this.connection = init.connection;
    this.timeoutMs = init.timeoutMs;
    this.timeoutError = init.timeoutError;
  }

  header(name: string): string | undefined {
    return this.request.header(name);
  }

  headers(): Iterable<[string, string]> {
    return this.request.headers();
  }

  get responseHeader(): Headers {
    return (this.headerIfSet ??= new Headers());
  }

  get responseTrailer(): Headers {
    return (this.trailerIfSet ??= new Headers());
  }
}

/**
 * Pipeline is the one way every call is served: the services' handlers by
 * path, and one interceptor chain (deadline, authentication, metrics,
 * logging, error mapping) around every call of every method, whichever
 * protocol framed it. Framing code builds a call with start and gives it the
 * function that runs the handler; the chain is composed once.
 */
export class Pipeline {
  private readonly byPath = new Map<string, MethodHandler>();
  private readonly chain: CallHandler;

  constructor(services: readonly Service[], interceptors: readonly Interceptor[]) {
    for (const s of services) for (const m of s.methods) this.byPath.set(m.info.path, m);
    this.chain = interceptors.reduceRight<CallHandler>((next, i) => i(next), (ctx) => (ctx as Call).invoke(ctx));
  }

  /** lookup finds the handler served at an HTTP path. */
  lookup(path: string): MethodHandler | undefined {
    return this.byPath.get(path);
  }

  /** services lists every mounted method. */
  get methods(): IterableIterator<MethodHandler> {
    return this.byPath.values();
  }

  /**
   * start makes a call's context and runs it through the chain: run receives
   * the context once every interceptor let the call through. The returned
   * context is available at once (signal, principal); the promise settles
   * when the call ends, rejected with a ConnectError.
   */
  start(init: CallInit, run: (ctx: CallContext) => Promise<unknown>): { ctx: CallContext & ResponseMetadata; done: Promise<unknown> } {
    const ctx = new Call(init, run);
    return { ctx, done: this.chain(ctx) };
  }
}
