import { Reason, RegistryError } from "../domain/errors.js";
import type { FilterSpec } from "../domain/filter.js";
import type { Change } from "../store/store.js";
import type { Holdings, ResetReason, WatchItem } from "./items.js";

/** OverflowPolicy is what happens to a watcher that falls too far behind. */
export type OverflowPolicy = "reset" | "close";

/** WatchScope is what one watcher watches. */
export interface WatchScope {
  readonly namespace: string;
  /** services watched; empty means the whole namespace. */
  readonly services: readonly string[];
  readonly filter: FilterSpec;
  readonly matchAll: boolean;
  /**
   * readable, for a namespace-wide watch by a principal allowed to read
   * only some services of the namespace, says which: the snapshot and every
   * change hold only those. Undefined (every service readable) costs nothing.
   */
  readonly readable?: (service: string) => boolean;
}

/** Revisioned is what every change of a feed has: its revision, one more than the change before it. */
export interface Revisioned {
  readonly revision: number;
}

/** FeedItem is what every message of a watch stream has: its kind ("snapshot_end" items carry the snapshot's revision). */
export interface FeedItem {
  readonly kind: string;
}

/**
 * WatchLens is how a watcher reads the changes of one feed: where a change
 * belongs (namespace and service), whether a scope sees it, and what the
 * scope's stream sends for it. The registry's instances and the service
 * configuration are two feeds with one watcher, history and hub machinery
 * (ADR 0011); a lens is what differs.
 */
export interface WatchLens<C extends Revisioned, I extends FeedItem> {
  namespaceOf(c: C): string;
  serviceOf(c: C): string;
  /** sees reports whether a watcher of scope sends something for c (eventFor without building it). */
  sees(c: C, scope: WatchScope): boolean;
  /** eventFor is what a watcher of scope sends for c, or undefined when it sends nothing. */
  eventFor(c: C, scope: WatchScope): I | undefined;
  /** progress is the bookmark item at revision. */
  progress(revision: number, registryId: string): I;
}

/** WatcherHost is what a watcher needs from its hub: the shared history, snapshots, and its accounting. */
export interface WatcherHost<C extends Revisioned = Change, I extends FeedItem = WatchItem> {
  readonly registryId: string;
  /** lens reads this hub's changes. */
  readonly lens: WatchLens<C, I>;
  /**
   * snapshot builds the snapshot messages of scope at the store's current
   * revision, ending with snapshot_end; differential (only what held lacks
   * or holds otherwise, and removals) when held is given.
   */
  snapshot(scope: WatchScope, reason: ResetReason | undefined, held?: Holdings): I[];
  /** changeAt returns the change of revision from the shared history, or undefined when it is no longer (or not yet) held. */
  changeAt(revision: number): C | undefined;
  /** head is the revision of the latest change dispatched. */
  head(): number;
  remove(w: Watcher<C, I>): void;
  /** overflowed counts a watcher that fell too far behind (reset or closed, by policy). */
  overflowed(): void;
}

/** SnapshotStart is a watcher that opens with a snapshot: flagged reset with reason (undefined: a first watch), differential when held is given. */
export interface SnapshotStart {
  readonly snapshot: ResetReason | undefined;
  readonly held?: Holdings;
}

/** Replay describes a resume's backlog: the watcher sends the changes after from up to until, then a progress bookmark at until. */
export interface Replay {
  readonly from: number;
  readonly until: number;
}

/**
 * Watcher is one subscriber, read by its stream as an async iterator (or
 * with take). It holds no copy of the changes it has yet to send: a cursor
 * into the hub's shared history says where it is, and its stream takes the
 * next change from there when, and only as fast as, the client reads (the
 * stream's flow control paces it). What it does hold is bounded: the rest of
 * a snapshot it is sending, and a progress bookmark.
 *
 * A watcher may fall maxQueue changes behind the live head (the changes it
 * sees, counted from when it opened or last took a snapshot; a resume's
 * backlog does not count). Past that, or when the history no longer holds
 * a change it still has to send, its policy applies: reset (a fresh
 * snapshot flagged OVERFLOW, built when the client reads again, followed
 * only by changes after it) or close (WATCH_OVERFLOW).
 */
