import type { Clock, Timer } from "../domain/clock.js";
import { Reason, RegistryError } from "../domain/errors.js";
import { isEmptyFilter, matches } from "../domain/filter.js";
import type { InstanceRecord } from "../domain/instance.js";
import type { Logger } from "../domain/logger.js";
import type { FilterSpec } from "../domain/filter.js";
import type { Change, Store } from "../store/store.js";
import { History } from "./history.js";
import { eventFor, type ResetReason, type WatchItem } from "./items.js";
import { Watcher, type OverflowPolicy, type WatchScope, type WatcherHost } from "./watcher.js";

/** WatchSettings configure the hub; every field is a server setting. */
export interface WatchSettings {
  /** historySize is how many changes are kept for resuming watches. */
  readonly historySize: number;
  /** maxQueue is how many messages one watcher may fall behind. */
  readonly maxQueue: number;
  readonly overflow: OverflowPolicy;
  /** maxWatchers bounds open watch streams in total. */
  readonly maxWatchers: number;
  /** snapshotChunk is the most instances in one snapshot message. */
  readonly snapshotChunk: number;
  /**
   * snapshotChunkBytes, with sizeOf (an instance's encoded size), bounds a
   * snapshot message's size too, so that a chunk of large instances fits
   * the message size limit (MAXINE_MAX_MESSAGE_BYTES) of every protocol.
   */
  readonly snapshotChunkBytes?: number;
  readonly sizeOf?: (r: InstanceRecord) => number;
  /** progressIntervalMs is how long a stream may stay silent before a progress bookmark. */
  readonly progressIntervalMs: number;
}

/** WatchRequest is a validated WatchServices request. */
export interface WatchRequest {
  readonly namespace: string;
  readonly services: readonly string[];
  readonly filter: FilterSpec;
  readonly resumeRevision: number;
  readonly registryId: string;
}

interface NamespaceWatchers {
  readonly all: Set<Watcher>;
  readonly byService: Map<string, Set<Watcher>>;
}

/**
 * WatchHub fans the store's changes out to watchers. Each change is turned
 * into each interested watcher's view of it and queued without waiting on
 * any reader; the hub keeps a bounded history for resumes and sends progress
 * bookmarks on idle streams.
 */
