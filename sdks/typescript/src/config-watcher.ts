import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { createClient, Code, ConnectError, type Client } from "@connectrpc/connect";
import { Backoff, type BackoffOptions } from "./backoff.js";
import { createMaxineTransport, type MaxineClientOptions } from "./client.js";
import { Emitter } from "./emitter.js";
import { ConfigService, EventType, type ConfigEntry } from "./gen/maxine/config/v1/config_pb.js";
import { sleep, systemTimers, type Timers } from "./timers.js";

/** ConfigClient is a typed connect-es client of maxine.config.v1.ConfigService. */
export type ConfigClient = Client<typeof ConfigService>;

/** createConfigClient builds a ConfigService client with the same options (addresses, protocol, token, TLS) as createMaxineClient. */
export function createConfigClient(opts: MaxineClientOptions): ConfigClient {
  return createClient(ConfigService, createMaxineTransport(opts));
}

/** Decoder turns a stored value into the caller's type; it throws on a value it cannot read (the last good value is kept). */
export type Decoder<T> = (value: Uint8Array, contentType: string) => T;

/** jsonDecoder is the default decoder: the value as UTF-8 JSON. */
export function jsonDecoder<T>(value: Uint8Array): T {
  return JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(value)) as T;
}

/** ConfigValue is one decoded version of a key, and where it came from. */
export interface ConfigValue<T> {
  readonly value: T;
  readonly version: bigint;
  readonly revision: bigint;
  readonly contentType: string;
  /** source: "registry" (a snapshot or a change) or "cache" (the local file, read at start while the registry had not answered). */
  readonly source: "registry" | "cache";
}

/** getConfig reads a key's latest value (or a version) and decodes it (JSON by default). */
export async function getConfig<T = unknown>(
  client: ConfigClient,
  key: { readonly namespace?: string; readonly service: string; readonly key: string; readonly version?: bigint },
  decode: Decoder<T> = jsonDecoder,
): Promise<ConfigValue<T>> {
  const res = await client.get({ namespace: key.namespace ?? "", service: key.service, key: key.key, version: key.version ?? 0n });
  const e = res.entry!;
  return { value: decode(e.value, e.contentType), version: e.version, revision: e.revision, contentType: e.contentType, source: "registry" };
}

/** ConfigWatcherOptions say which key to watch, how to read it, and where to cache it. */
export interface ConfigWatcherOptions<T> {
  readonly namespace?: string;
  readonly service: string;
  readonly key: string;
  /** decode reads a value (default: UTF-8 JSON). A value it cannot read is reported ("invalid") and the last good value kept. */
  readonly decode?: Decoder<T>;
  /**
   * cacheFile, when set, is a local file holding the last good value (and
   * the revision it was read at): read at start, so that a service starts
   * with its configuration while the registry is down, and rewritten
   * (atomically) on each change.
   */
  readonly cacheFile?: string;
  /** backoff shapes reconnects (default 100 ms doubling up to 5 s, full jitter). */
  readonly backoff?: BackoffOptions;
  readonly timers?: Timers;
  /** signal closes the watcher when it aborts. */
  readonly signal?: AbortSignal;
  /** start: false creates the watcher without opening the stream (start() or ready() does). */
  readonly start?: boolean;
}

/** ConfigWatcherEvents are the events a ConfigWatcher emits. */
export interface ConfigWatcherEvents<T> {
  /** change: a new value (from the registry, or the cache at start). */
  change: [value: ConfigValue<T>];
  /** deleted: the key was deleted (or does not exist in a snapshot); value is then undefined. */
  deleted: [version: bigint];
  /** invalid: a version the decoder refused; the last good value is kept. */
  invalid: [error: unknown, version: bigint];
  /** disconnect: the stream failed; the value is kept and a resume is scheduled. */
  disconnect: [error: unknown];
  error: [error: unknown];
  close: [];
}

// Errors a retry cannot fix: the watcher closes and ready() rejects.
const FATAL = new Set([Code.InvalidArgument, Code.Unimplemented, Code.Unauthenticated, Code.PermissionDenied]);

interface CacheRecord {
  readonly registryId: string;
  readonly revision: string;
  readonly version: string;
  readonly contentType: string;
  readonly value: string;
}

