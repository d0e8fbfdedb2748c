import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { Backoff, type BackoffOptions } from "./backoff.js";
import type { Random } from "./balancer.js";
import type { MaxineClient } from "./client.js";
import { Emitter } from "./emitter.js";
import { Strategy, type FilterSchema, type Instance } from "./gen/maxine/registry/v1/registry_pb.js";
import { InstanceView, type SyncInfo, type WatchChange } from "./instance-view.js";
import { validateEjectionOptions, type EjectionCounters, type EjectionEvent, type EjectionOptions } from "./outlier-ejector.js";
import { Picker } from "./picker.js";
import type { ReconnectInfo } from "./session.js";
import { sleep, systemTimers, type Timers } from "./timers.js";

/** FilterInit narrows the watched instances, as WatchServicesRequest.filter does. */
export type FilterInit = MessageInitShape<typeof FilterSchema>;

/** WatcherOptions say what to watch and how to reconnect; only services is commonly set. */
export interface WatcherOptions {
  /** namespace to watch; empty or unset means "default". */
  readonly namespace?: string;
  /** services to watch: one name, several, or none (unset or []) for every service of the namespace. */
  readonly services?: string | readonly string[];
  /** filter narrows the watched instances; an instance that stops matching is "removed". */
  readonly filter?: FilterInit;
  /** backoff shapes reconnects after the stream fails (default 100 ms doubling up to 5 s, full jitter). */
  readonly backoff?: BackoffOptions;
  /** random drives RANDOM and WEIGHTED picks (default Math.random). */
  readonly random?: Random;
  /** signal closes the watcher when it aborts. */
  readonly signal?: AbortSignal;
  /** timers is the clock backoff sleeps on (default: global timers and Date.now). */
  readonly timers?: Timers;
  /**
   * ejection tunes the local outlier ejection that report() feeds (see
   * docs/client-ejection.md; defaults in DEFAULT_EJECTION), or turns it off
   * with false. It only changes this watcher's picks, never the registry.
   */
  readonly ejection?: EjectionOptions | false;
  /**
   * start: false creates the watcher without opening the stream; start() or
   * ready() opens it (the lifecycle of the Go and Python SDKs). The default,
   * true, starts it in the constructor.
   */
  readonly start?: boolean;
}

/** WatcherState is where a Watcher's stream stands: "live" once a snapshot was applied on the current stream. */
export type WatcherState = "connecting" | "live" | "backoff" | "closed";

/** WatcherEvents are the events a Watcher emits. */
export interface WatcherEvents {
  /** change: any change of the view; added, updated and removed below carry the same object. */
  change: [change: WatchChange];
  added: [change: WatchChange];
  updated: [change: WatchChange];
  removed: [change: WatchChange];
  /** synced: the view equals a snapshot (the first one, or a reset: then the changes it implied came first). */
  synced: [info: SyncInfo];
  /** state: the stream changed state. */
  state: [state: WatcherState];
  /** disconnect: the stream failed; a resume is scheduled. */
  disconnect: [error: unknown];
  /** reconnect: a new stream delivered its first message after a failure. */
  reconnect: [info: ReconnectInfo];
  /** error: a stream failure (retried) or a fatal error (the watcher closes itself). */
  error: [error: unknown];
  /** close: the watcher stopped; no stream or timer is left. */
  close: [];
  /** ejected: local outlier ejection took an instance out of this watcher's picks (at: timers.now() milliseconds). */
  ejected: [event: WatcherEjectionEvent & { readonly type: "ejected" }];
  /** restored: an ejected instance's trial call succeeded; picks choose it again. */
  restored: [event: WatcherEjectionEvent & { readonly type: "restored" }];
}

/** WatcherEjectionEvent is an EjectionEvent with the service it concerns. */
export type WatcherEjectionEvent = EjectionEvent & { readonly service: string };

