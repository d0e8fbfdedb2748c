import { deserialize } from "node:v8";
import type { Clock } from "../domain/clock.js";
import { Reason, RegistryError } from "../domain/errors.js";
import { keyString, recordOf, type InstanceKey, type InstanceRecord, type InstanceSpec, type RemovalReason } from "../domain/instance.js";
import type { Logger } from "../domain/logger.js";
import type { Change, LeaseClaim, ReplicaSet, SharedLeases, Store } from "../store/store.js";
import { ViewReads } from "../store/view.js";
import type { PrimaryMessage, Reply, StoreMessage } from "./messages.js";
import type { SnapshotData } from "./registry-authority.js";

/** PrimaryLink is a worker's side of the IPC channel, as its stores use it: send to the primary, hear what it sends. */
export interface PrimaryLink {
  /** send queues m for the primary; the messages of a turn leave together, in order. */
  send(m: StoreMessage): void;
  /** flush sends what send queued now (at close: the releases of the streams the server ended). */
  flush?(): void;
  /** listen registers the listener of the primary's store messages and returns its removal. */
  listen(listener: (m: PrimaryMessage) => void): () => void;
}

/** PrimaryStoreOptions configure a worker's PrimaryStore. */
export interface PrimaryStoreOptions {
  readonly link: PrimaryLink;
  /** workerId names this worker in the ReplicaSet (its cluster id). */
  readonly workerId: string;
  readonly clock: Clock;
  readonly logger: Logger;
  /** syncTimeoutMs bounds the wait for the primary's snapshot at start. */
  readonly syncTimeoutMs?: number;
}

/** APPLIED_KEPT is how many recent changes a worker keeps by revision, for the answers to its own writes. */
const APPLIED_KEPT = 4096;

interface Waiting {
  resolve(reply: Reply): void;
}

/**
 * PrimaryStore is the Store of a worker process when the registry lives in
 * the cluster primary (MAXINE_STORE=memory with MAXINE_WORKERS > 1; the
 * authority is cluster/registry-authority.ts). Reads come from a local View
 * that applies the primary's feed in revision order; writes are requests
 * over the IPC channel, answered after the feed that carries their change,
 * so a write resolves once this worker's view has it (read your writes).
 * Leases are the primary's: renewals are reported in batches, ended streams
 * as they end; the replica set is the live workers, among which the health
 * checks are divided.
 */
export class PrimaryStore extends ViewReads implements Store {
  registryId = "";
  readonly leases: WorkerLeases;
  readonly replicas: WorkerSet;
  private readonly listeners = new Set<(change: Change) => void>();
  private readonly applied = new Map<number, Change>();
  private readonly waiting = new Map<number, Waiting>();
  private recent: readonly Change[] = [];
  private rev = 0;
  private nextId = 1;
  private closed = false;
  private readonly unlisten: () => void;
  private synced: (() => void) | undefined;

  private constructor(private readonly opts: PrimaryStoreOptions) {
    super();
    this.leases = new WorkerLeases(opts.link, opts.clock);
    this.replicas = new WorkerSet(opts.workerId);
    this.unlisten = opts.link.listen((m) => this.receive(m));
  }

  /** connect asks the primary for the registry and resolves once this worker's view holds it. */
  static async connect(opts: PrimaryStoreOptions): Promise<PrimaryStore> {
    const store = new PrimaryStore(opts);
    const timeoutMs = opts.syncTimeoutMs ?? 10_000;
    await synced(
      store,
      (done) => {
        store.synced = () => done();
        opts.link.send({ maxine: "store-sync" });
      },
      timeoutMs,
      `store: the primary did not send the registry within ${timeoutMs} ms`,
    );
    return store;
  }

  revision(): number {
    return this.rev;
  }

  recentChanges(): readonly Change[] {
    return this.recent;
  }

  async put(spec: InstanceSpec, now: number, lease?: LeaseClaim, owner?: string): Promise<Change | undefined> {
    const reply = await this.ask((id) => ({
      maxine: "store-put",
      id,
      spec: specOnly(spec),
      now,
      ...(lease !== undefined ? { ttlMs: lease.ttlMs } : {}),
      ...(owner !== undefined ? { owner } : {}),
    }));
    if (lease !== undefined && lease.ttlMs > 0) this.leases.registered(keyString(spec), lease.ttlMs);
    return this.changeOf(reply);
  }

  async remove(key: InstanceKey, reason: RemovalReason, ifModRevision?: number, owner?: string): Promise<Change | undefined> {
    const k = { namespace: key.namespace, service: key.service, instanceId: key.instanceId };
    const reply = await this.ask((id) => ({
      maxine: "store-remove",
      id,
      key: k,
      reason,
      ...(ifModRevision !== undefined ? { ifModRevision } : {}),
      ...(owner !== undefined ? { owner } : {}),
    }));
    return this.changeOf(reply);
  }

