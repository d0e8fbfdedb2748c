import type { Clock, Timer } from "../domain/clock.js";
import type { Logger } from "../domain/logger.js";
import type { ReplicaSet } from "./store.js";

/**
 * MEMBERS keeps the set of live replicas: a sorted set of replica ids
 * scored by when each one's membership ends (ms, Redis clock, so replicas'
 * clocks never decide). KEYS[1]: the set. ARGV: replica id, TTL ms, "1" to
 * leave. It drops the ended members, refreshes (or removes) this one and
 * returns the live ones in id order.
 */
export const MEMBERS = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if ARGV[3] == '1' then
  redis.call('ZREM', KEYS[1], ARGV[1])
else
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 10)
end
local m = redis.call('ZRANGE', KEYS[1], 0, -1)
table.sort(m)
return m
`;

/** MembersOptions configure RedisMembers. */
export interface MembersOptions {
  readonly replicaId: string;
  /** ttlMs is how long a membership lasts unrefreshed: a replica that stops (SIGKILL) leaves the set this long after its last refresh. */
  readonly ttlMs: number;
  readonly clock: Clock;
  readonly logger: Logger;
  /** run runs MEMBERS (the store defines it on its connection) with ARGV. */
  readonly run: (args: readonly (string | number)[]) => Promise<unknown>;
}

/**
 * RedisMembers is the set of live replicas of a registry, kept in Redis:
 * each replica refreshes its own membership every third of its TTL and
 * reads everyone's in the same script. The health checker divides the
 * checks among them (checks/ownership.ts). While Redis is unreachable the
 * last set read is kept: no replica can store a check's result then.
 */
export class RedisMembers implements ReplicaSet {
  readonly self: string;
  private members: readonly string[] = [];
  private readonly listeners = new Set<() => void>();
  private timer: Timer | undefined;
  private stopped = false;

  constructor(private readonly opts: MembersOptions) {
    this.self = opts.replicaId;
  }

  live(): readonly string[] {
    return this.members;
  }

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** start joins the set and keeps refreshing it. */
  async start(): Promise<void> {
    await this.refresh();
  }

  /** stop leaves the set at once (a clean shutdown: the others take this replica's checks without waiting for the TTL). */
  async stop(): Promise<void> {
    this.stopped = true;
    this.timer?.cancel();
    this.timer = undefined;
    await this.opts.run([this.opts.replicaId, this.opts.ttlMs, "1"]).catch(() => undefined);
    this.listeners.clear();
  }

  private async refresh(): Promise<void> {
    try {
      const got = ((await this.opts.run([this.opts.replicaId, this.opts.ttlMs, ""])) as string[]).map(String);
      if (!this.stopped && (got.length !== this.members.length || got.some((m, i) => m !== this.members[i]))) {
        this.opts.logger.info({ replicas: got.length }, "replicas changed: health checks are divided again");
        this.members = got;
        for (const l of [...this.listeners]) l();
      }
    } catch (err) {
      this.opts.logger.debug({ err: (err as Error).message }, "replica set not refreshed; kept");
    }
    if (this.stopped) return;
    this.timer = this.opts.clock.setTimer(() => void this.refresh(), Math.max(50, Math.floor(this.opts.ttlMs / 3)));
  }
}
