import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { durationFromMs, durationMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { Backoff, beatDelay, type BackoffOptions } from "./backoff.js";
import type { MaxineClient } from "./client.js";
import { Emitter } from "./emitter.js";
import { BeatResult, InstanceSchema, type HeartbeatResponse } from "./gen/maxine/registry/v1/registry_pb.js";
import { HeartbeatStream } from "./heartbeat-stream.js";
import { InstanceHandle, keyString, type HandleOwner } from "./instance-handle.js";
import { systemTimers, within, type TimerHandle, type Timers } from "./timers.js";

/** InstanceInit is an instance to register: any subset of Instance's fields (the server requires service, host and port). */
export type InstanceInit = MessageInitShape<typeof InstanceSchema>;

/** RegisterOptions configure one Session.register. */
export interface RegisterOptions {
  /** ttlMs is the lease TTL to ask for; unset uses the server's default (10 s unless configured). */
  readonly ttlMs?: number;
}

/** SessionState is where a Session's heartbeat stream stands. */
export type SessionState = "idle" | "connecting" | "connected" | "backoff" | "closing" | "closed";

/** SessionOptions configure a Session; every field has a default. */
export interface SessionOptions {
  /** heartbeatIntervalMs overrides the beat interval, otherwise a third of the smallest lease TTL. */
  readonly heartbeatIntervalMs?: number;
  /** ackTimeoutMs is how long a heartbeat may go unanswered before the stream is dropped and reopened (default: two intervals). */
  readonly ackTimeoutMs?: number;
  /** backoff shapes reconnects after the stream fails (default 100 ms doubling up to 5 s, full jitter). */
  readonly backoff?: BackoffOptions;
  /** closeTimeoutMs bounds each step of close: deregistrations, then the stream's end (default 2000 ms). */
  readonly closeTimeoutMs?: number;
  /** signal closes the session when it aborts. */
  readonly signal?: AbortSignal;
  /** timers is the clock (default: global timers and Date.now). */
  readonly timers?: Timers;
}

/** ReconnectInfo describes a heartbeat stream that came back after a failure. */
export interface ReconnectInfo {
  /** attempts counts the failed attempts before this one succeeded. */
  readonly attempts: number;
  /** downMs is how long the session had no working stream. */
  readonly downMs: number;
}

/** SessionEvents are the events a Session emits. */
export interface SessionEvents {
  /** state: the stream changed state. */
  state: [state: SessionState];
  /** disconnect: the heartbeat stream failed; a reconnect is scheduled. */
  disconnect: [error: unknown];
  /** reconnect: a new stream answered after a failure; every instance was heartbeated on it. */
  reconnect: [info: ReconnectInfo];
  /** reregister: the server did not know an instance (as after a restart) and it was registered again: by the stream's first beat (REGISTERED), or by Register after an UNKNOWN beat. */
  reregister: [handle: InstanceHandle];
  /** error: a failure the session handles itself (stream failure, failed re-registration, rejected beat). */
  error: [error: unknown];
  /** close: close finished; nothing of the session is left running. */
  close: [];
}

interface Entry {
  readonly handle: InstanceHandle;
  waiters: Array<{ seq: bigint; resolve: () => void; reject: (err: unknown) => void }>;
  reregistering: boolean;
}

/**
 * Session keeps a process's instances alive over ONE Heartbeat stream. It
 * beats every instance at a third of the smallest lease TTL, reopens the
 * stream with jittered backoff when it fails and beats everything at once on
 * the new stream (within the server's grace this causes no watch event),
 * registers again any instance the server forgot (as after a server
 * restart: the new stream's first beat carries each instance whole, and an
 * UNKNOWN ack leads to a Register), and on close deregisters its instances before ending the
 * stream. It needs an HTTP/2 client (createMaxineClient's default).
 */
export class Session extends Emitter<SessionEvents> implements HandleOwner {
  private readonly timers: Timers;
  private readonly backoff: Backoff;
  private readonly closeTimeoutMs: number;
  private readonly entries = new Map<string, Entry>();
  private readonly inflight = new Set<Promise<unknown>>();
  private stream: HeartbeatStream | undefined;
  private current: SessionState = "idle";
  private sequence = 0n;
  private tickTimer: TimerHandle | undefined;
  private tickAt = Infinity;
  private reconnectTimer: TimerHandle | undefined;
  private downSince: number | undefined;
  private closing: Promise<void> | undefined;
  private readonly onAbort = (): void => void this.close();

  constructor(
    private readonly client: MaxineClient,
    private readonly opts: SessionOptions = {},
  ) {
    super();
    this.timers = opts.timers ?? systemTimers;
    this.backoff = new Backoff(opts.backoff);
    this.closeTimeoutMs = opts.closeTimeoutMs ?? 2000;
    if (opts.signal?.aborted) void this.close();
    else opts.signal?.addEventListener("abort", this.onAbort, { once: true });
  }

  /** state is where the heartbeat stream stands. */
  get state(): SessionState {
    return this.current;
  }

  /** heartbeatIntervalMs is the current beat interval, or undefined while the session holds no instance. */
  get heartbeatIntervalMs(): number | undefined {
    if (this.entries.size === 0) return undefined;
    if (this.opts.heartbeatIntervalMs !== undefined) return this.opts.heartbeatIntervalMs;
    let min = Infinity;
    for (const e of this.entries.values()) min = Math.min(min, e.handle.ttlMs);
    return Math.max(1, Math.floor(min / 3));
  }

  /** instances lists the handles this session keeps alive. */
  instances(): InstanceHandle[] {
    return [...this.entries.values()].map((e) => e.handle);
  }

  /**
   * register stores instance with Register and resolves once a heartbeat on
   * the session's stream renewed it: from then on it lives as long as the
   * stream (plus the server's grace). Registering a key the session already
   * holds updates it and returns the same handle.
   */
  async register(instance: InstanceInit, opts: RegisterOptions = {}): Promise<InstanceHandle> {
    this.assertOpen();
    const leaseTtl = opts.ttlMs !== undefined ? durationFromMs(opts.ttlMs) : undefined;
    const res = await this.client.register({ instance, leaseTtl });
    this.assertOpen();
    const stored = res.instance!;
    const ttlMs = res.leaseTtl !== undefined ? durationMs(res.leaseTtl) : (opts.ttlMs ?? 10_000);
    const k = keyString(stored);
    let entry = this.entries.get(k);
    if (entry === undefined) {
      entry = { handle: new InstanceHandle(this, stored, ttlMs, opts.ttlMs, instance.status), waiters: [], reregistering: false };
      this.entries.set(k, entry);
    } else {
      entry.handle.update(stored, ttlMs);
    }
    await this.beatNow(entry.handle);
    return entry.handle;
  }

  /** close deregisters every instance, ends the stream and clears every timer; it is idempotent. */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  /** @internal beatNow is InstanceHandle's way to send a beat and wait until the server renewed it. */
  beatNow(handle: InstanceHandle): Promise<void> {
    const entry = this.entries.get(keyString(handle.key));
    if (entry?.handle !== handle) return Promise.reject(new Error(`instance ${keyString(handle.key)}: not in this session`));
    const renewed = new Promise<void>((resolve, reject) => entry.waiters.push({ seq: this.sequence + 1n, resolve, reject }));
    if (this.stream === undefined && this.reconnectTimer === undefined) this.connect();
    else this.send([entry]);
    this.scheduleTick();
    return renewed;
  }

  /** @internal release is InstanceHandle's deregister. */
  async release(handle: InstanceHandle): Promise<void> {
    const k = keyString(handle.key);
    const entry = this.entries.get(k);
    if (entry?.handle !== handle) return;
    this.entries.delete(k); // first: a beat after the Deregister would get UNKNOWN and register it again
    handle.retire();
    this.rejectWaiters(entry, new Error(`instance ${k}: deregistered`));
    if (this.entries.size === 0) this.endStream();
    try {
      await this.client.deregister({ key: handle.key });
    } catch (err) {
      if (ConnectError.from(err).code !== Code.NotFound) throw err;
    }
  }

  private connect(): void {
    if (this.closing !== undefined || this.entries.size === 0) return;
    this.setState("connecting");
    const stream = new HeartbeatStream(this.client, { onResponse: (res, first) => this.onResponse(stream, res, first) });
    this.stream = stream;
    // The first request carries each instance whole: a server that lost it (a restart) registers it from the beat.
    this.send([...this.entries.values()], true);
    this.scheduleTick();
    void stream.done.then((error) => this.onStreamEnd(stream, error));
  }

  private onStreamEnd(stream: HeartbeatStream, error: unknown): void {
    if (this.stream !== stream) return;
    this.stream = undefined;
    this.clearTick();
    if (this.closing !== undefined) return;
    if (error === undefined) {
      this.setState("idle");
      this.connect(); // instances registered while the stream was ending
      return;
    }
    this.downSince ??= this.timers.now();
    this.emit("disconnect", error);
    this.emit("error", error);
    this.setState("backoff");
    this.reconnectTimer = this.timers.setTimeout(() => {
      this.reconnectTimer = undefined;
      this.connect();
    }, this.backoff.next());
  }

  private onResponse(stream: HeartbeatStream, res: HeartbeatResponse, first: boolean): void {
    if (first && this.stream === stream) {
      const attempts = this.backoff.attempts;
      this.backoff.reset();
      this.setState("connected");
      if (this.downSince !== undefined) {
        const downMs = this.timers.now() - this.downSince;
        this.downSince = undefined;
        this.emit("reconnect", { attempts, downMs });
      }
    }
    for (const ack of res.acks) {
      const entry = ack.key === undefined ? undefined : this.entries.get(keyString(ack.key));
      if (entry === undefined) continue; // deregistered since
      if (ack.result === BeatResult.RENEWED || ack.result === BeatResult.REGISTERED) {
        entry.handle.renewed(ack.leaseExpiresAt);
        this.settle(entry, res.sequence);
        if (ack.result === BeatResult.REGISTERED) this.emit("reregister", entry.handle);
      } else if (ack.result === BeatResult.UNKNOWN) {
        this.reregister(entry);
      } else {
        const err = new Error(`heartbeat: instance ${keyString(entry.handle.key)}: ${ack.message || BeatResult[ack.result]}`);
        this.settle(entry, res.sequence, err);
        this.emit("error", err);
      }
    }
  }

  private reregister(entry: Entry): void {
    if (entry.reregistering || this.closing !== undefined) return;
    entry.reregistering = true;
    const { handle } = entry;
    const p = (async () => {
      try {
        const res = await this.client.register(wholeInstance(handle));
        if (this.entries.get(keyString(handle.key)) !== entry) {
          await this.client.deregister({ key: handle.key }).catch(() => undefined);
          return;
        }
        handle.update(res.instance!, res.leaseTtl !== undefined ? durationMs(res.leaseTtl) : handle.ttlMs);
        this.send([entry]);
        this.emit("reregister", handle);
      } catch (err) {
        this.emit("error", err); // the next UNKNOWN ack retries
      } finally {
        entry.reregistering = false;
      }
    })();
    this.inflight.add(p);
    void p.finally(() => this.inflight.delete(p));
  }

  /** send beats entries; with whole, each beat carries its instance and lease TTL (a stream's first request). */
  private send(entries: readonly Entry[], whole = false): void {
    if (this.stream === undefined || this.stream.ended || entries.length === 0) return;
    const beats = entries.map(({ handle }) => ({
      key: handle.key,
      status: handle.status,
      load: handle.load,
      ...(whole ? wholeInstance(handle) : {}),
    }));
    this.stream.send(++this.sequence, beats, this.timers.now());
  }

  private settle(entry: Entry, seq: bigint, err?: unknown): void {
    entry.waiters = entry.waiters.filter((w) => {
      if (w.seq > seq) return true;
      if (err === undefined) w.resolve();
      else w.reject(err);
      return false;
    });
  }

  private rejectWaiters(entry: Entry, err: unknown): void {
    for (const w of entry.waiters) w.reject(err);
    entry.waiters = [];
  }

  private scheduleTick(): void {
    const interval = this.heartbeatIntervalMs;
    if (this.stream === undefined || interval === undefined) return;
    const delay = beatDelay(interval, this.opts.backoff?.random);
    const at = this.timers.now() + delay;
    if (at >= this.tickAt) return;
    this.clearTick();
    this.tickAt = at;
    this.tickTimer = this.timers.setTimeout(() => this.tick(), delay);
  }

  private tick(): void {
    this.tickTimer = undefined;
    this.tickAt = Infinity;
    const stream = this.stream;
    if (stream === undefined) return;
    const ackTimeoutMs = this.opts.ackTimeoutMs ?? 2 * (this.heartbeatIntervalMs ?? 0);
    const oldest = stream.oldestUnanswered();
    if (oldest !== undefined && this.timers.now() - oldest > ackTimeoutMs) {
      stream.abort(new ConnectError(`heartbeat: no answer within ${ackTimeoutMs} ms`, Code.DeadlineExceeded));
      return;
    }
    this.send([...this.entries.values()]);
    this.scheduleTick();
  }

  private clearTick(): void {
    if (this.tickTimer !== undefined) this.timers.clearTimeout(this.tickTimer);
    this.tickTimer = undefined;
    this.tickAt = Infinity;
  }

  private endStream(): void {
    this.clearTick();
    if (this.reconnectTimer !== undefined) {
      this.timers.clearTimeout(this.reconnectTimer);
      this.reconnectTimer = undefined;
      this.downSince = undefined;
      this.setState("idle");
    }
    this.stream?.end();
  }

  private async shutdown(): Promise<void> {
    this.opts.signal?.removeEventListener("abort", this.onAbort);
    this.setState("closing");
    await within(Promise.allSettled([...this.inflight]), this.closeTimeoutMs, this.timers);
    const entries = [...this.entries.values()];
    this.entries.clear();
    const closed = new Error("session: closed");
    await Promise.all(
      entries.map(async (entry) => {
        entry.handle.retire();
        this.rejectWaiters(entry, closed);
        try {
          await this.client.deregister({ key: entry.handle.key }, { timeoutMs: this.closeTimeoutMs });
        } catch (err) {
          if (ConnectError.from(err).code !== Code.NotFound) this.emit("error", err);
        }
      }),
    );
    const stream = this.stream;
    this.endStream();
    if (stream !== undefined) {
      if (!(await within(stream.done, this.closeTimeoutMs, this.timers))) {
        stream.abort(new ConnectError("session: closed", Code.Canceled));
        await stream.done;
      }
      this.stream = undefined;
    }
    this.setState("closed");
    this.emit("close");
    this.removeAllListeners();
  }

  private setState(state: SessionState): void {
    if (this.current === state) return;
    this.current = state;
    this.emit("state", state);
  }

  private assertOpen(): void {
    if (this.closing !== undefined) throw new Error("session: closed");
  }
}

/** wholeInstance is what registers handle again: its instance with its current status, and the lease TTL it asked for. */
function wholeInstance(handle: InstanceHandle) {
  const ttl = handle.requestedTtlMs;
  return {
    instance: create(InstanceSchema, { ...handle.instance, status: handle.status }),
    leaseTtl: ttl !== undefined ? durationFromMs(ttl) : undefined,
  };
}
