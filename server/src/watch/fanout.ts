import type { Clock, Timer } from "../domain/clock.js";
import { Reason, RegistryError } from "../domain/errors.js";
import type { Logger } from "../domain/logger.js";
import type { StoreResetReason } from "../store/store.js";
import { History } from "./history.js";
import type { Holdings, ResetReason } from "./items.js";
import { Watcher, type FeedItem, type OverflowPolicy, type Replay, type Revisioned, type SnapshotStart, type WatchLens, type WatchScope, type WatcherHost } from "./watcher.js";

/** FanoutSettings configure a hub; every field is a server setting. */
export interface FanoutSettings {
  /** historySize is how many changes are kept for resuming watches. */
  readonly historySize: number;
  /** maxQueue is how many changes one watcher may fall behind the live head (a resume's backlog aside). */
  readonly maxQueue: number;
  readonly overflow: OverflowPolicy;
  /** maxWatchers bounds open watch streams of this hub in total. */
  readonly maxWatchers: number;
  /** progressIntervalMs is how long a stream may stay silent before a progress bookmark. */
  readonly progressIntervalMs: number;
}

/**
 * ChangeFeed is what a hub watches: a source of changes with gapless
 * revisions, and the reads it takes snapshots from. The registry's Store and
 * the ConfigStore are both feeds.
 */
export interface ChangeFeed<C extends Revisioned> {
  /** registryId names the feed's state; it changes when the state is lost. */
  readonly registryId: string;
  /** revision is the revision of the latest change applied (0: none yet). */
  revision(): number;
  /** subscribe registers a change listener (every change once, in revision order) and returns its unsubscribe. */
  subscribe(listener: (change: C) => void): () => void;
  /** recentChanges are changes committed before the hub subscribed, oldest first, to seed resume history. */
  recentChanges?(): readonly C[];
  /** subscribeResets registers a listener called when the feed replaced its state rather than changed it. */
  subscribeResets?(listener: (reason: StoreResetReason) => void): () => void;
}

/** FanoutRequest is where a watcher begins: a resume point (0: none) and, for a snapshot, what the client holds. */
export interface FanoutRequest {
  readonly resumeRevision: number;
  readonly registryId: string;
  readonly held?: Holdings;
}

interface NamespaceWatchers<C extends Revisioned, I extends FeedItem> {
  readonly all: Set<Watcher<C, I>>;
  readonly byService: Map<string, Set<Watcher<C, I>>>;
}

/**
 * Fanout is the watch machinery shared by every feed: each change is
 * appended once to a shared history, and each interested watcher is told of
 * it without waiting on any reader (the watcher's stream reads the change
 * from the history at its own pace, watcher.ts); the same history serves
 * resumes; idle streams get progress bookmarks. A feed's hub extends it
 * with its lens and its snapshots (WatchHub for instances, ConfigHub for
 * service configuration: ADR 0011).
 */
export abstract class Fanout<C extends Revisioned, I extends FeedItem> implements WatcherHost<C, I> {
  abstract readonly lens: WatchLens<C, I>;
  private history: History<C>;
  private readonly namespaces = new Map<string, NamespaceWatchers<C, I>>();
  private readonly unsubscribe: () => void;
  private count = 0;
  /** opened counts watchers opened since start, for /metrics. */
  opened = 0;
  /** overflows counts watchers that fell too far behind (reset or closed by the overflow policy), for /metrics. */
  overflows = 0;
  private progressTimer: Timer | undefined;
  // the revision of the latest change appended to the history and offered to watchers
  private dispatched: number;
  private closed = false;

  constructor(
    protected readonly feed: ChangeFeed<C>,
    protected readonly clock: Clock,
    protected readonly log: Logger,
    protected readonly fanout: FanoutSettings,
    /** what is watched, for messages ("watch", "config watch") and the setting that bounds it. */
    private readonly what: { readonly noun: string; readonly maxSetting: string },
  ) {
    this.history = this.seededHistory();
    this.dispatched = feed.revision();
    const unsubscribeChanges = feed.subscribe((c) => this.dispatch(c));
    const unsubscribeResets = feed.subscribeResets?.((reason) => this.reset(reason));
    this.unsubscribe = () => {
      unsubscribeChanges();
      unsubscribeResets?.();
    };
    this.scheduleProgress();
  }

  /** watchers counts open watchers. */
  get watchers(): number {
    return this.count;
  }

  get registryId(): string {
    return this.feed.registryId;
  }

  changeAt(revision: number): C | undefined {
    return this.history.at(revision);
  }

  head(): number {
    return this.dispatched;
  }

  abstract snapshot(scope: WatchScope, reason: ResetReason | undefined, held?: Holdings): I[];

  overflowed(): void {
    this.overflows++;
  }

  remove(w: Watcher<C, I>): void {
    const ns = this.namespaces.get(w.scope.namespace);
    if (ns === undefined) return;
    let removed = false;
    if (w.scope.services.length === 0) removed = ns.all.delete(w);
    for (const s of w.scope.services) {
      const set = ns.byService.get(s);
      if (set?.delete(w)) removed = true;
      if (set?.size === 0) ns.byService.delete(s);
    }
    if (removed) this.count--;
    if (ns.all.size === 0 && ns.byService.size === 0) this.namespaces.delete(w.scope.namespace);
  }

