import { serialize } from "node:v8";
import { DeadlineTimer, type Clock } from "../domain/clock.js";
import type { ConfigChange } from "../domain/config-entry.js";
import { Reason, RegistryError } from "../domain/errors.js";
import { keyString, type InstanceKey, type InstanceRecord, type InstanceSpec, type RemovalReason } from "../domain/instance.js";
import type { Logger } from "../domain/logger.js";
import { HeartbeatStream, LeaseTable } from "../registry/leases.js";
import type { ConfigStore } from "../store/config-store.js";
import { MemoryStore } from "../store/memory-store.js";
import type { Change } from "../store/store.js";
import { isStoreMessage, MAX_BATCH, type PrimaryMessage, type Reply, type StoreLeases } from "./messages.js";
import { configWriteOf, instanceKeyOf, instanceSpecOf, MalformedMessage } from "./store-messages.js";

/**
 * WorkerChannel is the authority's side of one worker's IPC channel: send
 * calls done once the message has left this process (its bytes are then no
 * longer held here); reset ends a worker that cannot keep up (the primary
 * kills it, and starts another).
 */
export interface WorkerChannel {
  readonly id: number;
  send(m: PrimaryMessage, done: () => void): void;
  reset(why: string): void;
}

/** AuthorityOptions are the settings the authority works with. */
export interface AuthorityOptions {
  readonly clock: Clock;
  readonly logger: Logger;
  /** graceMs is how long the instances of a worker's heartbeat streams stay after the worker died (MAXINE_GRACE). */
  readonly graceMs: number;
  /** historySize is how many recent changes a starting worker gets to seed its resume history (MAXINE_WATCH_HISTORY). */
  readonly historySize: number;
  /** maxQueuedBytes bounds what may wait in this process to be sent to one worker (MAXINE_WORKER_IPC_BUFFER); past it the worker is reset. */
  readonly maxQueuedBytes: number;
  /** openConfig opens the configuration store, once, when a worker first needs it. */
  readonly openConfig: () => Promise<ConfigStore>;
}

/** SnapshotData is what a StoreSnapshot's data decodes to. */
export interface SnapshotData {
  readonly revision: number;
  readonly records: readonly InstanceRecord[];
  readonly recent: readonly Change[];
}

/** ConfigSnapshotData is what a ConfigSnapshot's data decodes to. */
export interface ConfigSnapshotData {
  readonly revision: number;
  readonly entries: readonly ConfigChange["entry"][];
}

class Peer {
  synced = false;
  configSynced = false;
  gone = false;
  /** queued counts the bytes sent to this worker that have not yet left this process. */
  queued = 0;
  replies: Reply[] = [];
  configReplies: Reply[] = [];
  readonly streams = new Map<number, HeartbeatStream>();

  constructor(readonly channel: WorkerChannel) {}

  stream(id: number): HeartbeatStream {
    let s = this.streams.get(id);
    if (s === undefined) this.streams.set(id, (s = new HeartbeatStream(id)));
    return s;
  }
}

/** REPLY_BYTES is what one reply is counted as against MAXINE_WORKER_IPC_BUFFER (its fields are a few numbers). */
const REPLY_BYTES = 64;

/**
 * RegistryAuthority is the registry of a memory-store server with workers
 * (docs/decisions/0015-registry-in-the-primary.md): it lives in the
 * cluster primary and is the one place that commits changes, as Redis is
 * for replicas. Its state is a MemoryStore (revisions, the View, ownership
 * and health-result rules); its leases are a LeaseTable whose streams are
 * the workers' heartbeat streams, so a lease passes between workers, ends
 * with its stream's grace and expires with the reasons one server gives;
 * expiry runs here. Each turn's changes are encoded once (v8.serialize)
 * and sent to every worker once, with that worker's answers after them, so
 * a worker's write resolves only once its own view has the change. It also
 * opens the configuration store (one process per MAXINE_DATA_DIR) and
 * feeds it the same way.
 */
