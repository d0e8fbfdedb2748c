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

/** Lease is the liveness state of one instance. Not revisioned: renewals make no events. */
export interface Lease {
  readonly key: InstanceKey;
  /** id is keyString(key), kept so that a renewal computes it once. */
  readonly id: string;
  ttlMs: number;
  /** deadline is when the TTL runs out unless renewed. */
  deadline: number;
  /** graceUntil is when the instance goes because its stream ended; Infinity while bound or never bound. */
  graceUntil: number;
  stream: HeartbeatStream | undefined;
  /** others are other open streams that beat this instance while stream held it (a reconnecting session, or an intruder): one of them takes it when stream ends. */
  others: HeartbeatStream[] | undefined;
  /** load is the last load reported by a heartbeat (undefined if none), for LEAST_LOADED and Discover include_all. */
  load: number | undefined;
  /** scheduled is the time of this lease's live entry in the expiry heap. */
  scheduled: number;
}

/** Expiry is one lease that ran out. */
export interface Expiry {
  readonly key: InstanceKey;
  readonly reason: RemovalReason;
}

/**
 * LeaseTable tracks deadlines with a lazy min-heap: a renewal only moves a
 * lease's deadline (O(1) per heartbeat), and when the heap entry comes due a
 * renewed lease is pushed again at its new deadline. Each lease has at most
 * one live heap entry.
 */
export class LeaseTable {
  private readonly leases = new Map<string, Lease>();
  private readonly heap: Array<{ at: number; key: string }> = [];

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
      lease = { key, id: k, ttlMs, deadline: 0, graceUntil: Infinity, stream: undefined, others: undefined, load: undefined, scheduled: Infinity };
      this.leases.set(k, lease);
    } else if (replaceTtl) {
      lease.ttlMs = ttlMs;
    }
    lease.deadline = now + lease.ttlMs;
    this.schedule(k, lease, lease.deadline);
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
      this.schedule(k, lease, lease.graceUntil);
      released.push(k);
    }
    stream.keys.clear();
    return { released, moved };
  }

  /** delete forgets a lease (its instance was removed). */
  delete(key: InstanceKey): void {
    const k = keyString(key);
    const lease = this.leases.get(k);
    if (lease === undefined) return;
    lease.stream?.keys.delete(k);
    if (lease.others !== undefined) for (const s of lease.others) s.keys.delete(k);
    this.leases.delete(k);
  }

  /** nextDue is the earliest time a lease may run out, or undefined when none can. */
  nextDue(): number | undefined {
    return this.heap[0]?.at;
  }

  /** expireDue removes and returns every lease whose deadline or grace has passed at now. */
  expireDue(now: number): Expiry[] {
    const out: Expiry[] = [];
    while (this.heap.length > 0 && this.heap[0]!.at <= now) {
      const { at, key } = this.pop();
      const lease = this.leases.get(key);
      if (lease === undefined || lease.scheduled !== at) continue; // stale entry
      lease.scheduled = Infinity;
      const due = Math.min(lease.deadline, lease.graceUntil);
      if (due > now) {
        this.schedule(key, lease, due);
        continue;
      }
      out.push({ key: lease.key, reason: lease.graceUntil <= lease.deadline ? "STREAM_CLOSED" : "LEASE_EXPIRED" });
      this.delete(lease.key);
    }
    return out;
  }

  private schedule(k: string, lease: Lease, at: number): void {
    if (at >= lease.scheduled) return; // the live entry fires first and re-schedules
    lease.scheduled = at;
    this.push({ at, key: k });
  }

  private push(e: { at: number; key: string }): void {
    const h = this.heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (h[p]!.at <= e.at) break;
      h[i] = h[p]!;
      i = p;
    }
    h[i] = e;
  }

  private pop(): { at: number; key: string } {
    const h = this.heap;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= h.length) break;
        const c = l + 1 < h.length && h[l + 1]!.at < h[l]!.at ? l + 1 : l;
        if (h[c]!.at >= last.at) break;
        h[i] = h[c]!;
        i = c;
      }
      h[i] = last;
    }
    return top;
  }
}