/**
 * ConfigWatcher keeps one configuration key's value up to date over
 * ConfigService.Watch: a snapshot, then each change, decoded into T. It
 * keeps the last good value while the registry is unreachable or a version
 * cannot be decoded, resumes after a failure from the last revision it saw
 * (the server replays exactly what it missed, or sends a fresh snapshot),
 * and, with cacheFile, starts from the value it last saw when the registry
 * does not answer. Lifecycle as Watcher: start(), ready(), close().
 */
export class ConfigWatcher<T = unknown> extends Emitter<ConfigWatcherEvents<T>> {
  private readonly decode: Decoder<T>;
  private readonly timers: Timers;
  private readonly backoff: Backoff;
  private readonly lifetime = new AbortController();
  private running: Promise<void> | undefined;
  private closing: Promise<void> | undefined;
  private readonly readyPromise: Promise<void>;
  private resolveReady!: () => void;
  private rejectReady!: (err: unknown) => void;
  private last: ConfigValue<T> | undefined;
  private revision = 0n;
  private registryId = "";
  private failure: unknown;
  private readonly onAbort = (): void => void this.close();

  constructor(
    private readonly client: ConfigClient,
    private readonly opts: ConfigWatcherOptions<T>,
  ) {
    super();
    this.decode = opts.decode ?? jsonDecoder;
    this.timers = opts.timers ?? systemTimers;
    this.backoff = new Backoff(opts.backoff);
    this.readyPromise = new Promise((resolve, reject) => {
      this.resolveReady = resolve;
      this.rejectReady = reject;
    });
    this.readyPromise.catch(() => undefined);
    if (opts.cacheFile !== undefined) this.readCache(opts.cacheFile);
    opts.signal?.addEventListener("abort", this.onAbort, { once: true });
    if (opts.signal?.aborted) void this.close();
    else if (opts.start !== false) this.start();
  }

  /** value is the last good value (undefined before any, or after a delete). */
  get value(): T | undefined {
    return this.last?.value;
  }

  /** current is the last good value with its version, revision and source. */
  get current(): ConfigValue<T> | undefined {
    return this.last;
  }

  /** start opens the stream in the background; idempotent. */
  start(): this {
    if (this.running === undefined && this.closing === undefined) this.running = this.run();
    return this;
  }

  /**
   * ready resolves once the key's state is known: from the registry's
   * snapshot, or at once when the cache file gave a value. It rejects if
   * the watcher closes first (a fatal error: permission, bad key) or after
   * timeoutMs with a TimeoutError.
   */
  ready(timeoutMs?: number): Promise<void> {
    this.start();
    if (timeoutMs === undefined) return this.readyPromise;
    return new Promise((resolve, reject) => {
      const timer = this.timers.setTimeout(() => {
        const err = new Error(`config watcher: no value within ${timeoutMs} ms`);
        err.name = "TimeoutError";
        reject(err);
      }, timeoutMs);
      this.readyPromise.then(resolve, reject).finally(() => this.timers.clearTimeout(timer));
    });
  }

