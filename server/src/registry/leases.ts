import { OPEN, type Access } from "../domain/access.js";
import { keyString, type InstanceKey, type RemovalReason } from "../domain/instance.js";

/**
 * HeartbeatStream is one open Heartbeat stream: the instances bound to it
 * live as long as it does (plus the grace period).
 */
export class HeartbeatStream {
  /** keys of the instances bound to this stream. */
  readonly keys = new Set<string>();
  closed = false;

  /** access is what the stream's caller may do: its beats renew and change only what it may. */
  constructor(
    readonly id: number,
    readonly access: Access = OPEN,
  ) {}
}

/**
 * Lease is the liveness state of one instance. Not revisioned: renewals
 * make no events. It is also the instance's key (namespace, service,
 * instanceId) and its own entry in the table's expiry heap, so that a
 * stored instance costs one object here, not a lease, a key and heap
 * entries (bench/instance-heap.mjs).
 */
export class Lease implements InstanceKey {
  readonly namespace: string;
  readonly service: string;
  readonly instanceId: string;
  /** deadline is when the TTL runs out unless renewed. */
  deadline = 0;
  /** graceUntil is when the instance goes because its stream ended; Infinity while bound or never bound. */
  graceUntil = Infinity;
  stream: HeartbeatStream | undefined = undefined;
  /** others are other open streams that beat this instance while stream held it (a reconnecting session, or an intruder): one of them takes it when stream ends. */
  others: HeartbeatStream[] | undefined = undefined;
  /** load is the last load reported by a heartbeat (undefined if none), for LEAST_LOADED and Discover include_all. */
  load: number | undefined = undefined;
  /** scheduled is when this lease is next looked at (its place in the expiry heap); Infinity when not in the heap. */
  scheduled = Infinity;
  /** at is this lease's index in the expiry heap, -1 when not in it. */
  at = -1;

  constructor(
    key: InstanceKey,
    /** id is keyString(key), kept so that a renewal computes it once. */
    readonly id: string,
    public ttlMs: number,
  ) {
    // copied, not kept: the caller's key may be a whole instance (a Register's spec)
    this.namespace = key.namespace;
    this.service = key.service;
    this.instanceId = key.instanceId;
  }

  /** key is the instance's key (the lease itself). */
  get key(): InstanceKey {
    return this;
  }
}

/** Expiry is one lease that ran out. */
export interface Expiry {
  readonly key: InstanceKey;
  readonly reason: RemovalReason;
}

/**
 * LeaseTable tracks deadlines with a min-heap of leases ordered by when each
 * is next looked at: a renewal only moves a lease's deadline later (O(1) per
 * heartbeat, no heap work), and when a lease comes due with a later
 * deadline it moves down the heap to it; an earlier time (a new lease, a
 * grace period) moves it up. Every lease is in the heap at most once.
 */
export class LeaseTable {
  private readonly leases = new Map<string, Lease>();
  private readonly heap: Lease[] = [];

  get size(): number {
    return this.leases.size;
  }

  get(key: string): Lease | undefined {
    return this.leases.get(key);
  }

  /** renew starts or extends the lease of key to now + ttlMs. */
  renew(key: InstanceKey, ttlMs: number, now: number): Lease {
    return this.extend(key, ttlMs, now, true);
  }

  /**
   * extend extends the lease of key by its own TTL (a heartbeat), or starts
   * it with ttlMs when there is none; with replaceTtl, ttlMs replaces the
   * lease's TTL (a Register).
   */
  extend(key: InstanceKey, ttlMs: number, now: number, replaceTtl = false): Lease {
    const k = keyString(key);
    let lease = this.leases.get(k);
    if (lease === undefined) {
      lease = new Lease(key, k, ttlMs);
      this.leases.set(k, lease);
    } else if (replaceTtl) {
      lease.ttlMs = ttlMs;
    }
    lease.deadline = now + lease.ttlMs;
    this.schedule(lease, lease.deadline);
    return lease;
  }

  /**
   * bind ties a lease to a stream. The stream that holds it keeps it while
   * it is open: another stream that beats the same instance is only noted
   * (others), and takes the lease when the holder ends. So a second stream
   * that beats once and goes away (by mistake, or to have the instance
   * removed) cannot end an instance whose own stream still beats; and a
   * session that reconnects while its old stream lingers keeps its
   * instance when the old stream finally closes.
   */
  bind(lease: Lease, stream: HeartbeatStream): void {
    const k = lease.id;
    const holder = lease.stream;
    if (holder === undefined || holder.closed) {
      holder?.keys.delete(k);
      lease.stream = stream;
      stream.keys.add(k);
    } else if (holder !== stream && !stream.keys.has(k)) {
      (lease.others ??= []).push(stream);
      stream.keys.add(k);
    }
    lease.graceUntil = Infinity;
  }