  subscribe(listener: (change: Change) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // the releases of the streams the server ended (Registry.close reported them before the store closes)
    this.leases.flush();
    this.opts.link.flush?.();
    this.unlisten();
    for (const w of this.waiting.values()) w.resolve({ id: 0, error: { reason: Reason.SHUTTING_DOWN, message: "server: shutting down, retry on another server" } });
    this.waiting.clear();
    this.leases.close();
    this.listeners.clear();
    this.replicas.close();
  }

  private ask(message: (id: number) => StoreMessage): Promise<Reply> {
    if (this.closed) return Promise.reject(new RegistryError(Reason.SHUTTING_DOWN, "server: shutting down, retry on another server"));
    const id = this.nextId++;
    return new Promise<Reply>((resolve) => {
      this.waiting.set(id, { resolve });
      this.leases.flush(); // the lease reports before the write, in the order they were made
      this.opts.link.send(message(id));
    });
  }

  /** changeOf is a write's answer as put and remove return it; the feed before the answer carried the change, so the view has it. */
  private changeOf(reply: Reply): Change | undefined {
    if (reply.error !== undefined) throw replyError(reply.error);
    if (reply.revision === undefined || reply.revision === 0) return undefined;
    const change = this.applied.get(reply.revision);
    if (change === undefined) throw new RegistryError(Reason.UNAVAILABLE, `store: the primary answered with revision ${reply.revision}, which this worker has not applied; retry`);
    return change;
  }

  private receive(m: PrimaryMessage): void {
    switch (m.maxine) {
      case "store-snapshot": {
        if (this.synced === undefined) return; // one snapshot, at start
        const data = deserialize(m.data) as SnapshotData;
        for (const r of data.records) this.view.set(copyRecord(r));
        this.rev = data.revision;
        this.recent = data.recent.map(copyChange);
        this.registryId = m.registryId;
        this.replicas.update(m.live);
        const synced = this.synced;
        this.synced = undefined;
        synced();
        return;
      }
      case "store-feed":
        if (m.data !== undefined) for (const c of deserialize(m.data) as Change[]) this.apply(c);
        for (const reply of m.replies ?? []) {
          const w = this.waiting.get(reply.id);
          if (w === undefined) {
            this.leases.answered(reply);
            continue;
          }
          this.waiting.delete(reply.id);
          w.resolve(reply);
        }
        return;
      case "store-live":
        this.replicas.update(m.live);
        return;
      default:
        return;
    }
  }

  private apply(c: Change): void {
    if (c.revision <= this.rev) return; // held by the snapshot already
    if (c.revision !== this.rev + 1) this.opts.logger.error({ revision: c.revision, applied: this.rev }, "the primary's feed skipped revisions");
    const previous = this.view.get(c.instance);
    let change: Change;
    if (c.type === "REMOVED") {
      this.view.delete(c.instance);
      this.leases.forget(keyString(c.instance));
      change = { type: "REMOVED", revision: c.revision, instance: previous ?? copyRecord(c.instance), reason: c.reason };
    } else {
      const instance = copyRecord(c.instance);
      this.view.set(instance);
      change = c.type === "ADDED" ? { type: "ADDED", revision: c.revision, instance } : { type: "UPDATED", revision: c.revision, instance, previous: previous ?? copyRecord(c.previous) };
    }
    this.rev = c.revision;
    this.applied.set(c.revision, change);
    this.applied.delete(c.revision - APPLIED_KEPT);
    for (const l of this.listeners) l(change);
  }
}

/**
 * WorkerLeases is a worker's SharedLeases: a heartbeat is answered here and
 * noted; the renewals of a turn go to the primary in one message, each
 * lease at most once per quarter of its TTL unless another stream took it
 * (the primary's deadline lags this worker's by at most that); an ended
 * stream is reported with what each of its leases had left, so the primary
 * ends none before this worker would have.
 */
export class WorkerLeases implements SharedLeases {
  private readonly known = new Map<string, { ttlMs: number; stream: number; until: number; reportedAt: number; reportedStream: number }>();
  private renewals = new Map<string, readonly [string, number, number]>();
  private releases: Array<{ stream: number; graceMs: number; keys: Array<[string, number]> }> = [];
  private scheduled = false;
  private readonly ttlWaits = new Map<number, (found: ReadonlyMap<string, number>) => void>();
  private nextId = -1;

  constructor(
    private readonly link: PrimaryLink,
    private readonly clock: Clock,
  ) {}

  renewed(key: string, ttlMs: number, stream: number): void {
    const now = this.clock.now();
    let h = this.known.get(key);
    if (h === undefined) this.known.set(key, (h = { ttlMs, stream, until: 0, reportedAt: -Infinity, reportedStream: 0 }));
    h.ttlMs = ttlMs;
    h.stream = stream;
    h.until = now + ttlMs;
    if (h.reportedStream === stream && now - h.reportedAt < ttlMs / 4) return;
    h.reportedAt = now;
    h.reportedStream = stream;
    this.renewals.set(key, [key, ttlMs, stream]);
    this.schedule();
  }

