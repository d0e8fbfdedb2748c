import { randomUUID } from "node:crypto";
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from "ioredis";
import type { Clock, Timer } from "../domain/clock.js";
import { Reason, RegistryError } from "../domain/errors.js";
import { ANONYMOUS_PRINCIPAL, ownedByOther } from "../domain/access.js";
import { resolveHealth, type HealthSpec } from "../domain/health.js";
import { keyString, recordOf, type InstanceKey, type InstanceRecord, type InstanceSpec, type RemovalReason } from "../domain/instance.js";
import type { Logger } from "../domain/logger.js";
import { redactUrl } from "../domain/redact.js";
import { keyList, redisKeys, SCRIPTS, type RedisKeys } from "./redis-scripts.js";
import { HeldLeases } from "./redis-leases.js";
import { Sweeper } from "./redis-sweeper.js";
import { MEMBERS, RedisMembers } from "./redis-members.js";
import type { Change, LeaseClaim, Store, StoreHealth, StoreResetReason } from "./store.js";
import { ViewReads } from "./view.js";

/** RedisStoreOptions configure a RedisStore; each field is a server setting (README, docs/redis.md). */
export interface RedisStoreOptions {
  /** url is redis://[:password@]host:port[/db]; with sentinels set, only its password and db are used. */
  readonly url: string;
  /** sentinels are "host:port" addresses of Redis Sentinels; empty: connect to url directly. */
  readonly sentinels: readonly string[];
  /** sentinelName is the monitored master's name. */
  readonly sentinelName: string;
  /** cluster are "host:port" seed nodes of a Redis Cluster; empty: not a Cluster. Its credentials and TLS still come from url. */
  readonly cluster?: readonly string[];
  /** registry names the registry: its keys share the hash tag {maxine:<registry>}. */
  readonly registry: string;
  /** logMax is the approximate length the change stream is trimmed to. */
  readonly logMax: number;
  /** historySize is how many logged changes seed the watch history at start. */
  readonly historySize: number;
  readonly renewIntervalMs: number;
  readonly sweepIntervalMs: number;
  readonly lockTtlMs: number;
  /** recoveryWindowMs pauses sweeping after an outage while replicas re-assert their leases. */
  readonly recoveryWindowMs: number;
  readonly commandTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly clock: Clock;
  readonly logger: Logger;
  /** sweep: false leaves expiry to the other replicas (tests); default true. */
  readonly sweep?: boolean;
  /** memberTtlMs is how long a replica stays in the replica set unrefreshed (it divides the health checks); default 1 s. */
  readonly memberTtlMs?: number;
}

type Runner = Record<string, (...args: Array<string | number>) => Promise<unknown>>;

/** Connection is one Redis connection: a single server (or the master Sentinels name), or a Cluster client that follows slot moves and failovers. */
type Connection = Redis | Cluster;

const BLOCK_MS = 2000;
const RETRY_MS = 200;
const APPLIED_KEPT = 4096;

/**
 * RedisStore shares one registry between replicas through Redis. Every
 * write is one Lua script that advances the registry-wide revision and
 * appends the change to a stream; each replica mirrors that stream into a
 * local View (XREAD BLOCK on its own connection) and serves every read from
 * it, so all replicas emit the same changes with the same revisions. A write
 * resolves once the mirror holds it (read your writes). Leases live in
 * Redis: renewals are batched, one sweeper at a time expires them (see
 * Sweeper). When Redis is unreachable reads go on from the mirror, writes
 * fail with UNAVAILABLE, renewals wait; when it is back the mirror re-syncs
 * and every lease held here is re-asserted, even if Redis lost its data.
 */