export class RegistryAuthority {
  readonly store = new MemoryStore();
  private readonly leases = new LeaseTable();
  /** ttls are the lease TTLs instances were last registered with (SharedLeases.ttls). */
  private readonly ttls = new Map<string, number>();
  private readonly peers = new Map<number, Peer>();
  private recent: Change[] = [];
  private batch: Change[] = [];
  private configBatch: ConfigChange[] = [];
  private flushing = false;
  private readonly expiry: DeadlineTimer;
  private config: Promise<ConfigStore> | undefined;
  private closed = false;

  constructor(private readonly opts: AuthorityOptions) {
    this.expiry = new DeadlineTimer(opts.clock, () => this.expire());
    this.store.subscribe((c) => {
      this.batch.push(c);
      this.recent.push(c);
      if (this.recent.length >= 2 * opts.historySize) this.recent = this.recent.slice(-opts.historySize);
      if (c.type === "REMOVED") {
        this.leases.delete(c.instance);
        this.ttls.delete(keyString(c.instance));
      }
      this.schedule();
    });
  }

  /** live lists the ids of the workers that hold the registry (their ReplicaSet). */
  live(): string[] {
    return [...this.peers.values()].filter((p) => p.synced && !p.gone).map((p) => String(p.channel.id)).sort();
  }

  /** attach adds a worker: it gets nothing until it asks for a snapshot (store-sync). */
  attach(channel: WorkerChannel): void {
    this.peers.set(channel.id, new Peer(channel));
  }

  /**
   * detach removes a worker that exited: its heartbeat streams ended with
   * it, so the leases they held pass to another worker's stream that beat
   * them or start their grace, as if each stream had ended.
   */
  detach(id: number): void {
    const peer = this.peers.get(id);
    if (peer === undefined) return;
    this.peers.delete(id);
    peer.gone = true;
    const now = this.opts.clock.now();
    for (const s of peer.streams.values()) s.closed = true;
    for (const s of peer.streams.values()) this.leases.release(s, now, this.opts.graceMs);
    this.arm();
    if (peer.synced) this.announce();
  }

  /**
   * receive handles a message from worker id. A message that is not what
   * the worker's store sends (a fault in the worker) is refused with a log
   * line and, when it names a request, an INVALID_ARGUMENT answer: it
   * never changes the registry or throws here.
   */
  receive(id: number, m: { readonly maxine: string } & Record<string, unknown>): void {
    const peer = this.peers.get(id);
    if (peer === undefined || peer.gone || this.closed) return;
    if (m.maxine === "store-batch") return this.receiveBatch(id, m.messages);
    try {
      this.handle(peer, m);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      this.opts.logger.warn({ worker: id, kind: String(m.maxine).slice(0, 32), err: message }, "a worker's store message was refused");
      const req = typeof m.id === "number" && Number.isSafeInteger(m.id) ? m.id : undefined;
      if (req !== undefined) {
        const reply = { id: req, error: { reason: Reason.INVALID_ARGUMENT, message: `primary: ${message}` } };
        (m.maxine === "config-write" ? peer.configReplies : peer.replies).push(reply);
        this.schedule();
      }
    }
  }

  /** receiveBatch handles a worker's StoreBatch: each of its messages in order, as if sent alone (a batch in a batch is refused). */
  private receiveBatch(id: number, messages: unknown): void {
    if (!Array.isArray(messages) || messages.length > MAX_BATCH) {
      this.opts.logger.warn({ worker: id, err: `messages: must be an array of at most ${MAX_BATCH} store messages` }, "a worker's store message was refused");
      return;
    }
    for (const m of messages) {
      if (isStoreMessage(m) && m.maxine !== "store-batch") this.receive(id, m as never);
      else this.opts.logger.warn({ worker: id, err: "messages: each must be a store message, not a batch" }, "a worker's store message was refused");
    }
  }

  /** close stops expiry and closes the configuration store. */
  async close(): Promise<void> {
    this.closed = true;
    this.expiry.cancel();
    const config = await this.config?.catch(() => undefined);
    await config?.close();
    await this.store.close();
  }

