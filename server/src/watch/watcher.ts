import { Reason, RegistryError } from "../domain/errors.js";
import type { FilterSpec } from "../domain/filter.js";
import type { Change } from "../store/store.js";
import { eventFor, type ResetReason, type WatchItem } from "./items.js";

/** OverflowPolicy is what happens to a watcher whose queue overflows. */
export type OverflowPolicy = "reset" | "close";

/** WatchScope is what one watcher watches. */
export interface WatchScope {
  readonly namespace: string;
  /** services watched; empty means the whole namespace. */
  readonly services: readonly string[];
  readonly filter: FilterSpec;
  readonly matchAll: boolean;
}

/** WatcherHost is what a watcher needs from its hub. */
export interface WatcherHost {
  snapshot(scope: WatchScope, reason: ResetReason | undefined): WatchItem[];
  remove(w: Watcher): void;
  /** overflowed counts a watcher that fell maxQueue messages behind (reset or closed, by policy). */
  overflowed(): void;
}

/**
 * Watcher is one subscriber: a bounded queue of items that its stream drains
 * as an async iterator. The hub pushes without ever waiting on the reader; a
 * reader too slow for maxQueue items is reset to a fresh snapshot or ended
 * with RESOURCE_EXHAUSTED, by policy, so it never grows server memory.
 */
export class Watcher implements AsyncIterableIterator<WatchItem> {
  private queue: WatchItem[] = [];
  private head = 0;
  private ended: { error: unknown } | undefined;
  private onEnded: Array<() => void> = [];
  private onQueued: (() => void) | undefined;
  /** lastActivity is when the last item was queued, for progress bookmarks. */
  lastActivity: number;
  /** resets counts overflow resets. */
  resets = 0;

  constructor(
    readonly scope: WatchScope,
    private readonly host: WatcherHost,
    private readonly maxQueue: number,
    private readonly policy: OverflowPolicy,
    now: number,
  ) {
    this.lastActivity = now;
  }

  /** pending counts queued items. */
  get pending(): number {
    return this.queue.length - this.head;
  }

  /** offer queues what this watcher sees of change. */
  offer(change: Change, now: number): void {
    const item = eventFor(change, this.scope.filter, this.scope.matchAll);
    if (item !== undefined) this.push(item, now);
  }

  /** push queues an item, handling overflow. */
  push(item: WatchItem, now: number): void {
    if (this.ended !== undefined) return;
    this.lastActivity = now;
    if (this.pending >= this.maxQueue) this.overflow();
    else this.queue.push(item);
    this.notifyQueued();
  }

  /**
   * whenQueued calls f once, as soon as an item is queued or the watcher
   * ends (at once if either is already so), for one reader that drains the
   * queue with take(): the gRPC fast path (a whole batch per write) and
   * next(). A later call replaces an earlier one still waiting.
   */
  whenQueued(f: () => void): void {
    if (this.pending > 0 || this.ended !== undefined) f();
    else this.onQueued = f;
  }

  /** endedWith is undefined while the watcher runs, then {error} (error undefined for a clean end). */
  get endedWith(): { readonly error: unknown } | undefined {
    return this.ended;
  }

  private notifyQueued(): void {
    const f = this.onQueued;
    if (f === undefined) return;
    this.onQueued = undefined;
    f();
  }

  /** pushAll queues items in order. */
  pushAll(items: readonly WatchItem[], now: number): void {
    for (const item of items) this.push(item, now);
  }

  /** resetTo replaces everything queued with items (a fresh snapshot), for a hub whose store replaced its state. */
  resetTo(items: WatchItem[], now: number): void {
    if (this.ended !== undefined) return;
    this.queue = [];
    this.head = 0;
    this.pushAll(items, now);
  }

  /** end finishes the stream: cleanly with no error, or with error. */
  end(error?: unknown): void {
    if (this.ended !== undefined) return;
    this.ended = { error };
    this.host.remove(this);
    for (const f of this.onEnded.splice(0)) f();
    this.notifyQueued();
  }

  /** onEnd runs f once when the watcher ends (at once if it already has): its stream's resources go with it. */
  onEnd(f: () => void): void {
    if (this.ended !== undefined) f();
    else this.onEnded.push(f);
  }

  /** take returns the next queued item without waiting, or undefined when none is queued. */
  take(): WatchItem | undefined {
    if (this.head >= this.queue.length) return undefined;
    const value = this.queue[this.head]!;
    this.queue[this.head++] = undefined as unknown as WatchItem;
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    return value;
  }

  next(): Promise<IteratorResult<WatchItem>> {
    const value = this.take();
    if (value !== undefined) return Promise.resolve({ value, done: false });
    if (this.ended !== undefined) {
      return this.ended.error === undefined
        ? Promise.resolve({ value: undefined, done: true })
        : Promise.reject(this.ended.error);
    }
    return new Promise((resolve) => this.whenQueued(() => resolve(this.next())));
  }

  return(): Promise<IteratorResult<WatchItem>> {
    this.end();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  private overflow(): void {
    this.host.overflowed();
    if (this.policy === "close") {
      this.queue = [];
      this.head = 0;
      this.end(
        new RegistryError(
          Reason.WATCH_OVERFLOW,
          `watch: the watcher fell more than ${this.maxQueue} messages behind and was ended; resume from the last revision received`,
        ),
      );
      return;
    }
    this.resets++;
    this.queue = this.host.snapshot(this.scope, "OVERFLOW");
    this.head = 0;
  }
}