  released(keys: readonly string[], graceMs: number, stream: number): void {
    const now = this.clock.now();
    const mine: Array<[string, number]> = [];
    for (const k of keys) {
      const h = this.known.get(k);
      if (h === undefined || h.stream !== stream) continue;
      mine.push([k, Math.max(0, h.until - now)]);
      h.stream = 0;
      h.reportedStream = 0;
    }
    if (mine.length === 0) return;
    this.releases.push({ stream, graceMs, keys: mine });
    this.schedule();
  }

  ttls(keys: readonly string[]): Promise<ReadonlyMap<string, number>> {
    if (keys.length === 0) return Promise.resolve(new Map());
    // ids below zero: the answers come in the store's feed, told apart from the store's own requests
    const id = this.nextId--;
    return new Promise((resolve) => {
      this.ttlWaits.set(id, resolve);
      this.flush();
      this.link.send({ maxine: "store-ttls", id, keys });
    });
  }

  /** answered takes the primary's answer to a ttls request; false when it is not one. */
  answered(reply: Reply): boolean {
    const w = this.ttlWaits.get(reply.id);
    if (w === undefined) return false;
    this.ttlWaits.delete(reply.id);
    w(new Map(reply.ttls ?? []));
    return true;
  }

  /** registered notes a lease a Register on this worker wrote. */
  registered(key: string, ttlMs: number): void {
    const h = this.known.get(key);
    if (h !== undefined) h.ttlMs = ttlMs;
  }

  /** forget drops what is known of a lease whose instance is gone. */
  forget(key: string): void {
    this.known.delete(key);
    this.renewals.delete(key);
  }

  /** close answers the TTL requests still waiting with nothing known (the caller's default applies). */
  close(): void {
    for (const w of this.ttlWaits.values()) w(new Map());
    this.ttlWaits.clear();
  }

  /** flush sends the reports made so far, in one message. */
  flush(): void {
    if (this.renewals.size === 0 && this.releases.length === 0) return;
    const renewed = [...this.renewals.values()];
    const released = this.releases;
    this.renewals = new Map();
    this.releases = [];
    this.link.send({ maxine: "store-leases", renewed, released });
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.flush();
    });
  }
}

/** WorkerSet is a worker's ReplicaSet: the workers that hold the registry, as the primary last said. */
export class WorkerSet implements ReplicaSet {
  private members: readonly string[] = [];
  private readonly listeners = new Set<() => void>();

  constructor(readonly self: string) {}

  live(): readonly string[] {
    return this.members;
  }

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** update takes the primary's list. */
  update(live: readonly string[]): void {
    if (live.length === this.members.length && live.every((m, i) => m === this.members[i])) return;
    this.members = [...live];
    for (const l of [...this.listeners]) l();
  }

  close(): void {
    this.listeners.clear();
  }
}

/** specOnly is what a put sends: the spec's fields, not a whole record's (its cached encoding, its revisions). */
function specOnly(s: InstanceSpec): InstanceSpec {
  return {
    namespace: s.namespace,
    service: s.service,
    instanceId: s.instanceId,
    host: s.host,
    port: s.port,
    version: s.version,
    zone: s.zone,
    tags: s.tags,
    metadata: s.metadata,
    weight: s.weight,
    status: s.status,
    owner: s.owner,
    ...(s.operatorStatus !== undefined ? { operatorStatus: s.operatorStatus } : {}),
    ...(s.health !== undefined ? { health: s.health } : {}),
  };
}

/** copyRecord makes a record received from the primary a record of this process (one hidden class, shared strings: recordOf). */
function copyRecord(r: InstanceRecord): InstanceRecord {
  return recordOf(r, r.registeredAt, r.updatedAt, r.createRevision, r.modRevision);
}

function copyChange(c: Change): Change {
  switch (c.type) {
    case "ADDED":
      return { type: "ADDED", revision: c.revision, instance: copyRecord(c.instance) };
    case "UPDATED":
      return { type: "UPDATED", revision: c.revision, instance: copyRecord(c.instance), previous: copyRecord(c.previous) };
    default:
      return { type: "REMOVED", revision: c.revision, instance: copyRecord(c.instance), reason: c.reason };
  }
}

/** replyError is the error a worker's store throws for the primary's refusal of a request: its reason (UNAVAILABLE when unknown) and message. */
export function replyError(error: NonNullable<Reply["error"]>): RegistryError {
  const reason = (Object.values(Reason) as string[]).includes(error.reason) ? (error.reason as Reason) : Reason.UNAVAILABLE;
  return new RegistryError(reason, error.message);
}

/**
 * synced runs ask (which sends a worker store's sync request and hands done
 * to whatever receives the snapshot) and waits for done within timeoutMs;
 * on a timeout or an error it closes store and rejects.
 */
export async function synced(store: { close(): Promise<void> }, ask: (done: (error?: string) => void) => void, timeoutMs: number, late: string): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      timer = setTimeout(() => reject(new Error(late)), timeoutMs);
      ask((error) => (error === undefined ? resolve() : reject(new Error(error))));
    });
  } catch (err) {
    await store.close();
    throw err;
  } finally {
    clearTimeout(timer);
  }
}