  private handle(peer: Peer, m: { readonly maxine: string } & Record<string, unknown>): void {
    switch (m.maxine) {
      case "store-sync":
        return this.sync(peer);
      case "store-put": {
        const id = requestId(m.id);
        const spec = instanceSpecOf(m.spec);
        const now = finite(m.now, "now");
        const ttlMs = m.ttlMs === undefined ? undefined : finite(m.ttlMs, "ttlMs");
        const owner = optionalString(m.owner, "owner");
        return this.answer(peer, id, () => this.put(spec, now, ttlMs, owner));
      }
      case "store-remove": {
        const id = requestId(m.id);
        const key = instanceKeyOf(m.key);
        const reason = removalReasonOf(m.reason);
        const ifModRevision = m.ifModRevision === undefined ? undefined : finite(m.ifModRevision, "ifModRevision");
        const owner = optionalString(m.owner, "owner");
        return this.answer(peer, id, () => this.store.removeNow(key, reason, ifModRevision, owner));
      }
      case "store-ttls": {
        const id = requestId(m.id);
        if (!Array.isArray(m.keys)) throw new MalformedMessage("keys: must be a list");
        const found: Array<[string, number]> = [];
        for (const k of m.keys as unknown[]) {
          const ttl = typeof k === "string" ? this.ttls.get(k) : undefined;
          if (ttl !== undefined) found.push([k as string, ttl]);
        }
        peer.replies.push({ id, ttls: found });
        return this.schedule();
      }
      case "store-leases":
        return this.leaseReports(peer, m as unknown as StoreLeases);
      case "config-sync":
        return this.configSync(peer);
      case "config-write": {
        const id = requestId(m.id);
        const write = configWriteOf(m.write);
        this.openConfig().then(
          (store) => store.write(write),
          (err: unknown) => Promise.reject(err),
        ).then(
          (change) => peer.configReplies.push({ id, revision: change.revision }),
          (err: unknown) => peer.configReplies.push({ id, error: errorOf(err) }),
        ).finally(() => this.schedule());
        return;
      }
      default:
        throw new MalformedMessage(`unknown kind ${JSON.stringify(m.maxine)}`);
    }
  }

  /** put commits a worker's put and its lease claim in one turn: a claim refused with its write changes nothing. */
  private put(spec: InstanceSpec, now: number, ttlMs: number | undefined, owner: string | undefined): Change | undefined {
    // Without a lease claim, an absent instance is not created (as in Redis): a worker's update of what its view
    // still held must not bring back an instance that expired or was removed meanwhile.
    if (ttlMs === undefined && this.store.get(spec) === undefined) return undefined;
    const change = this.store.putNow(spec, now, owner);
    if (ttlMs === undefined) return change;
    const k = keyString(spec);
    if (ttlMs <= 0) {
      this.leases.delete(spec);
      this.ttls.delete(k);
    } else {
      this.ttls.set(k, ttlMs);
      this.leases.renew(spec, ttlMs, this.opts.clock.now());
      this.arm();
    }
    return change;
  }

  private answer(peer: Peer, id: number, commit: () => Change | undefined): void {
    try {
      peer.replies.push({ id, revision: commit()?.revision ?? 0 });
    } catch (err) {
      peer.replies.push({ id, error: errorOf(err) });
    }
    this.schedule();
  }