export class RedisStore extends ViewReads implements Store {
  /** replicaId names this replica in lease owners and the sweeper lock. */
  readonly replicaId = randomUUID();
  readonly leases: HeldLeases;
  readonly replicas: RedisMembers;
  private readonly keys: RedisKeys;
  private readonly keyArgs: string[];
  private readonly cmd: Connection;
  private readonly reader: Connection;
  private readonly listeners = new Set<(change: Change) => void>();
  private readonly resetListeners = new Set<(reason: StoreResetReason) => void>();
  private readonly healthListeners = new Set<() => void>();
  private readonly applied = new Map<number, Change>();
  private readonly waiters: Array<{ rev: number; done: (ok: boolean) => void }> = [];
  private readonly sweeper: Sweeper | undefined;
  private id = "";
  private rev = 0;
  private recent: Change[] = [];
  private needSync = true;
  private forceLoad = false;
  private down: string | undefined = "connecting";
  private lastError = "";
  private clockOffsetMs = 0;
  private closed = false;
  private loop: Promise<void> | undefined;
  private flushTimer: Timer | undefined;
  private sleepTimer: { timer: Timer; wake: () => void } | undefined;

  private constructor(private readonly opts: RedisStoreOptions) {
    super();
    this.keys = redisKeys(opts.registry);
    this.keyArgs = keyList(this.keys);
    const base: RedisOptions = {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      retryStrategy: (n) => Math.min(100 * n, 1000),
      commandTimeout: opts.commandTimeoutMs,
      connectionName: `maxine-${this.replicaId}`,
      lazyConnect: true,
    };
    this.cmd = connection(opts, base);
    this.reader = connection(opts, { ...base, commandTimeout: BLOCK_MS + opts.commandTimeoutMs });
    for (const [name, lua] of Object.entries(SCRIPTS)) {
      this.cmd.defineCommand(name, { numberOfKeys: this.keyArgs.length, lua });
      this.reader.defineCommand(name, { numberOfKeys: this.keyArgs.length, lua });
    }
    this.cmd.defineCommand("maxineMembers", { numberOfKeys: 1, lua: MEMBERS });
    this.replicas = new RedisMembers({
      replicaId: this.replicaId,
      ttlMs: opts.memberTtlMs ?? 1000,
      clock: opts.clock,
      logger: opts.logger,
      run: (args) => (this.cmd as unknown as Runner).maxineMembers!(`{maxine:${opts.registry}}:replicas`, ...args),
    });
    this.cmd.on("error", (err: Error) => (this.lastError = err.message));
    this.reader.on("error", (err: Error) => (this.lastError = err.message));
    this.cmd.on("close", () => this.markDown(this.lastError || "connection closed"));
    this.leases = new HeldLeases({
      replicaId: this.replicaId,
      renewIntervalMs: opts.renewIntervalMs,
      clock: opts.clock,
      logger: opts.logger,
      writable: () => this.down === undefined && !this.needSync,
      registryId: () => this.fence(),
      script: (name, args) => this.script(name, args),
      registeredTtls: (keys) => this.cmd.hmget(this.keys.ttl, ...keys),
      failed: (err) => this.failed(err),
    });
    if (opts.sweep !== false) {
      this.sweeper = new Sweeper((name, args) => this.script(name, args), {
        replicaId: this.replicaId,
        lockTtlMs: opts.lockTtlMs,
        intervalMs: opts.sweepIntervalMs,
        batch: 500,
        logMax: opts.logMax,
        registryId: () => this.fence(),
        clock: opts.clock,
        logger: opts.logger,
        active: () => this.down === undefined && !this.needSync,
        onError: (err) => this.failed(err),
      });
    }
  }

  /**
   * connect opens the connections, loads the registry (creating it in an
   * empty Redis), and starts mirroring, renewing and sweeping. It fails with
   * a message naming the address when Redis is not reachable in time.
   */
  static async connect(opts: RedisStoreOptions): Promise<RedisStore> {
    const store = new RedisStore(opts);
    try {
      await store.start();
    } catch (err) {
      await store.close();
      throw err;
    }
    return store;
  }

  get registryId(): string {
    return this.id;
  }

  revision(): number {
    return this.rev;
  }

  recentChanges(): readonly Change[] {
    return this.recent;
  }