export class Watcher<C extends Revisioned = Change, I extends FeedItem = WatchItem> implements AsyncIterableIterator<I> {
  // items to send before any change: a snapshot's chunks and end, a bookmark
  private front: I[] = [];
  private frontAt = 0;
  // every change this watcher sees up to cursor was sent or is in the snapshot
  private cursor = 0;
  // changes after cursor that this watcher sees and has not sent
  private unsent = 0;
  // the revision of the first unsent change when offer found it in scope and seen (nextChange need not look again); 0: none
  private seenNext = 0;
  // of unsent, those of a resume's backlog (revision <= liveFrom)
  private backlog = 0;
  private liveFrom = 0;
  // a resume's closing progress bookmark, sent before any later change
  private bookmark: number | undefined;
  // a snapshot to build when the stream next reads (differential against held, for the opening one); null: none due
  private snapshotDue: { readonly reason: ResetReason | undefined; readonly held?: Holdings } | null = null;
  private ended: { error: unknown } | undefined;
  private onEnded: Array<() => void> = [];
  private onQueued: (() => void) | undefined;
  private readonly serviceSet: ReadonlySet<string> | undefined;
  /** lastActivity is when the watcher last had something to send, for progress bookmarks. */
  lastActivity: number;
  /** resets counts overflow resets. */
  resets = 0;

  constructor(
    readonly scope: WatchScope,
    private readonly host: WatcherHost<C, I>,
    private readonly maxQueue: number,
    private readonly policy: OverflowPolicy,
    now: number,
    start: SnapshotStart | Replay,
  ) {
    this.lastActivity = now;
    this.serviceSet = scope.services.length > 4 ? new Set(scope.services) : undefined;
    if ("snapshot" in start) this.snapshotDue = { reason: start.snapshot, held: start.held };
    else this.replay(start);
  }

  /** ready reports whether take would return an item (or the watcher has ended). */
  get ready(): boolean {
    return this.ended !== undefined || this.snapshotDue !== null || this.frontAt < this.front.length || this.unsent > 0 || this.bookmark !== undefined;
  }

  /** behind counts the changes this watcher sees and has yet to send (its resume backlog included). */
  get behind(): number {
    return this.unsent;
  }

  /** offer tells the watcher of a change in its namespace or services, just appended to the history. */
  offer(change: C, now: number): void {
    // a change the snapshot being sent already holds, or one after a due snapshot (which will hold it)
    if (this.ended !== undefined || this.snapshotDue !== null || change.revision <= this.cursor) return;
    const lens = this.host.lens;
    if (this.scope.readable !== undefined && !this.scope.readable(lens.serviceOf(change))) return;
    if (!lens.sees(change, this.scope)) return;
    this.lastActivity = now;
    // nothing unsent: every change up to this one's was sent or never seen
    if (this.unsent === 0) {
      this.cursor = change.revision - 1;
      this.seenNext = change.revision;
    }
    this.unsent++;
    if (this.unsent - this.backlog > this.maxQueue) this.overflow(`fell more than ${this.maxQueue} changes behind (MAXINE_WATCH_QUEUE)`);
    else this.notifyQueued();
  }

  /** push queues an item (a progress bookmark) before any later change. */
  push(item: I, now: number): void {
    if (this.ended !== undefined) return;
    this.lastActivity = now;
    this.front.push(item);
    this.notifyQueued();
  }

  /**
   * resetTo drops what the watcher has yet to send and sends a fresh
   * snapshot flagged reason instead (built when the stream next reads), for
   * a hub whose store replaced its state.
   */
  resetTo(reason: ResetReason): void {
    if (this.ended !== undefined) return;
    // a snapshot partly sent is kept, to be finished before the new one: a client only replaces its copy at a snapshot's end
    const front = this.front;
    const frontAt = this.frontAt;
    // an opening snapshot not yet begun stays differential: the client still holds what it said
    const held = this.snapshotDue?.held;
    this.dropUnsent();
    if (frontAt > 0) {
      this.front = front;
      this.frontAt = frontAt;
    }
    this.snapshotDue = { reason, held };
    this.notifyQueued();
  }

  /**
   * whenQueued calls f once, as soon as the watcher has something to take
   * or ends (at once if either is already so), for one reader that drains
   * it with take(). A later call replaces an earlier one still waiting.
   */
  whenQueued(f: () => void): void {
    if (this.ready) f();
    else this.onQueued = f;
  }

  /** endedWith is undefined while the watcher runs, then {error} (error undefined for a clean end). */
  get endedWith(): { readonly error: unknown } | undefined {
    return this.ended;
  }

  /** end finishes the stream: cleanly with no error, or with error. */
  end(error?: unknown): void {
    if (this.ended !== undefined) return;
    this.ended = { error };
    this.dropUnsent();
    this.host.remove(this);
    for (const f of this.onEnded.splice(0)) f();
    this.notifyQueued();
  }

  /** onEnd runs f once when the watcher ends (at once if it already has): its stream's resources go with it. */
  onEnd(f: () => void): void {
    if (this.ended !== undefined) f();
    else this.onEnded.push(f);
  }