  /**
   * leaseReports applies a worker's batch: each renewal extends its lease
   * and binds it to the worker's stream (another stream holding it keeps
   * it, the new one is next in line); each ended stream releases its
   * leases, after the lease's own deadline by the worker's count.
   */
  private leaseReports(peer: Peer, m: StoreLeases): void {
    if (!Array.isArray(m.renewed) || !Array.isArray(m.released)) throw new MalformedMessage("renewed and released: must be lists");
    const now = this.opts.clock.now();
    for (const r of m.renewed) {
      if (!Array.isArray(r) || typeof r[0] !== "string") continue;
      const ttl = r[1];
      const stream = r[2];
      if (!(typeof ttl === "number" && ttl > 0 && Number.isFinite(ttl)) || !Number.isSafeInteger(stream)) continue;
      const key = keyOf(r[0]);
      // as in Redis, a renewal of an instance that is gone, or was registered without a lease, changes nothing
      if (key === undefined || this.store.get(key) === undefined || !this.ttls.has(r[0])) continue;
      const lease = this.leases.extend(key, ttl, now, true);
      this.leases.bind(lease, peer.stream(stream));
    }
    for (const ended of m.released) {
      if (typeof ended !== "object" || ended === null || !Number.isSafeInteger(ended.stream)) continue;
      const stream = peer.streams.get(ended.stream);
      if (stream === undefined) continue;
      const graceMs = typeof ended.graceMs === "number" && ended.graceMs >= 0 ? ended.graceMs : this.opts.graceMs;
      for (const pair of Array.isArray(ended.keys) ? ended.keys : []) {
        const lease = Array.isArray(pair) && typeof pair[0] === "string" ? this.leases.get(pair[0]) : undefined;
        const left = Array.isArray(pair) ? pair[1] : undefined;
        // the worker batches renewals: its own deadline may be later than the one it last reported
        if (lease !== undefined && lease.stream === stream && typeof left === "number" && Number.isFinite(left)) lease.deadline = Math.max(lease.deadline, now + left);
      }
      stream.closed = true;
      peer.streams.delete(ended.stream);
      this.leases.release(stream, now, graceMs);
    }
    this.arm();
  }

  /** sync sends a worker the registry at the latest revision; the feed it gets from then on starts after it. */
  private sync(peer: Peer): void {
    this.flush(); // what is batched goes to the others; this worker's snapshot holds it
    const records: InstanceRecord[] = [];
    for (const ns of this.store.namespaces()) for (const [, service] of this.store.services(ns)) records.push(...service.sorted());
    const recent = this.recent.slice(-this.opts.historySize);
    const data = serialize({ revision: this.store.revision(), records, recent } satisfies SnapshotData);
    peer.synced = true;
    this.send(peer, { maxine: "store-snapshot", registryId: this.store.registryId, data, live: this.live() }, data.byteLength);
    this.announce();
  }

  private openConfig(): Promise<ConfigStore> {
    this.config ??= this.opts.openConfig().then(
      (store) => {
        store.subscribe((c) => {
          this.configBatch.push(c);
          this.schedule();
        });
        return store;
      },
      (err: unknown) => {
        this.config = undefined; // the next worker that needs it tries again
        throw err;
      },
    );
    return this.config;
  }

  private configSync(peer: Peer): void {
    this.openConfig().then(
      (store) => {
        if (peer.gone) return;
        this.flush();
        if (store.entries === undefined) throw new Error("the configuration store cannot list its entries");
        const data = serialize({ revision: store.revision(), entries: [...store.entries()] } satisfies ConfigSnapshotData);
        peer.configSynced = true;
        this.send(peer, { maxine: "config-snapshot", registryId: store.registryId, data }, data.byteLength);
      },
      (err: unknown) => {
        const error = err instanceof Error ? err.message : String(err);
        this.opts.logger.error({ err: error }, "the configuration store could not be opened");
        this.send(peer, { maxine: "config-snapshot", error }, REPLY_BYTES);
      },
    );
  }

  private announce(): void {
    const live = this.live();
    for (const p of this.peers.values()) if (p.synced) this.send(p, { maxine: "store-live", live }, REPLY_BYTES);
  }

  private schedule(): void {
    if (this.flushing) return;
    this.flushing = true;
    setImmediate(() => this.flush());
  }