  health(): StoreHealth {
    return this.down === undefined
      ? { status: "ok", detail: "redis reachable" }
      : { status: "degraded", detail: `redis unreachable (${this.down}): reads from this replica's mirror, writes fail` };
  }

  async put(spec: InstanceSpec, now: number, lease?: LeaseClaim, owner?: string): Promise<Change | undefined> {
    const key = keyString(spec);
    // A check's result is kept from the mirror (the scripts compare specs as text, not JSON): a result written
    // meanwhile by another replica may be replaced by the one seen here; its checker writes it again after its
    // next probe (docs/decisions/0010-health-checks.md).
    if (spec.health !== undefined && spec.health.result === undefined) spec = { ...spec, health: resolveHealth(spec.health, this.view.get(spec)?.health, now) };
    const reply = (await this.write(
      "maxinePut",
      [this.fence(), key, encodeSpec(spec), now, lease?.ttlMs ?? "", "", this.opts.logMax, this.deadline(), ownerArg(owner), spec.operatorStatus === undefined ? "1" : ""],
      key,
      owner,
    )) as unknown[];
    if (lease !== undefined && lease.ttlMs === 0) this.leases.forget(key);
    else if (lease !== undefined) this.leases.registered(key, lease.ttlMs);
    if (typeof reply[0] !== "number" || reply[0] <= 0) return undefined;
    return this.settle(reply[0], reply[1] as string[]);
  }

  async remove(key: InstanceKey, reason: RemovalReason, ifModRevision?: number, owner?: string): Promise<Change | undefined> {
    const k = keyString(key);
    const reply = (await this.write("maxineRemove", [this.fence(), k, reason, ifModRevision ?? "", this.opts.logMax, this.deadline(), ownerArg(owner)], k, owner)) as unknown[];
    if (typeof reply[0] !== "number" || reply[0] <= 0) return undefined;
    return this.settle(reply[0], reply[1] as string[]);
  }