/** OutcomeTarget names the instance a call went to: an Instance of the view will do. */
export interface OutcomeTarget {
  readonly service: string;
  readonly instanceId: string;
}

// Errors that a retry cannot fix: the watcher closes and ready() rejects.
const FATAL = new Set([Code.InvalidArgument, Code.Unimplemented, Code.Unauthenticated, Code.PermissionDenied]);

/** WatchOverflowError ends a changes() iteration whose consumer fell more than maxQueued changes behind. */
export class WatchOverflowError extends Error {
  override readonly name = "WatchOverflowError";
}

/**
 * Watcher keeps a live local view of a service's (or several services')
 * instances from WatchServices. It applies the snapshot and then each event
 * in revision order, resumes after a failure from the last revision and
 * registry_id it saw (the server replays what it missed, or sends a reset
 * snapshot whose differences are emitted as changes; it names what it holds,
 * so that a reset carries only those differences), and picks instances
 * locally with the server's algorithms.
 *
 * Lifecycle (the same in the three SDKs): create, start() (idempotent),
 * ready() (starts it if needed and waits for the first snapshot, with an
 * optional bound), use, close() (idempotent). The constructor calls start()
 * unless the options say `start: false`.
 */
export class Watcher extends Emitter<WatcherEvents> {
  private readonly view = new InstanceView();
  private readonly picker: Picker;
  private readonly services: readonly string[];
  private readonly timers: Timers;
  private readonly backoff: Backoff;
  private readonly lifetime = new AbortController();
  private running: Promise<void> | undefined;
  private readonly readyPromise: Promise<void>;
  private resolveReady!: () => void;
  private rejectReady!: (err: unknown) => void;
  private current: WatcherState = "connecting";
  private downSince: number | undefined;
  private closing: Promise<void> | undefined;
  /** failure is the fatal error that closed the watcher, if one did. */
  private failure: unknown;
  // the current stream named the view's holdings; a server refused them (so none are named again)
  private sentHeld = false;
  private heldRefused = false;
  private readonly onAbort = (): void => void this.close();

  constructor(
    private readonly client: MaxineClient,
    private readonly opts: WatcherOptions = {},
  ) {
    super();
    this.services = typeof opts.services === "string" ? [opts.services] : [...(opts.services ?? [])];
    this.timers = opts.timers ?? systemTimers;
    this.backoff = new Backoff(opts.backoff);
    const timers = this.timers;
    if (opts.ejection !== false) validateEjectionOptions(opts.ejection); // refused here, not at the first pick
    this.picker = new Picker(
      this.view,
      opts.random,
      opts.ejection === false
        ? undefined
        : {
            options: opts.ejection ?? {},
            now: () => timers.now(),
            onEvent: (service, e) => {
              if (e.type === "ejected") this.emit("ejected", { ...e, service });
              else this.emit("restored", { ...e, service });
            },
          },
    );
    this.readyPromise = new Promise((resolve, reject) => {
      this.resolveReady = resolve;
      this.rejectReady = reject;
    });
    this.readyPromise.catch(() => undefined); // rejected only for whoever awaits ready()
    opts.signal?.addEventListener("abort", this.onAbort, { once: true });
    if (opts.signal?.aborted) void this.close();
    else if (opts.start !== false) this.start();
  }

  /**
   * start opens the stream in the background and returns the watcher; it is
   * idempotent, and a no-op once the watcher is closing.
   */
  start(): this {
    if (this.running === undefined && this.closing === undefined) this.running = this.run();
    return this;
  }

  /** state is where the stream stands. */
  get state(): WatcherState {
    return this.current;
  }

  /** revision is the revision the view is up to date at (0 before the first snapshot). */
  get revision(): bigint {
    return this.view.revision;
  }

  /** registryId names the registry the revision belongs to. */
  get registryId(): string {
    return this.view.registryId;
  }

