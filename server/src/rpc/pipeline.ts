import { OPEN, type Access } from "../domain/access.js";
import type { Connection } from "./connections.js";
import {
  ANONYMOUS,
  CallSignal,
  type CallContext,
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

/**
 * CallRunner is what a framing gives the pipeline for one call: run does the
 * call's work once every interceptor let it through (reads the request, runs
 * the handler; a value or a promise of it: a unary call's answer, or the
 * end of a stream), and end receives the outcome once every interceptor saw
 * it (err undefined for success, else the mapped error), to write it.
 */
export interface CallRunner {
  run(ctx: RunningCall): unknown;
  end(ctx: CallContext & ResponseMetadata, value: unknown, err: unknown): void;
}

/**
 * LATER is what CallRunner.run returns for a call that ends by itself
 * later, with ctx.complete: a bidirectional stream. A stream held open for
 * hours then holds no promise, no reaction and no closures for its end.
 */
export const LATER: unique symbol = Symbol("the call completes later");

/** RunningCall is a call's context as its runner sees it. */
export interface RunningCall extends CallContext, ResponseMetadata {
  /** complete ends a call whose run returned LATER (err undefined for success); later calls are ignored. */
  complete(value: unknown, err: unknown): void;
}

/**
 * Call is a CallContext, and its own signal (one object, not two, for each
 * of the many streams held open), and the state of its passage through the
 * chain. When it must end (deadline, cancel, shutdown), it ends at once:
 * a unary call waiting on the store is answered, and a stream's handler,
 * which ends itself on the signal, finds it ended.
 */
class Call extends CallSignal implements RunningCall {
  readonly method: MethodInfo;
  readonly protocol: Protocol;
  readonly url: string | undefined;
  readonly peer: string;
  readonly connection: Connection;
  readonly timeoutMs: number | undefined;
  readonly timeoutError: Error | undefined;
  readonly startedAt = performance.now();
  private readonly request: RequestHeaders;
  principal: Principal = ANONYMOUS;
  access: Access = OPEN;
  headerIfSet: Headers | undefined;
  trailerIfSet: Headers | undefined;
  deadline: ReturnType<typeof setTimeout> | undefined;
  /** reached counts the interceptors whose onStart let the call through (those whose onEnd run). */
  reached = 0;
  settled = false;

  constructor(
    init: CallInit,
    readonly runner: CallRunner,
    private readonly pipeline: Pipeline,
  ) {
    super();
    this.method = init.method;
    this.protocol = init.protocol;
    this.request = init.request;
    this.url = init.url;
    this.peer = init.peer;
    this.connection = init.connection;
    this.timeoutMs = init.timeoutMs;
    this.timeoutError = init.timeoutError;
  }

  get signal(): CallSignal {
    return this;
  }

  override abort(reason: unknown): void {
    if (this.aborted) return;
    super.abort(reason);
    this.pipeline.settle(this, undefined, reason);
  }

  complete(value: unknown, err: unknown): void {
    this.pipeline.settle(this, value, err);
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
 * path, and one interceptor chain (error mapping, metrics, logging,
 * deadline, authentication) around every call of every method, whichever
 * protocol framed it. A framing starts a call with run and a CallRunner;
 * connect-es's routes, which await, use start.
 */
export class Pipeline {
  private readonly byPath = new Map<string, MethodHandler>();

  constructor(
    services: readonly Service[],
    private readonly interceptors: readonly Interceptor[],
  ) {
    for (const s of services) for (const m of s.methods) this.byPath.set(m.info.path, m);
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
   * run makes a call's context and passes it through the chain: runner.run
   * once every interceptor let it through, runner.end once it ended (this
   * may happen before run returns, for a call refused at once).
   */
  run(init: CallInit, runner: CallRunner): CallContext & ResponseMetadata {
    const call = new Call(init, runner, this);
    this.proceed(call, 0);
    return call;
  }

  /** start is run for a framing that awaits: done settles with the outcome, rejected with the mapped error. */
  start(init: CallInit, run: (ctx: CallContext) => unknown): { ctx: CallContext & ResponseMetadata; done: Promise<unknown> } {
    let resolve!: (v: unknown) => void;
    let reject!: (err: unknown) => void;
    const done = new Promise<unknown>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    const ctx = this.run(init, { run, end: (_ctx, value, err) => (err === undefined ? resolve(value) : reject(err)) });
    return { ctx, done };
  }

  /** proceed runs the onStart hooks from the one at index from, then the call. */
  private proceed(call: Call, from: number): void {
    const chain = this.interceptors;
    for (let i = from; i < chain.length; i++) {
      if (call.settled) return;
      call.reached = i;
      const ic = chain[i]!;
      if (ic.onStart === undefined) continue;
      let started: void | Promise<void>;
      try {
        started = ic.onStart(call);
      } catch (err) {
        return this.settle(call, undefined, err);
      }
      if (started instanceof Promise) {
        started.then(
          () => this.proceed(call, i + 1),
          (err: unknown) => this.settle(call, undefined, err),
        );
        return;
      }
    }
    if (call.settled) return;
    call.reached = chain.length;
    let out: unknown;
    try {
      out = call.runner.run(call);
    } catch (err) {
      return this.settle(call, undefined, err);
    }
    if (out === LATER) return;
    if (out instanceof Promise) {
      out.then(
        (v: unknown) => this.settle(call, v, undefined),
        (err: unknown) => this.settle(call, undefined, err ?? new Error("the call failed with no reason")),
      );
    } else this.settle(call, out, undefined);
  }

  /** settle ends a call once: the onEnd hooks of the interceptors it passed, in reverse order, then the framing's end. */
  settle(ctx: CallContext, value: unknown, err: unknown): void {
    const call = ctx as Call;
    if (call.settled) return;
    call.settled = true;
    const chain = this.interceptors;
    for (let i = call.reached - 1; i >= 0; i--) {
      const ic = chain[i]!;
      if (ic.onEnd === undefined) continue;
      try {
        err = ic.onEnd(call, err);
      } catch (thrown) {
        err = thrown;
      }
    }
    call.runner.end(call, value, err);
  }
}