  subscribe(listener: (change: Change) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  subscribeHealth(listener: () => void): () => void {
    this.healthListeners.add(listener);
    return () => this.healthListeners.delete(listener);
  }

  subscribeResets(listener: (reason: StoreResetReason) => void): () => void {
    this.resetListeners.add(listener);
    return () => this.resetListeners.delete(listener);
  }

  /** sweepNow runs one sweeper round at once (tests and benchmarks); -1 when another replica holds the lock. */
  sweepNow(): Promise<number> {
    return this.sweeper?.tick() ?? Promise.resolve(-1);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.flushTimer?.cancel();
    await this.replicas.stop();
    await this.sweeper?.stop();
    if (this.down === undefined) await this.leases.flush().catch(() => undefined);
    // the releases of the streams the server ended (Registry.close sent them before the store closes); each bounded by the command timeout
    await this.leases.releasesSent();
    this.sleepTimer?.wake();
    this.reader.disconnect();
    this.cmd.disconnect();
    await this.loop;
    for (const w of this.waiters.splice(0)) w.done(false);
    this.listeners.clear();
    this.resetListeners.clear();
  }

  private async start(): Promise<void> {
    await Promise.all([this.ready(this.cmd), this.ready(this.reader)]);
    await this.sync();
    this.loop = this.readLoop();
    this.scheduleFlush();
    this.sweeper?.start();
    await this.replicas.start();
  }

  private async ready(r: Connection): Promise<void> {
    const timeoutMs = this.opts.connectTimeoutMs;
    let timer: Timer | undefined;
    r.connect().catch(() => undefined); // retried by ioredis until ready; the timeout below bounds the wait
    try {
      await Promise.race([
        new Promise<void>((resolve) => (r.status === "ready" ? resolve() : r.once("ready", () => resolve()))),
        new Promise<never>((_, reject) => {
          timer = this.opts.clock.setTimer(
            () => reject(new Error(`store: could not connect to Redis at ${describe(this.opts)} within ${timeoutMs} ms (${this.lastError || "no answer"})`)),
            timeoutMs,
          );
        }),
      ]);
    } catch (err) {
      const message = (err as Error).message;
      throw new Error(message.startsWith("store:") ? message : `store: could not connect to Redis at ${describe(this.opts)}: ${message}`);
    } finally {
      timer?.cancel();
    }
  }

  private script(name: string, args: ReadonlyArray<string | number>): Promise<unknown> {
    return (this.cmd as unknown as Runner)[name]!(...this.keyArgs, ...args);
  }

  private async write(name: string, args: ReadonlyArray<string | number>, key?: string, owner?: string): Promise<unknown> {
    if (this.closed) throw new RegistryError(Reason.SHUTTING_DOWN, "server: shutting down, retry on another server");
    if (this.down !== undefined) {
      throw new RegistryError(
        Reason.UNAVAILABLE,
        `store: Redis is unreachable (${this.down}); writes fail until it is back, retry shortly (reads are served from this replica's copy)`,
      );
    }
    try {
      return await this.script(name, args);
    } catch (err) {
      const message = (err as Error).message ?? String(err);
      if (message.includes("MAXINE_ROLLED_BACK")) {
        this.needSync = true;
        throw new RegistryError(Reason.UNAVAILABLE, "store: Redis lost acknowledged writes (a failover to a replica that lagged); the registry moves to a new id and this replica is re-syncing, retry");
      }
      if (message.includes("MAXINE_REGISTRY_CHANGED")) {
        this.needSync = true;
        throw new RegistryError(Reason.UNAVAILABLE, "store: the shared registry was replaced (Redis lost its data); this replica is re-syncing, retry");
      }
      const notOwner = /MAXINE_NOT_OWNER (.*)$/.exec(message);
      if (notOwner !== null) throw ownedByOther(key ?? "?", ownerFromArg(notOwner[1]!), owner ?? "");
      if (message.includes("MAXINE_LATE")) {
        throw new RegistryError(Reason.UNAVAILABLE, "store: Redis answered after the write's deadline, so it was not applied; retry shortly");
      }
      if ((err as Error).name === "ReplyError") {
        throw new RegistryError(Reason.UNAVAILABLE, `store: Redis refused the write (${message}), retry shortly`);
      }
      this.failed(err);
      throw new RegistryError(
        Reason.UNAVAILABLE,
        `store: Redis is unreachable (${message}); writes fail until it is back, retry shortly (reads are served from this replica's copy)`,
      );
    }
  }

  /** settle returns the change a write committed once the mirror has applied it (read your writes). */
  private async settle(rev: number, fields: string[]): Promise<Change> {
    if (rev === this.rev + 1) this.apply(rev, fields);
    else if (rev > this.rev) {
      let timer: Timer | undefined;
      const ok = await new Promise<boolean>((done) => {
        const waiter = { rev, done };
        this.waiters.push(waiter);
        timer = this.opts.clock.setTimer(() => {
          const i = this.waiters.indexOf(waiter);
          if (i >= 0) this.waiters.splice(i, 1);
          done(false);
        }, 2 * this.opts.commandTimeoutMs);
      });
      timer?.cancel();
      if (!ok) throw new RegistryError(Reason.UNAVAILABLE, "store: the change was committed but has not reached this replica's copy yet; retry");
    }
    return this.applied.get(rev) ?? this.changeOf(rev, fields);
  }

  /** apply applies one logged change to the mirror; a gap means changes were missed and forces a reload. */
  private apply(rev: number, fields: string[]): void {
    if (rev <= this.rev) return;
    if (rev !== this.rev + 1) {
      this.needSync = true;
      this.forceLoad = true;
      throw new Error(`change log gap: mirror at ${this.rev}, next logged change is ${rev}`);
    }
    const change = this.changeOf(rev, fields);
    if (change.type === "REMOVED") {
      this.view.delete(change.instance);
      this.leases.forget(keyString(change.instance));
    } else {
      this.view.set(change.instance);
    }
    this.rev = rev;
    this.applied.set(rev, change);
    if (this.applied.size > APPLIED_KEPT) this.applied.delete(this.applied.keys().next().value!);
    for (const l of this.listeners) l(change);
    this.wake();
  }

  private wake(): void {
    for (let i = this.waiters.length - 1; i >= 0; i--) {
      const w = this.waiters[i]!;
      if (w.rev <= this.rev) {
        this.waiters.splice(i, 1);
        w.done(true);
      }
    }
  }

  private changeOf(rev: number, fields: readonly string[]): Change {
    const f = fieldMap(fields);
    const instance = decodeRecord(f.v!);
    switch (f.t) {
      case "A":
        return { type: "ADDED", revision: rev, instance };
      case "U":
        return { type: "UPDATED", revision: rev, instance, previous: decodeRecord(f.p!) };
      default:
        return { type: "REMOVED", revision: rev, instance, reason: f.why as RemovalReason };
    }
  }

  private async readLoop(): Promise<void> {
    while (!this.closed) {
      try {
        if (this.needSync) await this.sync();
        const res = (await this.reader.xread("BLOCK", BLOCK_MS, "STREAMS", this.keys.log, `${this.rev}-0`)) as
          | Array<[string, Array<[string, string[]]>]>
          | null;
        if (res === null) {
          // Idle: make sure the registry was not replaced under us (FLUSHALL without a restart).
          // ... or did not go back in time (a failover to a replica that lagged)
          const [id, rev] = await this.reader.mget(this.keys.id, this.keys.rev);
          if (id !== this.id || Number(rev ?? 0) < this.rev) this.needSync = true;
          continue;
        }
        for (const [, entries] of res) for (const [id, fields] of entries) this.apply(Number.parseInt(id, 10), fields);
      } catch (err) {
        if (this.closed) break;
        this.needSync = true;
        const message = (err as Error).message;
        if (this.forceLoad) this.opts.logger.warn({ err: message }, "redis mirror: re-syncing");
        else this.failed(err);
        await this.sleep(RETRY_MS);
      }
    }
  }

  /**
   * sync (re)establishes the mirror: it reads the registryId (creating one
   * in an empty Redis); when it changed, re-asserts every lease held here
   * into the new registry and loads its state, resetting watchers; after
   * an outage it pauses sweeping for the recovery window and re-asserts the
   * leases held here, so no live instance is lost or expired meanwhile.
   */
  /**
   * deadline is when a write sent now must have reached Redis, in Redis's
   * clock: after it the caller has been told UNAVAILABLE, so the script
   * refuses it (a frozen Redis that resumes must not apply stale writes).
   */
  private deadline(): number {
    return Math.floor(Date.now() + this.clockOffsetMs + this.opts.commandTimeoutMs);
  }

  /** fence names the registry and the newest revision seen here: a write refuses to run on a Redis behind it (see changed() in redis-scripts.ts). */
  private fence(): string {
    return `${this.id}@${this.rev}`;
  }

  /** measureClock estimates Redis's clock minus this host's (wall clocks; the round trip is split evenly). */
  private async measureClock(): Promise<void> {
    const before = Date.now();
    // TIME of the node that owns the registry's slot (a Cluster's nodes may differ)
    const [s, us] = (await this.cmd.eval("return redis.call('TIME')", 1, this.keys.id)) as [string, string];
    const after = Date.now();
    this.clockOffsetMs = Number(s) * 1000 + Math.floor(Number(us) / 1000) - (before + after) / 2;
  }

  private async sync(): Promise<void> {
    await this.measureClock();
    const first = this.id === "";
    const wasDown = this.down !== undefined && !first;
    const [id, created] = (await this.script("maxineInit", [randomUUID(), wasDown || this.forceLoad ? this.opts.recoveryWindowMs : 0, first ? "" : this.fence()])) as [string, number];
    if (created === 2) {
      this.opts.logger.warn({ registryId: id, previous: this.id, revision: this.rev }, "redis lost acknowledged writes (its revision went back): the registry has a new id; live instances are re-asserted and watchers reset");
    }
    let reasserted = 0;
    if (id !== this.id) {
      if (!first) reasserted = await this.reassert(id);
      await this.load(first ? undefined : "REGISTRY_CHANGED");
    } else if (this.forceLoad) {
      await this.load("COMPACTED");
    }
    if (!first && reasserted === 0) reasserted = await this.reassert(id);
    this.needSync = false;
    this.forceLoad = false;
    this.lastError = "";
    if (this.down !== undefined) {
      this.down = undefined;
      this.opts.logger.info({ registryId: this.id, revision: this.rev, reasserted }, "redis reachable: mirror in sync");
      for (const fn of [...this.healthListeners]) fn();
    }
  }

  private async load(reason: StoreResetReason | undefined): Promise<void> {
    const [id, rev, flat, log] = (await this.script("maxineLoad", [this.opts.historySize])) as [string, string, string[], Array<[string, string[]]>];
    this.view.clear();
    for (let i = 1; i < flat.length; i += 2) this.view.set(decodeRecord(flat[i]!));
    if (id !== this.id) for (const w of this.waiters.splice(0)) w.done(false); // their revisions belong to the old registry
    this.id = id;
    this.rev = Number(rev);
    this.applied.clear();
    const recent: Change[] = [];
    let expect = this.rev;
    for (const [entryId, fields] of log) {
      const r = Number.parseInt(entryId, 10);
      if (r !== expect) break;
      recent.push(this.changeOf(r, fields));
      expect--;
    }
    this.recent = recent.reverse();
    this.leases.keep((k) => this.view.get(parseKey(k)) !== undefined);
    this.wake();
    if (reason !== undefined) {
      this.opts.logger.warn({ reason, registryId: id, revision: this.rev }, "redis mirror reloaded: watchers get a fresh snapshot");
      for (const l of this.resetListeners) l(reason);
    }
  }

  /**
   * reassert writes every lease still live here (and its instance, from
   * the mirror) into registry id, and every instance with an active check
   * that no lease here holds, where the registry lacks it (persistent
   * instances have no lease for any replica to re-assert).
   */
  private async reassert(id: string): Promise<number> {
    const now = this.opts.clock.now();
    const pipe = this.cmd.pipeline();
    let n = 0;
    for (const [k, h] of this.leases.live(now)) {
      const record = this.view.get(parseKey(k));
      if (record === undefined) {
        this.leases.forget(k);
        continue;
      }
      // the binding is re-asserted under the same rule as a renewal: a fresh holder elsewhere keeps it
      (pipe as unknown as Runner).maxinePut!(...this.keyArgs, id, k, encodeSpec(record), now, h.ttlMs, h.owner, this.opts.logMax, "", "", "", this.leases.bindingSlackMs);
      this.leases.asserted(k, h, now);
      n++;
    }
    // instances with an active check and no lease held here: created again only where absent, without a lease
    // (a replica that holds a lease of one re-asserts it with its TTL, before or after this)
    const leased = new Set(this.leases.live(now).map(([k]) => k));
    for (const ns of this.view.namespaceNames()) {
      for (const [, service] of this.view.services(ns)) {
        for (const record of service.sorted()) {
          const k = keyString(record);
          if (record.health === undefined || leased.has(k)) continue;
          (pipe as unknown as Runner).maxinePut!(...this.keyArgs, id, k, encodeSpec(record), now, "P", "", this.opts.logMax, "", "", "", this.leases.bindingSlackMs);
          n++;
        }
      }
    }
    if (n === 0) return 0;
    const results = (await pipe.exec()) ?? [];
    const failed = results.find(([err]) => err !== null);
    if (failed !== undefined) throw failed[0]!;
    return n;
  }

  private scheduleFlush(): void {
    if (this.closed) return;
    this.flushTimer = this.opts.clock.setTimer(() => {
      this.flushTimer = undefined;
      void this.leases.flush()
        .catch((err: unknown) => this.opts.logger.debug({ err: (err as Error).message }, "lease renewals kept for the next flush"))
        .finally(() => this.scheduleFlush());
    }, this.opts.renewIntervalMs);
  }

  /**
   * failed notes a failed Redis call. Anything but an error reply from
   * Redis (a timeout, a dropped or refused connection) counts as an outage:
   * writes then fail fast, sweeping stops, and the next sync re-asserts.
   */
  private failed(err: unknown): void {
    if ((err as Error)?.name === "ReplyError") {
      // a renewal or sweep refused for another registry, or for one that went back in time
      if (/MAXINE_(REGISTRY_CHANGED|ROLLED_BACK)/.test((err as Error).message)) this.needSync = true;
      return;
    }
    this.markDown((err as Error)?.message || this.lastError || String(err));
  }

  private markDown(reason: string): void {
    if (this.closed || this.down !== undefined) return;
    this.down = reason;
    this.needSync = true;
    this.opts.logger.warn({ err: reason }, "redis unreachable: serving reads from the mirror, writes fail with UNAVAILABLE");
    for (const fn of [...this.healthListeners]) fn();
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = (): void => {
        this.sleepTimer?.timer.cancel();
        this.sleepTimer = undefined;
        resolve();
      };
      this.sleepTimer = { timer: this.opts.clock.setTimer(wake, ms), wake };
    });
  }
}

