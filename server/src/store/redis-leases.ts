import type { Clock } from "../domain/clock.js";
import type { Logger } from "../domain/logger.js";
import type { SharedLeases } from "./store.js";

/** HeldLease is what a replica knows of one lease it holds (renewed by its streams or its Register calls). */
export interface HeldLease {
  ttlMs: number;
  /** owner is "<replica>:<stream>" of the stream holding the lease here, "" for Register-only leases. */
  owner: string;
  /** stream is the id of that stream (0 with no owner). */
  stream: number;
  /** until is when the lease lapses by this replica's own knowledge. */
  until: number;
  /** written is the deadline last written to Redis (estimated on this replica's clock). */
  written: number;
  writtenOwner: string;
}

/** HeldLeasesHost is what HeldLeases needs from the Redis store. */
export interface HeldLeasesHost {
  readonly replicaId: string;
  readonly renewIntervalMs: number;
  readonly clock: Clock;
  readonly logger: Logger;
  /** writable is false while Redis is unreachable or the mirror re-syncs: renewals then wait. */
  writable(): boolean;
  registryId(): string;
  script(name: "maxineRenew" | "maxineRelease", args: ReadonlyArray<string | number>): Promise<unknown>;
  /** registeredTtls reads the stored lease TTLs (ms) of keys, null where none is stored. */
  registeredTtls(keys: readonly string[]): Promise<Array<string | null>>;
  /** failed hears of a Redis call that failed. */
  failed(err: unknown): void;
}

const RENEW_CHUNK = 2000;

/**
 * HeldLeases is one replica's side of the leases it holds: heartbeats are
 * answered locally and only noted here; flush writes, in one script call
 * per 2,000 leases, those whose Redis deadline would come within half a TTL
 * (plus a flush interval). Beats at a third of the TTL thus cost one write
 * every other beat, batched with every other lease's. What it holds is also
 * what the store re-asserts after an outage. Which stream holds a key's
 * binding across replicas is decided in Redis, atomically, by RENEW and
 * RELEASE (redis-scripts.ts): a replica reports the stream its own lease
 * table binds, and its RELEASE removes nothing that another replica's
 * stream holds.
 */
export class HeldLeases implements SharedLeases {
  private readonly held = new Map<string, HeldLease>();
  private readonly pending = new Set<string>();
  /** releasing are the RELEASE calls not answered yet (they never reject). */
  private readonly releasing = new Set<Promise<void>>();

  constructor(private readonly host: HeldLeasesHost) {}

  /**
   * bindingSlackMs is how long past its TTL a renewal keeps this replica's
   * binding of a key fresh in Redis (RENEW, PUT). A stream that beats within
   * its TTL writes again by then: beats past half the last written TTL are
   * flushed within a renew interval, so two intervals leave room for the
   * round trip. A binding not renewed by then is stale and another
   * replica's beating stream takes it (docs/redis.md, "Heartbeat binding").
   */
  get bindingSlackMs(): number {
    return 2 * this.host.renewIntervalMs;
  }

  renewed(key: string, ttlMs: number, stream: number): void {
    const owner = `${this.host.replicaId}:${stream}`;
    const now = this.host.clock.now();
    let h = this.held.get(key);
    if (h === undefined) this.held.set(key, (h = { ttlMs, owner, stream, until: 0, written: 0, writtenOwner: "" }));
    h.ttlMs = ttlMs;
    h.owner = owner;
    h.stream = stream;
    h.until = now + ttlMs;
    if (h.writtenOwner !== owner || h.written - now < ttlMs / 2 + this.host.renewIntervalMs) this.pending.add(key);
  }

  released(keys: readonly string[], graceMs: number, stream: number): void {
    const owner = `${this.host.replicaId}:${stream}`;
    const now = this.host.clock.now();
    // key, ms left of its lease by this replica's count (Redis's deadline lags it by up to half a TTL)
    const mine: Array<string | number> = [];
    for (const k of keys) {
      const h = this.held.get(k);
      if (h === undefined || h.owner !== owner) continue;
      mine.push(k, Math.max(0, h.until - now));
      h.owner = "";
      h.stream = 0;
      h.until = Math.min(h.until, now + graceMs);
      this.pending.delete(k);
    }
    if (mine.length === 0) return;
    if (!this.host.writable()) {
      this.host.logger.debug({ keys: mine.length / 2 }, "lease release not sent (Redis unreachable or re-syncing); the TTL applies");
      return;
    }
    // The renewals of these keys still pending are dropped: RELEASE starts the grace of a key whose binding is free in Redis too.
    const sent = this.host.script("maxineRelease", [this.host.registryId(), graceMs, owner, ...mine]).then(
      () => undefined,
      (err: unknown) => {
        this.host.failed(err);
        this.host.logger.debug({ err: (err as Error).message }, "lease release not stored; the TTL applies");
      },
    );
    this.releasing.add(sent);
    void sent.finally(() => this.releasing.delete(sent));
  }