  /** close ends every watcher with SHUTTING_DOWN and stops the hub. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribe();
    this.progressTimer?.cancel();
    const err = new RegistryError(Reason.SHUTTING_DOWN, `server: shutting down, resume the ${this.what.noun} on another server`);
    for (const ns of [...this.namespaces.values()]) {
      for (const w of [...ns.all]) w.end(err);
      for (const set of [...ns.byService.values()]) for (const w of [...set]) w.end(err);
    }
  }

  /**
   * open opens a watcher of scope: a snapshot (or the replay of history
   * after req.resumeRevision) is queued at once, then live changes follow.
   */
  protected open(scope: WatchScope, req: FanoutRequest): Watcher<C, I> {
    if (this.closed) throw new RegistryError(Reason.SHUTTING_DOWN, "server: shutting down, retry on another server");
    if (this.count >= this.fanout.maxWatchers) {
      throw new RegistryError(
        Reason.RESOURCE_EXHAUSTED,
        `${this.what.noun}: the server holds the maximum of ${this.fanout.maxWatchers} ${this.what.noun} streams (${this.what.maxSetting})`,
      );
    }
    const w = new Watcher<C, I>(scope, this, this.fanout.maxQueue, this.fanout.overflow, this.clock.now(), this.start(req));
    this.opened++;
    this.add(w);
    return w;
  }

  /**
   * reset handles a feed that replaced its state (shared state lost, or
   * changes missed): the history no longer leads to it, so it is dropped
   * (then re-seeded from the feed), and every watcher gets a fresh
   * snapshot flagged reset with reason.
   */
  private reset(reason: ResetReason): void {
    this.history = this.seededHistory();
    this.dispatched = this.feed.revision();
    for (const ns of this.namespaces.values()) {
      const each = (w: Watcher<C, I>): void => w.resetTo(reason);
      ns.all.forEach(each);
      for (const set of ns.byService.values()) set.forEach(each);
    }
    this.log.warn({ reason, watchers: this.count, feed: this.what.noun }, "watchers reset to a fresh snapshot");
  }

  /**
   * seededHistory is an empty history seeded with the feed's recent
   * changes. It holds historySize changes for resumes, and at least
   * maxQueue, which watchers behind the live head read from.
   */
  private seededHistory(): History<C> {
    const history = new History<C>(Math.max(this.fanout.historySize, this.fanout.maxQueue));
    for (const c of this.feed.recentChanges?.() ?? []) history.append(c);
    return history;
  }

  /**
   * start says how a watcher begins: a snapshot (with a reset reason when
   * a resume cannot be honoured), or the replay of exactly the changes
   * after the resume revision, read from the history at the stream's pace
   * whatever their number, when the history holds them all.
   */
  private start(req: FanoutRequest): SnapshotStart | Replay {
    const current = this.feed.revision();
    const held = req.held;
    if (req.resumeRevision === 0) return { snapshot: undefined, held };
    if ((req.registryId !== "" && req.registryId !== this.feed.registryId) || req.resumeRevision > current) {
      return { snapshot: "REGISTRY_CHANGED", held };
    }
    if (req.resumeRevision === current) return { from: current, until: current };
    if (current - req.resumeRevision > this.fanout.historySize || !this.history.holds(req.resumeRevision)) return { snapshot: "COMPACTED", held };
    return { from: req.resumeRevision, until: current };
  }

  private add(w: Watcher<C, I>): void {
    const { namespace, services } = w.scope;
    let ns = this.namespaces.get(namespace);
    if (ns === undefined) this.namespaces.set(namespace, (ns = { all: new Set(), byService: new Map() }));
    if (services.length === 0) ns.all.add(w);
    for (const s of services) {
      let set = ns.byService.get(s);
      if (set === undefined) ns.byService.set(s, (set = new Set()));
      set.add(w);
    }
    this.count++;
  }

  private dispatch(change: C): void {
    this.history.append(change);
    this.dispatched = change.revision;
    const ns = this.namespaces.get(this.lens.namespaceOf(change));
    if (ns === undefined) return;
    const now = this.clock.now();
    for (const w of ns.all) w.offer(change, now);
    const set = ns.byService.get(this.lens.serviceOf(change));
    if (set !== undefined) for (const w of set) w.offer(change, now);
  }

  private scheduleProgress(): void {
    const interval = this.fanout.progressIntervalMs;
    if (interval <= 0 || this.closed) return;
    this.progressTimer = this.clock.setTimer(() => {
      this.sendProgress();
      this.scheduleProgress();
    }, interval);
  }

  private sendProgress(): void {
    const now = this.clock.now();
    const idleSince = now - this.fanout.progressIntervalMs;
    const item = this.lens.progress(this.feed.revision(), this.feed.registryId);
    let sent = 0;
    for (const ns of this.namespaces.values()) {
      const each = (w: Watcher<C, I>): void => {
        if (w.lastActivity <= idleSince && !w.ready) {
          w.push(item, now);
          sent++;
        }
      };
      ns.all.forEach(each);
      for (const set of ns.byService.values()) set.forEach(each);
    }
    if (sent > 0) this.log.debug({ watchers: sent, feed: this.what.noun }, "progress bookmarks sent");
  }
}