/** RedisAddress is where a Redis connection goes: a URL, Sentinels or Cluster seeds (the MAXINE_REDIS_* settings). */
export type RedisAddress = Pick<RedisStoreOptions, "url" | "sentinels" | "sentinelName" | "cluster" | "commandTimeoutMs">;

/** connection makes one connection of the kind the options name: Cluster seeds, Sentinels, or a URL (the configuration store's too). */
export function connection(opts: RedisAddress, base: RedisOptions): Connection {
  const config = connectionOptions(opts, base);
  const cluster = opts.cluster ?? [];
  if (cluster.length === 0) return new Redis(config);
  const { host: _host, port: _port, db: _db, lazyConnect, enableOfflineQueue, ...node } = config;
  const options: ClusterOptions = {
    lazyConnect,
    enableOfflineQueue,
    // a node's address from CLUSTER SLOTS is used as given (loopback tests, hosts on one network)
    // the Cluster checks cluster_state itself; a node's own ready check, cut by a
    // disconnect, makes ioredis reconnect that node after the pool dropped it
    redisOptions: { ...node, enableReadyCheck: false },
    clusterRetryStrategy: (n) => Math.min(100 * n, 1000),
    // after a failover, wait for the promoted replica (MOVED / CLUSTERDOWN) a little before failing the write
    retryDelayOnFailover: 100,
    retryDelayOnClusterDown: 100,
    retryDelayOnTryAgain: 100,
    slotsRefreshTimeout: opts.commandTimeoutMs,
  };
  return new Cluster(hostPorts(cluster), options);
}

