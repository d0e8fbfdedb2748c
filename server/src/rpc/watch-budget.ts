import { Code, ConnectError } from "@connectrpc/connect";
import type { Clock, Timer } from "../domain/clock.js";
import type { Logger } from "../domain/logger.js";
import type { Watcher } from "../watch/watcher.js";
import type { StreamOutput } from "./stream-output.js";

/** CHECK_MS is how soon the budget is checked once the streams' sum passes it (then, while over, again). */
const CHECK_MS = 50;
/** STALL_MS is how long a stream must have made no progress (its client read nothing) to be cut: bytes just written to a client that reads are in flight, not held. */
const STALL_MS = 250;

/**
 * WatchBudget bounds the bytes all watch streams together hold unsent
 * (MAXINE_WATCH_MEMORY_BUDGET), whatever their protocol. A watcher itself
 * holds a cursor into the shared history, not copies of changes, so what
 * a slow watcher costs is what its stream buffered for a client that does
 * not read: the answers written and not sent (queued, or held back by
 * HTTP/2 flow control). Each watch's drain reports its stream after each
 * write (update: the client made progress, or there was more to send);
 * the sum is kept incrementally. When it passes the budget, every stream
 * is measured again within CHECK_MS (bytes a client read since its last
 * write are not counted twice) and, while still over it, the slowest
 * streams (the oldest unread first, then the most bytes; only those that
 * made no progress for STALL_MS, as a large message just written to a
 * reading client is in flight) are closed with RESOURCE_EXHAUSTED naming
 * the setting and cut at once (HTTP/2 RST_STREAM ENHANCE_YOUR_CALM; an
 * HTTP/1.1 connection closes), which frees what they held: a graceful
 * status would wait behind the bytes the client never reads. Watchers
 * that read keep receiving.
 */
export class WatchBudget {
  private readonly open = new Set<BudgetEntry>();
  private total = 0;
  private check: Timer | undefined;
  /** closed counts watch streams closed for the budget, for /metrics. */
  closed = 0;

  constructor(
    /** limit is the budget in bytes. */
    readonly limit: number,
    private readonly clock: Clock,
    private readonly log?: Logger,
  ) {}

  /** add starts counting a watch stream's unsent bytes: w is ended and out cut if it is closed for the budget. */
  add(w: BudgetedWatcher, out: BudgetedOutput): BudgetEntry {
    const e = new BudgetEntry(w, out, this.clock.now());
    this.open.add(e);
    return e;
  }

  /** remove stops counting e (its watch ended). */
  remove(e: BudgetEntry): void {
    if (!this.open.delete(e)) return;
    this.total -= e.counted;
    e.counted = 0;
  }

  /** update measures e's stream after a write (the client read, or there was more to send) and checks the budget soon when it is passed. */
  update(e: BudgetEntry): void {
    const bytes = e.out.buffered();
    // the common case, a client that reads: nothing held before or now, nothing to count (progressAt matters only while bytes are held)
    if (bytes === 0 && e.counted === 0) return;
    if (!this.open.has(e)) return;
    this.total += bytes - e.counted;
    e.counted = bytes;
    e.progressAt = this.clock.now();
    if (this.total > this.limit) this.checkSoon();
  }

  /** buffered measures every watch stream's unsent bytes now (for /metrics). */
  buffered(): number {
    let total = 0;
    for (const e of this.open) total += (e.counted = e.out.buffered());
    this.total = total;
    return total;
  }

  get streams(): number {
    return this.open.size;
  }

  private checkSoon(): void {
    this.check ??= this.clock.setTimer(() => {
      this.check = undefined;
      this.enforce();
    }, CHECK_MS);
  }

  private enforce(): void {
    let total = this.buffered();
    if (total <= this.limit) return;
    const stalledBefore = this.clock.now() - STALL_MS;
    const slowest = [...this.open].filter((e) => e.counted > 0 && e.progressAt <= stalledBefore).sort((a, b) => a.progressAt - b.progressAt || b.counted - a.counted);
    const err = new ConnectError(
      `watch: the watch streams together held more than ${this.limit} bytes their clients had not read (MAXINE_WATCH_MEMORY_BUDGET); this stream was the slowest and was closed; resume from the last revision received`,
      Code.ResourceExhausted,
    );
    let closed = 0;
    let freed = 0;
    for (const e of slowest) {
      if (total <= this.limit) break;
      total -= e.counted;
      freed += e.counted;
      this.remove(e);
      e.w.end(err);
      e.out.cut();
      closed++;
    }
    this.closed += closed;
    if (closed > 0) {
      this.log?.warn({ closed, freedBytes: freed, limit: "MAXINE_WATCH_MEMORY_BUDGET", budget: this.limit }, "watch streams closed: their clients do not read and the watch memory budget is spent");
    }
    // what is left over is in flight to clients that read, or not stalled long enough yet: look again
    if (total > this.limit) this.checkSoon();
  }
}

/** BudgetedWatcher is what the budget uses of a watcher: ending it. */
export type BudgetedWatcher = Pick<Watcher, "end">;

/** BudgetedOutput is what the budget uses of a watch's stream: measuring what it holds unsent, and cutting it. */
export type BudgetedOutput = Pick<StreamOutput, "buffered" | "cut">;

/** BudgetEntry is one watch stream as the budget counts it. */
export class BudgetEntry {
  /** counted is its unsent bytes when last measured. */
  counted = 0;

  constructor(
    readonly w: BudgetedWatcher,
    readonly out: BudgetedOutput,
    /** progressAt is when its stream last wrote (its client read, or there was more to send). */
    public progressAt: number,
  ) {}
}