  /**
   * releasesSent resolves once every RELEASE sent so far is answered (or
   * failed; it never rejects): a closing store waits for it before it
   * disconnects, so the streams its server ended get their grace. Each
   * call is bounded by the command timeout (MAXINE_REDIS_COMMAND_TIMEOUT).
   */
  async releasesSent(): Promise<void> {
    await Promise.all([...this.releasing]);
  }

  async ttls(keys: readonly string[]): Promise<ReadonlyMap<string, number>> {
    const found = new Map<string, number>();
    if (keys.length > 0 && this.host.writable()) {
      try {
        const stored = await this.host.registeredTtls(keys);
        keys.forEach((k, i) => {
          const ttl = Number(stored[i] ?? Number.NaN);
          if (ttl > 0) found.set(k, ttl);
        });
      } catch (err) {
        this.host.failed(err);
        this.host.logger.debug({ err: (err as Error).message }, "registered lease TTLs not read; the TTL known here, or the default, applies");
      }
    }
    // Redis unreachable: what this replica last knew of the lease (a Register here, an earlier stream)
    for (const k of keys) {
      const h = this.held.get(k);
      if (!found.has(k) && h !== undefined) found.set(k, h.ttlMs);
    }
    return found;
  }

  /** registered notes a lease that a Register call just wrote to Redis. */
  registered(key: string, ttlMs: number): void {
    const now = this.host.clock.now();
    let h = this.held.get(key);
    if (h === undefined) this.held.set(key, (h = { ttlMs, owner: "", stream: 0, until: 0, written: 0, writtenOwner: "" }));
    h.ttlMs = ttlMs;
    h.until = Math.max(h.until, now + ttlMs);
    h.written = now + ttlMs;
  }

  /** forget drops a lease whose instance is gone. */
  forget(key: string): void {
    this.held.delete(key);
    this.pending.delete(key);
  }

  /** keep drops every lease whose key fails keep (instances no longer in the mirror). */
  keep(keep: (key: string) => boolean): void {
    for (const k of this.held.keys()) if (!keep(k)) this.forget(k);
  }

  /** live returns the leases still live at now (dropping the rest), for re-assertion. */
  live(now: number): Array<[string, HeldLease]> {
    const out: Array<[string, HeldLease]> = [];
    for (const [k, h] of this.held) {
      if (h.until <= now) this.forget(k);
      else out.push([k, h]);
    }
    return out;
  }

  /** asserted notes that key's lease was just written whole (re-assertion). */
  asserted(key: string, h: HeldLease, now: number): void {
    h.written = now + h.ttlMs;
    h.writtenOwner = h.owner;
    this.pending.delete(key);
  }

  /** flush writes the batched renewals; on failure they stay pending for the next flush. */
  async flush(): Promise<void> {
    if (this.pending.size === 0 || !this.host.writable()) return;
    const batch = [...this.pending];
    this.pending.clear();
    try {
      for (let i = 0; i < batch.length; i += RENEW_CHUNK) {
        const args: Array<string | number> = [this.host.registryId(), this.host.replicaId, this.bindingSlackMs];
        const sent: Array<[HeldLease, string]> = [];
        for (const k of batch.slice(i, i + RENEW_CHUNK)) {
          const h = this.held.get(k);
          if (h === undefined || h.owner === "") continue;
          args.push(k, h.ttlMs, h.stream);
          sent.push([h, h.owner]);
        }
        if (sent.length === 0) continue;
        const now = this.host.clock.now();
        await this.host.script("maxineRenew", args);
        for (const [h, owner] of sent) {
          h.written = now + h.ttlMs;
          h.writtenOwner = owner;
        }
      }
    } catch (err) {
      for (const k of batch) if (this.held.has(k)) this.pending.add(k);
      this.host.failed(err);
      throw err;
    }
  }
}