function hostPorts(list: readonly string[]): Array<{ host: string; port: number }> {
  return list.map((s) => {
    const i = s.lastIndexOf(":");
    return { host: s.slice(0, i), port: Number(s.slice(i + 1)) };
  });
}

function connectionOptions(opts: RedisAddress, base: RedisOptions): RedisOptions {
  const url = new URL(opts.url);
  if (url.protocol !== "redis:" && url.protocol !== "rediss:") throw new Error(`MAXINE_REDIS_URL: must be redis://host:port or rediss://..., got ${redactUrl(opts.url)}`);
  const auth = {
    ...(url.username !== "" ? { username: decodeURIComponent(url.username) } : {}),
    ...(url.password !== "" ? { password: decodeURIComponent(url.password) } : {}),
    db: url.pathname.length > 1 ? Number(url.pathname.slice(1)) : 0,
    ...(url.protocol === "rediss:" ? { tls: {} } : {}),
  };
  if (opts.sentinels.length > 0) return { ...base, ...auth, sentinels: hostPorts(opts.sentinels), name: opts.sentinelName };
  return { ...base, ...auth, host: url.hostname, port: url.port === "" ? 6379 : Number(url.port) };
}

function describe(opts: RedisStoreOptions): string {
  if ((opts.cluster ?? []).length > 0) return `cluster ${opts.cluster!.join(",")}`;
  if (opts.sentinels.length > 0) return `sentinels ${opts.sentinels.join(",")} (master ${opts.sentinelName})`;
  const url = new URL(opts.url);
  return `${url.hostname}:${url.port || 6379}`;
}