  /**
   * release ends a closed stream's hold: each lease it held passes to
   * another open stream that beat it (returned in moved, to tell a shared
   * store) or, when there is none, starts its grace period (returned in
   * released).
   */
  release(stream: HeartbeatStream, now: number, graceMs: number): { released: string[]; moved: Lease[] } {
    const released: string[] = [];
    const moved: Lease[] = [];
    for (const k of stream.keys) {
      const lease = this.leases.get(k);
      if (lease === undefined) continue;
      if (lease.stream !== stream) {
        if (lease.others !== undefined) {
          lease.others = lease.others.filter((s) => s !== stream);
          if (lease.others.length === 0) lease.others = undefined;
        }
        continue;
      }
      let next: HeartbeatStream | undefined;
      while (lease.others !== undefined && lease.others.length > 0 && next === undefined) {
        const s = lease.others.pop()!;
        if (!s.closed) next = s;
      }
      if (lease.others?.length === 0) lease.others = undefined;
      lease.stream = next;
      if (next !== undefined) {
        moved.push(lease);
        continue;
      }
      lease.graceUntil = now + graceMs;
      this.schedule(lease, lease.graceUntil);
      released.push(k);
    }
    stream.keys.clear();
    return { released, moved };
  }

  /** delete forgets a lease (its instance was removed). */
  delete(key: InstanceKey): void {
    const lease = this.leases.get(keyString(key));
    if (lease !== undefined) this.forget(lease);
  }

  private forget(lease: Lease): void {
    const k = lease.id;
    lease.stream?.keys.delete(k);
    if (lease.others !== undefined) for (const s of lease.others) s.keys.delete(k);
    this.leases.delete(k);
    if (lease.at >= 0) this.removeAt(lease.at);
  }

  /** nextDue is the earliest time a lease may run out, or undefined when none can. */
  nextDue(): number | undefined {
    return this.heap[0]?.scheduled;
  }

  /** expireDue removes and returns every lease whose deadline or grace has passed at now. */
  expireDue(now: number): Expiry[] {
    const out: Expiry[] = [];
    const h = this.heap;
    while (h.length > 0 && h[0]!.scheduled <= now) {
      const lease = h[0]!;
      const due = Math.min(lease.deadline, lease.graceUntil);
      if (due > now) {
        // renewed since it was scheduled: look again at its new time
        lease.scheduled = due;
        this.down(0);
        continue;
      }
      out.push({ key: lease, reason: lease.graceUntil <= lease.deadline ? "STREAM_CLOSED" : "LEASE_EXPIRED" });
      this.forget(lease);
    }
    return out;
  }

  /** schedule has lease looked at by time at, if that is earlier than it would be. */
  private schedule(lease: Lease, at: number): void {
    if (at >= lease.scheduled) return; // it is looked at first, and then at its deadline or grace
    lease.scheduled = at;
    if (lease.at < 0) {
      lease.at = this.heap.length;
      this.heap.push(lease);
    }
    this.up(lease.at);
  }

  private removeAt(i: number): void {
    const h = this.heap;
    const gone = h[i]!;
    const last = h.pop()!;
    gone.at = -1;
    gone.scheduled = Infinity;
    if (last === gone) return;
    h[i] = last;
    last.at = i;
    this.up(i);
    this.down(last.at);
  }

  private up(i: number): void {
    const h = this.heap;
    const lease = h[i]!;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const parent = h[p]!;
      if (parent.scheduled <= lease.scheduled) break;
      h[i] = parent;
      parent.at = i;
      i = p;
    }
    h[i] = lease;
    lease.at = i;
  }

  private down(i: number): void {
    const h = this.heap;
    const lease = h[i]!;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= h.length) break;
      const c = l + 1 < h.length && h[l + 1]!.scheduled < h[l]!.scheduled ? l + 1 : l;
      const child = h[c]!;
      if (child.scheduled >= lease.scheduled) break;
      h[i] = child;
      child.at = i;
      i = c;
    }
    h[i] = lease;
    lease.at = i;
  }
}