  /**
   * ready starts the watcher if it was not started and resolves once the
   * first snapshot was applied; it rejects if the watcher closes first, or
   * after timeoutMs (when given) with a TimeoutError, the watcher going on.
   */
  ready(timeoutMs?: number): Promise<void> {
    this.start();
    if (timeoutMs === undefined) return this.readyPromise;
    if (!(timeoutMs >= 0)) return Promise.reject(new TypeError(`ready: timeoutMs must be >= 0, got ${timeoutMs}`));
    return new Promise((resolve, reject) => {
      const timer = this.timers.setTimeout(() => {
        const err = new Error(`watcher: no snapshot within ${timeoutMs} ms`);
        err.name = "TimeoutError";
        reject(err);
      }, timeoutMs);
      this.readyPromise.then(resolve, reject).finally(() => this.timers.clearTimeout(timer));
    });
  }

  /** instances returns the view: one service's instances, or all, in (service, instance_id) order. */
  instances(service?: string): Instance[] {
    const names = service !== undefined ? [service] : this.view.serviceNames();
    return names.flatMap((s) => this.view.sorted(s));
  }

  /** get returns one instance of the view, or undefined. */
  get(service: string, instanceId: string): Instance | undefined {
    return this.view.get(service, instanceId);
  }

  /**
   * pick chooses a SERVING instance locally, with no network call, or returns
   * undefined when there is none. CONSISTENT_HASH and RENDEZVOUS need hashKey
   * and choose what Discover would; service may be omitted when the watcher
   * watches exactly one service.
   */
  pick(strategy: Strategy = Strategy.ROUND_ROBIN, hashKey?: string, service?: string): Instance | undefined {
    const s = service ?? (this.services.length === 1 ? this.services[0]! : undefined);
    if (s === undefined) throw new TypeError("pick: this watcher watches several services; name the service to pick from");
    return this.picker.pick(s, strategy, hashKey);
  }

  /**
   * report tells the watcher's pick how a call to an instance went: success
   * if it answered (whatever the answer), failure if it could not serve
   * (unavailable, timed out, reset). Failures eject the instance from this
   * watcher's picks under the rules of docs/client-ejection.md; the
   * registry is never told. The interceptors (grpcJsOutcomeInterceptor,
   * connectOutcomeInterceptor) call it for every call.
   */
  report(target: OutcomeTarget, success: boolean): void {
    this.picker.report(target.service, target.instanceId, success);
  }

  /** ejectionCounters returns the ejections and restorations so far and the instances ejected now, of one service or all. */
  ejectionCounters(service?: string): EjectionCounters {
    return this.picker.ejectionCounters(service);
  }

  /**
   * changes yields every change of the view from now on (the same objects
   * as the "change" event), until close, or until a fatal error, which it
   * throws. The subscription starts when this is called, so instances()
   * read just before plus the changes equal the view. A consumer more than
   * maxQueued changes behind (default 10,000) gets the changes queued so
   * far and then a WatchOverflowError; the watcher's view stays correct,
   * and changes() may be called again after reading instances(). Leaving
   * the loop (break, return, throw) unsubscribes.
   */
  changes(opts: { readonly maxQueued?: number } = {}): AsyncIterableIterator<WatchChange> {
    const max = opts.maxQueued ?? 10_000;
    if (!Number.isInteger(max) || max < 1) throw new TypeError(`changes: maxQueued must be an integer >= 1, got ${max}`);
    const queue: WatchChange[] = [];
    let wake: (() => void) | undefined;
    let end: { readonly error?: unknown } | undefined;
    const finish = (how: { readonly error?: unknown }): void => {
      if (end !== undefined) return;
      end = how;
      offChange();
      offClose();
      wake?.();
    };
    const offChange = this.on("change", (change) => {
      if (queue.length >= max) {
        finish({ error: new WatchOverflowError(`watcher: the consumer of changes() fell more than ${max} changes behind (maxQueued)`) });
        return;
      }
      queue.push(change);
      wake?.();
    });
    const offClose = this.on("close", () => finish(this.failure === undefined ? {} : { error: this.failure }));
    if (this.state === "closed") finish(this.failure === undefined ? {} : { error: this.failure });
    return (async function* iterate(): AsyncGenerator<WatchChange> {
      try {
        for (;;) {
          const next = queue.shift();
          if (next !== undefined) {
            yield next;
            continue;
          }
          if (end !== undefined) {
            if (end.error !== undefined) throw end.error;
            return;
          }
          await new Promise<void>((resolve) => (wake = resolve));
          wake = undefined;
        }
      } finally {
        finish({});
      }
    })();
  }