/**
 * ownerArg is how the scripts see an owner: the JSON-escaped string as it
 * appears in encodeSpec's output ("" for no check), so that Lua compares it
 * with the stored spec's owner without decoding JSON.
 */
function ownerArg(owner: string | undefined): string {
  return owner === undefined ? "" : JSON.stringify(owner).slice(1, -1);
}

function ownerFromArg(escaped: string): string {
  try {
    return JSON.parse(`"${escaped}"`) as string;
  } catch {
    return escaped;
  }
}

/**
 * encodeSpec is the canonical JSON of what a client sets and its owner
 * (the scripts compare it byte for byte). The owner comes first: the
 * scripts read it with a pattern (a quote inside it is escaped, so its end
 * is the first unescaped "," that follows).
 */
export function encodeSpec(s: InstanceSpec): string {
  const metadata: Record<string, string> = {};
  for (const k of Object.keys(s.metadata).sort()) metadata[k] = s.metadata[k]!;
  return JSON.stringify({
    owner: s.owner,
    namespace: s.namespace,
    service: s.service,
    instanceId: s.instanceId,
    host: s.host,
    port: s.port,
    version: s.version,
    zone: s.zone,
    tags: s.tags,
    metadata,
    weight: s.weight,
    status: s.status,
    // only when set, each field in a fixed order: the scripts compare specs as text
    ...(s.health !== undefined ? { health: healthJson(s.health) } : {}),
    // last, and only when set: the PUT script reads it at the end of the record, and records without one compare equal to a spec without one
    ...(s.operatorStatus !== undefined && s.operatorStatus !== "NONE" ? { operatorStatus: s.operatorStatus } : {}),
  });
}