  /** flush sends the turn's changes, encoded once, and then each worker's answers. */
  private flush(): void {
    this.flushing = false;
    const data = this.batch.length > 0 ? serialize(this.batch) : undefined;
    const configData = this.configBatch.length > 0 ? serialize(this.configBatch) : undefined;
    this.batch = [];
    this.configBatch = [];
    for (const peer of [...this.peers.values()]) {
      const replies = peer.replies;
      if ((data !== undefined && peer.synced) || replies.length > 0) {
        peer.replies = [];
        const feed = peer.synced && data !== undefined ? data : undefined;
        this.send(peer, { maxine: "store-feed", ...(feed !== undefined ? { data: feed } : {}), ...(replies.length > 0 ? { replies } : {}) }, (feed?.byteLength ?? 0) + REPLY_BYTES * (replies.length + 1));
      }
      const configReplies = peer.configReplies;
      if ((configData !== undefined && peer.configSynced) || configReplies.length > 0) {
        peer.configReplies = [];
        const feed = peer.configSynced && configData !== undefined ? configData : undefined;
        this.send(peer, { maxine: "config-feed", ...(feed !== undefined ? { data: feed } : {}), ...(configReplies.length > 0 ? { replies: configReplies } : {}) }, (feed?.byteLength ?? 0) + REPLY_BYTES * (configReplies.length + 1));
      }
    }
  }

  /**
   * send hands m to a worker, counting its bytes until they have left this
   * process. A worker that reads too slowly for what it is sent would make
   * the primary hold its feed without bound: past maxQueuedBytes it is
   * reset (killed and started again, with a fresh snapshot) instead.
   */
  private send(peer: Peer, m: PrimaryMessage, bytes: number): void {
    if (peer.gone) return;
    if (peer.queued + bytes > this.opts.maxQueuedBytes) {
      this.opts.logger.error(
        { worker: peer.channel.id, queuedBytes: peer.queued, limit: this.opts.maxQueuedBytes },
        "a worker does not read the registry's feed fast enough (MAXINE_WORKER_IPC_BUFFER): it is reset",
      );
      this.detach(peer.channel.id);
      peer.channel.reset("MAXINE_WORKER_IPC_BUFFER exceeded");
      return;
    }
    peer.queued += bytes;
    peer.channel.send(m, () => (peer.queued -= bytes));
  }

  /** arm keeps one timer set for the earliest lease deadline. */
  private arm(): void {
    if (!this.closed) this.expiry.arm(this.leases.nextDue());
  }

  /** expire removes every instance whose lease ran out (LEASE_EXPIRED) or whose stream's grace ended (STREAM_CLOSED). */
  private expire(): void {
    let removed = 0;
    for (const { key, reason } of this.leases.expireDue(this.opts.clock.now())) {
      if (this.store.removeNow(key, reason) !== undefined) removed++;
    }
    if (removed > 0) this.opts.logger.info({ removed }, "expired leases swept");
    this.arm();
  }
}

function requestId(v: unknown): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v)) throw new MalformedMessage("id: must be an integer");
  return v;
}

function finite(v: unknown, field: string): number {
  if (typeof v !== "number" || !Number.isFinite(v)) throw new MalformedMessage(`${field}: must be a finite number`);
  return v;
}

function optionalString(v: unknown, field: string): string | undefined {
  if (v !== undefined && typeof v !== "string") throw new MalformedMessage(`${field}: must be a string`);
  return v;
}

const REMOVAL_REASONS = new Set<string>(["DEREGISTERED", "LEASE_EXPIRED", "STREAM_CLOSED", "CHECK_FAILED"]);

function removalReasonOf(v: unknown): RemovalReason {
  if (typeof v !== "string" || !REMOVAL_REASONS.has(v)) throw new MalformedMessage("reason: must be a removal reason");
  return v as RemovalReason;
}

function keyOf(k: string): InstanceKey | undefined {
  const [namespace, service, instanceId, extra] = k.split("/");
  if (namespace === undefined || service === undefined || instanceId === undefined || extra !== undefined) return undefined;
  return { namespace, service, instanceId };
}

/** errorOf is how an error crosses to the worker: a RegistryError's reason and message; anything else is the primary's fault, UNAVAILABLE. */
function errorOf(err: unknown): { reason: string; message: string } {
  if (err instanceof RegistryError) return { reason: err.reason, message: err.message };
  return { reason: Reason.UNAVAILABLE, message: `primary: ${err instanceof Error ? err.message : String(err)}` };
}