export class WatchHub implements WatcherHost {
  private history: History;
  private readonly namespaces = new Map<string, NamespaceWatchers>();
  private readonly unsubscribe: () => void;
  private count = 0;
  /** opened counts watchers opened since start, for /metrics. */
  opened = 0;
  /** overflows counts watchers that fell too far behind (reset or closed by the overflow policy), for /metrics. */
  overflows = 0;
  private progressTimer: Timer | undefined;
  private closed = false;

  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly settings: WatchSettings,
  ) {
    this.history = new History(settings.historySize);
    for (const c of store.recentChanges?.() ?? []) this.history.append(c);
    const unsubscribeChanges = store.subscribe((c) => this.dispatch(c));
    const unsubscribeResets = store.subscribeResets?.((reason) => this.reset(reason));
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

  /**
   * watch opens a watcher: a snapshot (or the replay of history after
   * resumeRevision) is queued at once, then live changes follow.
   */
  watch(req: WatchRequest): Watcher {
    if (this.closed) throw new RegistryError(Reason.SHUTTING_DOWN, "server: shutting down, retry on another server");
    if (this.count >= this.settings.maxWatchers) {
      throw new RegistryError(
        Reason.RESOURCE_EXHAUSTED,
        `watch: the server holds the maximum of ${this.settings.maxWatchers} watch streams (MAXINE_MAX_WATCHERS)`,
      );
    }
    const scope: WatchScope = {
      namespace: req.namespace,
      services: req.services,
      filter: req.filter,
      matchAll: isEmptyFilter(req.filter),
    };
    const now = this.clock.now();
    const w = new Watcher(scope, this, this.settings.maxQueue, this.settings.overflow, now);
    this.opened++;
    w.pushAll(this.start(req, scope), now);
    this.add(w);
    return w;
  }

  /** snapshot builds the snapshot messages of scope at the store's current revision. */
  snapshot(scope: WatchScope, reason: ResetReason | undefined): WatchItem[] {
    const items: WatchItem[] = [];
    let chunk: InstanceRecord[] = [];
    let bytes = 0;
    const { snapshotChunkBytes = Infinity, sizeOf } = this.settings;
    const take = (records: readonly InstanceRecord[]): void => {
      for (const r of records) {
        if (!scope.matchAll && !matches(scope.filter, r)) continue;
        // each instance costs its bytes plus a tag and a length prefix (at most 6 bytes)
        const size = sizeOf === undefined ? 0 : sizeOf(r) + 6;
        if (chunk.length > 0 && bytes + size > snapshotChunkBytes) {
          items.push({ kind: "snapshot", instances: chunk });
          chunk = [];
          bytes = 0;
        }
        chunk.push(r);
        bytes += size;
        if (chunk.length >= this.settings.snapshotChunk) {
          items.push({ kind: "snapshot", instances: chunk });
          chunk = [];
          bytes = 0;
        }
      }
    };
    if (scope.services.length === 0) {
      for (const [, view] of this.store.services(scope.namespace)) take(view.sorted());
    } else {
      for (const s of scope.services) take(this.store.service(scope.namespace, s)?.sorted() ?? []);
    }
    if (chunk.length > 0) items.push({ kind: "snapshot", instances: chunk });
    items.push({ kind: "snapshot_end", revision: this.store.revision(), registryId: this.store.registryId, reason });
    return items;
  }

  overflowed(): void {
    this.overflows++;
  }

  remove(w: Watcher): void {
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
    const err = new RegistryError(Reason.SHUTTING_DOWN, "server: shutting down, resume the watch on another server");
    for (const ns of [...this.namespaces.values()]) {
      for (const w of [...ns.all]) w.end(err);
      for (const set of [...ns.byService.values()]) for (const w of [...set]) w.end(err);
    }
  }

  /**
   * reset handles a store that replaced its view (shared state lost, or
   * changes missed): the history no longer leads to the view, so it is
   * dropped (then re-seeded from the store), and every watcher gets a
   * fresh snapshot flagged reset with reason.
   */
  private reset(reason: ResetReason): void {
    this.history = new History(this.settings.historySize);
    for (const c of this.store.recentChanges?.() ?? []) this.history.append(c);
    const now = this.clock.now();
    for (const ns of this.namespaces.values()) {
      const each = (w: Watcher): void => w.resetTo(this.snapshot(w.scope, reason), now);
      ns.all.forEach(each);
      for (const set of ns.byService.values()) set.forEach(each);
    }
    this.log.warn({ reason, watchers: this.count }, "watchers reset to a fresh snapshot");
  }

  private start(req: WatchRequest, scope: WatchScope): WatchItem[] {
    const current = this.store.revision();
    if (req.resumeRevision === 0) return this.snapshot(scope, undefined);
    if ((req.registryId !== "" && req.registryId !== this.store.registryId) || req.resumeRevision > current) {
      return this.snapshot(scope, "REGISTRY_CHANGED");
    }
    const missed = this.history.since(req.resumeRevision, current);
    if (missed === undefined) return this.snapshot(scope, "COMPACTED");
    const items: WatchItem[] = [];
    for (const change of missed) {
      if (scope.services.length > 0 && !scope.services.includes(change.instance.service)) continue;
      if (change.instance.namespace !== scope.namespace) continue;
      const item = eventFor(change, scope.filter, scope.matchAll);
      if (item !== undefined) items.push(item);
    }
    items.push({ kind: "progress", revision: current, registryId: this.store.registryId });
    return items;
  }

  private add(w: Watcher): void {
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

  private dispatch(change: Change): void {
    this.history.append(change);
    const ns = this.namespaces.get(change.instance.namespace);
    if (ns === undefined) return;
    const now = this.clock.now();
    for (const w of ns.all) w.offer(change, now);
    const set = ns.byService.get(change.instance.service);
    if (set !== undefined) for (const w of set) w.offer(change, now);
  }

  private scheduleProgress(): void {
    const interval = this.settings.progressIntervalMs;
    if (interval <= 0 || this.closed) return;
    this.progressTimer = this.clock.setTimer(() => {
      this.sendProgress();
      this.scheduleProgress();
    }, interval);
  }

  private sendProgress(): void {
    const now = this.clock.now();
    const idleSince = now - this.settings.progressIntervalMs;
    const item: WatchItem = { kind: "progress", revision: this.store.revision(), registryId: this.store.registryId };
    let sent = 0;
    for (const ns of this.namespaces.values()) {
      const each = (w: Watcher): void => {
        if (w.lastActivity <= idleSince && w.pending === 0) {
          w.push(item, now);
          sent++;
        }
      };
      ns.all.forEach(each);
      for (const set of ns.byService.values()) set.forEach(each);
    }
    if (sent > 0) this.log.debug({ watchers: sent }, "progress bookmarks sent");
  }
}