/** healthJson is a check and its result with their fields in one order, whatever order the objects were built in. */
function healthJson(h: HealthSpec): object {
  const c = h.check;
  const r = h.result;
  return {
    check: {
      kind: c.kind,
      port: c.port,
      intervalMs: c.intervalMs,
      timeoutMs: c.timeoutMs,
      healthyThreshold: c.healthyThreshold,
      unhealthyThreshold: c.unhealthyThreshold,
      deregisterAfterMs: c.deregisterAfterMs,
      httpPath: c.httpPath,
      httpMethod: c.httpMethod,
      statusMin: c.statusMin,
      statusMax: c.statusMax,
      grpcService: c.grpcService,
    },
    ...(r !== undefined ? { result: { status: r.status, message: r.message, changedAt: r.changedAt } } : {}),
  };
}

function decodeRecord(json: string): InstanceRecord {
  const r = JSON.parse(json) as { createRevision: number; registeredAt: number; updatedAt: number; modRevision: number; spec: InstanceSpec };
  // Records written before instances had owners belong to "anonymous".
  return recordOf({ ...r.spec, owner: r.spec.owner ?? ANONYMOUS_PRINCIPAL }, r.registeredAt, r.updatedAt, r.createRevision, r.modRevision);
}

function fieldMap(fields: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < fields.length; i += 2) out[fields[i]!] = fields[i + 1]!;
  return out;
}

function parseKey(k: string): InstanceKey {
  const [namespace = "", service = "", instanceId = ""] = k.split("/");
  return { namespace, service, instanceId };
}