  /** The watcher is async-iterable: `for await (const change of watcher)` is changes(). */
  [Symbol.asyncIterator](): AsyncIterableIterator<WatchChange> {
    return this.changes();
  }

  /** close ends the stream and any backoff timer; it is idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.opts.signal?.removeEventListener("abort", this.onAbort);
      this.lifetime.abort(new ConnectError("watcher: closed", Code.Canceled));
      await this.running;
      this.rejectReady(new Error("watcher: closed before the first snapshot"));
      this.setState("closed");
      this.emit("close");
      this.removeAllListeners();
    })();
    return this.closing;
  }

  private async run(): Promise<void> {
    const signal = this.lifetime.signal;
    while (!signal.aborted) {
      this.setState("connecting");
      const error = await this.stream(signal);
      this.view.abandonSnapshot();
      if (signal.aborted) break;
      const code = ConnectError.from(error).code;
      if (code === Code.InvalidArgument && this.sentHeld) {
        // a server whose MAXINE_WATCH_MAX_HELD is lower than what the view holds: resume without holdings from now on
        this.heldRefused = true;
        continue;
      }
      if (FATAL.has(code)) {
        this.failure = error;
        this.emit("error", error);
        this.rejectReady(error);
        void this.close();
        break;
      }
      this.downSince ??= this.timers.now();
      this.emit("disconnect", error);
      this.emit("error", error);
      this.setState("backoff");
      try {
        await sleep(this.backoff.next(), signal, this.timers);
      } catch {
        break; // closed while waiting
      }
    }
  }

  /**
   * stream runs one WatchServices call to its end and returns the error that
   * ended it. A resume names what the view holds (held), so that a server
   * that cannot replay sends only the differences.
   */
  private async stream(signal: AbortSignal): Promise<unknown> {
    const resume = this.view.synced;
    const held = resume && !this.heldRefused ? this.view.holdings() : undefined;
    this.sentHeld = held !== undefined;
    const request = {
      namespace: this.opts.namespace ?? "",
      services: [...this.services],
      filter: this.opts.filter,
      resumeRevision: resume ? this.view.revision : 0n,
      registryId: resume ? this.view.registryId : "",
      held,
    };
    let first = true;
    try {
      for await (const msg of this.client.watchServices(request, { signal })) {
        if (first) {
          first = false;
          this.connected(resume);
        }
        const { changes, synced } = this.view.apply(msg);
        for (const change of changes) {
          this.emit("change", change);
          this.emit(change.type, change);
        }
        if (synced !== undefined) {
          this.setState("live");
          this.emit("synced", synced);
          this.resolveReady();
        }
      }
      return new ConnectError("watch: the server ended the stream", Code.Unavailable);
    } catch (err) {
      return err;
    }
  }

  private connected(resumed: boolean): void {
    const attempts = this.backoff.attempts;
    this.backoff.reset();
    if (resumed) this.setState("live"); // a resume replays events, then a progress bookmark: no snapshot
    if (this.downSince !== undefined) {
      const downMs = this.timers.now() - this.downSince;
      this.downSince = undefined;
      this.emit("reconnect", { attempts, downMs });
    }
  }

  private setState(state: WatcherState): void {
    if (this.current === state) return;
    this.current = state;
    this.emit("state", state);
  }
}