  /**
   * changes yields each new value from now on (the "change" events) until
   * close, or throws the fatal error that closed the watcher. `for await`
   * over the watcher is the same.
   */
  changes(): AsyncIterableIterator<ConfigValue<T>> {
    const queue: ConfigValue<T>[] = [];
    let wake: (() => void) | undefined;
    let end: { readonly error?: unknown } | undefined;
    const finish = (how: { readonly error?: unknown }): void => {
      if (end !== undefined) return;
      end = how;
      offChange();
      offClose();
      wake?.();
    };
    const offChange = this.on("change", (v) => {
      queue.push(v);
      wake?.();
    });
    const offClose = this.on("close", () => finish(this.failure === undefined ? {} : { error: this.failure }));
    if (this.closing !== undefined) finish(this.failure === undefined ? {} : { error: this.failure });
    return (async function* iterate(): AsyncGenerator<ConfigValue<T>> {
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

  [Symbol.asyncIterator](): AsyncIterableIterator<ConfigValue<T>> {
    return this.changes();
  }

  /** close ends the stream and any backoff; idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.opts.signal?.removeEventListener("abort", this.onAbort);
      this.lifetime.abort(new ConnectError("config watcher: closed", Code.Canceled));
      await this.running;
      this.rejectReady(new Error("config watcher: closed before a value was known"));
      this.emit("close");
      this.removeAllListeners();
    })();
    return this.closing;
  }

  private async run(): Promise<void> {
    const signal = this.lifetime.signal;
    while (!signal.aborted) {
      const error = await this.stream(signal);
      if (signal.aborted) break;
      if (FATAL.has(ConnectError.from(error).code)) {
        this.failure = error;
        this.emit("error", error);
        this.rejectReady(error);
        void this.close();
        break;
      }
      this.emit("disconnect", error);
      this.emit("error", error);
      try {
        await sleep(this.backoff.next(), signal, this.timers);
      } catch {
        break;
      }
    }
  }

  /** stream runs one Watch call, resuming from the last revision seen (the cache's included), and returns what ended it. */
  private async stream(signal: AbortSignal): Promise<unknown> {
    const { namespace = "", service, key } = this.opts;
    // a snapshot is collected whole before it replaces what the watcher knows
    let snapshot: ConfigEntry | undefined | null = null;
    try {
      for await (const msg of this.client.watch({ namespace, services: [service], resumeRevision: this.revision, registryId: this.registryId }, { signal })) {
        this.backoff.reset();
        switch (msg.message.case) {
          case "snapshot":
            snapshot ??= undefined;
            for (const e of msg.message.value.entries) if (e.key === key) snapshot = e;
            break;
          case "snapshotEnd": {
            const end = msg.message.value;
            const entry = snapshot ?? undefined;
            snapshot = null;
            this.registryId = end.registryId;
            if (entry !== undefined) this.accept(entry, end.revision);
            else this.gone(end.revision);
            this.revision = end.revision;
            this.resolveReady();
            break;
          }
          case "event": {
            const ev = msg.message.value;
            this.revision = ev.revision;
            if (ev.entry?.key !== key) break;
            if (ev.type === EventType.DELETED) this.gone(ev.revision, ev.entry.version);
            else this.accept(ev.entry, ev.revision);
            break;
          }
          case "progress":
            this.registryId = msg.message.value.registryId;
            this.revision = msg.message.value.revision;
            // a resume that replayed nothing for this key: what the watcher holds is current
            this.resolveReady();
            break;
        }
      }
      return new ConnectError("config watch: the server ended the stream", Code.Unavailable);
    } catch (err) {
      return err;
    }
  }

  private accept(e: ConfigEntry, revision: bigint): void {
    if (this.last?.source === "registry" && this.last.version === e.version) return;
    let value: T;
    try {
      value = this.decode(e.value, e.contentType);
    } catch (err) {
      this.emit("invalid", err, e.version);
      return;
    }
    this.last = { value, version: e.version, revision, contentType: e.contentType, source: "registry" };
    if (this.opts.cacheFile !== undefined) this.writeCache(this.opts.cacheFile, e, revision);
    this.emit("change", this.last);
  }

  private gone(revision: bigint, version?: bigint): void {
    if (this.last === undefined && version === undefined) return;
    this.last = undefined;
    this.emit("deleted", version ?? 0n);
    if (this.opts.cacheFile !== undefined) this.writeCache(this.opts.cacheFile, undefined, revision);
  }

  private readCache(file: string): void {
    let rec: CacheRecord | { readonly registryId: string; readonly revision: string; readonly deleted: true };
    try {
      rec = JSON.parse(readFileSync(file, "utf8")) as CacheRecord;
    } catch {
      return; // no cache yet, or unreadable: start from the registry alone
    }
    this.registryId = rec.registryId;
    this.revision = BigInt(rec.revision);
    if ("deleted" in rec) {
      this.resolveReady();
      return;
    }
    try {
      const value = this.decode(new Uint8Array(Buffer.from(rec.value, "base64")), rec.contentType);
      this.last = { value, version: BigInt(rec.version), revision: this.revision, contentType: rec.contentType, source: "cache" };
      this.resolveReady();
    } catch {
      // a cache the decoder refuses: start from a fresh snapshot
      this.registryId = "";
      this.revision = 0n;
    }
  }

  private writeCache(file: string, e: ConfigEntry | undefined, revision: bigint): void {
    const rec =
      e === undefined
        ? { registryId: this.registryId, revision: String(revision), deleted: true }
        : { registryId: this.registryId, revision: String(revision), version: String(e.version), contentType: e.contentType, value: Buffer.from(e.value).toString("base64") };
    try {
      mkdirSync(dirname(file), { recursive: true });
      writeFileSync(`${file}.tmp`, JSON.stringify(rec));
      renameSync(`${file}.tmp`, file);
    } catch (err) {
      this.emit("error", err);
    }
  }
}