  /**
   * take returns the next item to send without waiting, or undefined when
   * there is none: a due snapshot is built now (at the store's current
   * revision), changes are read from the shared history at the cursor.
   */
  take(): I | undefined {
    for (;;) {
      if (this.ended !== undefined) return undefined;
      // a snapshot partly sent is finished first: its chunks are only whole with their end
      if (this.frontAt < this.front.length) return this.shiftFront();
      if (this.snapshotDue !== null) {
        this.startSnapshot(this.snapshotDue.reason, this.snapshotDue.held);
        continue;
      }
      if (this.unsent > 0) {
        const item = this.nextChange();
        if (item !== undefined) return item;
        continue; // overflowed, or the count was off: look again
      }
      if (this.bookmark !== undefined) return this.sendBookmark();
      return undefined;
    }
  }

  next(): Promise<IteratorResult<I>> {
    const value = this.take();
    if (value !== undefined) return Promise.resolve({ value, done: false });
    if (this.ended !== undefined) {
      return this.ended.error === undefined
        ? Promise.resolve({ value: undefined, done: true })
        : Promise.reject(this.ended.error);
    }
    return new Promise((resolve) => this.whenQueued(() => resolve(this.next())));
  }

  return(): Promise<IteratorResult<I>> {
    this.end();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  private replay(r: Replay): void {
    this.cursor = r.from;
    this.liveFrom = r.until;
    this.bookmark = r.until;
    let first = 0;
    for (let rev = r.from + 1; rev <= r.until; rev++) {
      const c = this.host.changeAt(rev);
      if (c === undefined || !this.inScope(c) || !this.host.lens.sees(c, this.scope)) continue;
      if (first === 0) first = rev;
      this.unsent++;
    }
    this.backlog = this.unsent;
    if (first !== 0) this.cursor = first - 1;
  }

  private startSnapshot(reason: ResetReason | undefined, held: Holdings | undefined): void {
    this.snapshotDue = null;
    const items = this.host.snapshot(this.scope, reason, held);
    const end = items[items.length - 1];
    const revision = end?.kind === "snapshot_end" ? (end as unknown as { readonly revision: number }).revision : this.host.head();
    this.front = items;
    this.frontAt = 0;
    this.cursor = this.liveFrom = revision;
    this.unsent = this.backlog = this.seenNext = 0;
    this.bookmark = undefined;
  }

  private shiftFront(): I {
    const item = this.front[this.frontAt]!;
    this.front[this.frontAt++] = undefined as unknown as I;
    if (this.frontAt === this.front.length) {
      this.front = [];
      this.frontAt = 0;
    }
    return item;
  }

  private sendBookmark(): I {
    const revision = this.bookmark!;
    this.bookmark = undefined;
    return this.host.lens.progress(revision, this.host.registryId);
  }

  /** nextChange returns the next change this watcher sees after the cursor, or undefined after an overflow. */
  private nextChange(): I | undefined {
    const head = this.host.head();
    for (let rev = this.cursor + 1; rev <= head; rev++) {
      const c = this.host.changeAt(rev);
      if (c === undefined) {
        this.overflow(`fell behind the last changes the server keeps for it (MAXINE_WATCH_HISTORY)`);
        return undefined;
      }
      if (rev !== this.seenNext && !this.inScope(c)) continue;
      const item = this.host.lens.eventFor(c, this.scope);
      if (item === undefined) continue;
      if (this.bookmark !== undefined && rev > this.bookmark) {
        this.cursor = rev - 1;
        return this.sendBookmark();
      }
      this.cursor = rev;
      this.unsent--;
      if (rev <= this.liveFrom && this.backlog > 0) this.backlog--;
      return item;
    }
    // every change up to the head was looked at: nothing is unsent
    this.cursor = head;
    this.unsent = this.backlog = 0;
    return undefined;
  }

  private inScope(c: C): boolean {
    const lens = this.host.lens;
    if (lens.namespaceOf(c) !== this.scope.namespace) return false;
    const service = lens.serviceOf(c);
    const services = this.scope.services;
    if (services.length === 0) return this.scope.readable === undefined || this.scope.readable(service);
    return this.serviceSet !== undefined ? this.serviceSet.has(service) : services.includes(service);
  }

  private dropUnsent(): void {
    this.front = [];
    this.frontAt = 0;
    this.unsent = this.backlog = this.seenNext = 0;
    this.bookmark = undefined;
    this.snapshotDue = null;
  }

  private notifyQueued(): void {
    const f = this.onQueued;
    if (f === undefined) return;
    this.onQueued = undefined;
    f();
  }

  private overflow(why: string): void {
    this.host.overflowed();
    if (this.policy === "close") {
      this.end(new RegistryError(Reason.WATCH_OVERFLOW, `watch: the watcher ${why} and was ended; resume from the last revision received`));
      return;
    }
    this.resets++;
    this.resetTo("OVERFLOW");
  }
}
