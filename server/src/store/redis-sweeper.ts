import type { Clock, Timer } from "../domain/clock.js";
import type { Logger } from "../domain/logger.js";

/** ScriptRunner runs one of the Redis store's scripts (redis-scripts.ts) with its ARGV. */
export type ScriptRunner = (name: "maxineLock" | "maxineUnlock" | "maxineSweep", args: ReadonlyArray<string | number>) => Promise<unknown>;

/** SweeperOptions configure a Sweeper; every duration is a server setting. */
export interface SweeperOptions {
  /** replicaId names this replica in the lock's value. */
  readonly replicaId: string;
  readonly lockTtlMs: number;
  readonly intervalMs: number;
  /** batch bounds the removals of one sweep script call. */
  readonly batch: number;
  readonly logMax: number;
  /** registryId is the registry the sweeps are for (the scripts refuse any other). */
  readonly registryId: () => string;
  readonly clock: Clock;
  readonly logger: Logger;
  /** active, when set, gates every round: false (the store is re-syncing after an outage) skips it. */
  readonly active?: () => boolean;
  /** onError hears of a round that failed (Redis unreachable). */
  readonly onError?: (err: unknown) => void;
  /** onSweep, when set, hears of every sweep that ran with the lock (token, revisions removed). */
  readonly onSweep?: (token: number, removed: number) => void;
}

/**
 * Sweeper expires leases for every replica at once. Replicas race for a
 * lock in Redis; the winner gets a fencing token (a counter that only
 * grows) and sweeps with it. The sweep script itself checks that the token
 * is the lock's and the latest, in the same atomic step as the removals, so
 * a holder that paused past its lock's TTL can never sweep after a newer
 * holder did: there is never more than one effective sweeper.
 */
export class Sweeper {
  /** token is the fencing token while this replica holds the lock. */
  token: number | undefined;
  private timer: Timer | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly run: ScriptRunner,
    private readonly opts: SweeperOptions,
  ) {}

  /** start sweeps every intervalMs until stop. */
  start(): void {
    this.schedule();
  }

  /** tick takes or keeps the lock and, holding it, sweeps once; it returns the instances removed (-1: not the holder, -2: held after an outage). */
  async tick(): Promise<number> {
    if (this.opts.active?.() === false) return -2;
    const token = Number(await this.run("maxineLock", [this.opts.replicaId, this.opts.lockTtlMs, this.token ?? ""]));
    if (token === 0) {
      if (this.token !== undefined) this.opts.logger.info({ token: this.token }, "sweeper lock lost");
      this.token = undefined;
      return -1;
    }
    if (this.token !== token) this.opts.logger.info({ token }, "sweeper lock taken");
    this.token = token;
    const removed = await this.sweep(token);
    if (removed === -1) this.token = undefined;
    return removed;
  }

  /** sweep runs the fenced sweep script with token (tests call it with stale tokens). */
  async sweep(token: number): Promise<number> {
    const minPttl = this.opts.lockTtlMs - Math.min(500, Math.floor(this.opts.lockTtlMs / 4));
    const args = [this.opts.registryId(), this.opts.replicaId, token, this.opts.batch, this.opts.logMax, minPttl];
    const reply = (await this.run("maxineSweep", args)) as unknown[];
    if (reply[0] === -1 || reply[0] === -2) return reply[0];
    const removed = reply.length / 2;
    this.opts.onSweep?.(token, removed);
    if (removed > 0) this.opts.logger.info({ removed, token }, "expired leases swept");
    return removed;
  }

  /** stop ends the loop and gives the lock up, so another replica takes over at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.timer?.cancel();
    this.timer = undefined;
    await this.running;
    if (this.token !== undefined) {
      await this.run("maxineUnlock", [this.opts.replicaId, this.token]).catch(() => undefined);
      this.token = undefined;
    }
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = this.opts.clock.setTimer(() => {
      this.timer = undefined;
      this.running = this.tick().then(
        () => undefined,
        (err: unknown) => {
          this.token = undefined;
          this.opts.onError?.(err);
          this.opts.logger.debug({ err: (err as Error).message }, "sweep failed");
        },
      );
      void this.running.then(() => this.schedule());
    }, this.opts.intervalMs);
  }
}
