import type { Clock, Timer } from "../domain/clock.js";
import { Reason, RegistryError } from "../domain/errors.js";
import { isEmptyFilter, matches } from "../domain/filter.js";
import type { InstanceKey, InstanceRecord } from "../domain/instance.js";
import type { Logger } from "../domain/logger.js";
import type { FilterSpec } from "../domain/filter.js";
import type { Change, Store } from "../store/store.js";
import { History } from "./history.js";
import type { Holdings, ResetReason, WatchItem } from "./items.js";
import { Watcher, type OverflowPolicy, type Replay, type SnapshotStart, type WatchScope, type WatcherHost } from "./watcher.js";

/** WatchSettings configure the hub; every field is a server setting. */
export interface WatchSettings {
  /** historySize is how many changes are kept for resuming watches. */
  readonly historySize: number;
  /** maxQueue is how many changes one watcher may fall behind the live head (a resume's backlog aside). */
  readonly maxQueue: number;
  readonly overflow: OverflowPolicy;
  /** maxWatchers bounds open watch streams in total. */
  readonly maxWatchers: number;
  /** snapshotChunk is the most instances in one snapshot message. */
  readonly snapshotChunk: number;
  /**
   * snapshotChunkBytes, with sizeOf (an instance's encoded size), bounds a
   * snapshot message's size too, so that a chunk of large instances fits
   * the message size limit (MAXINE_MAX_RESPONSE_BYTES) of every protocol.
   */
  readonly snapshotChunkBytes?: number;
  readonly sizeOf?: (r: InstanceRecord) => number;
  /**
   * digestOf is a record's content digest (WatchHoldings in registry.proto),
   * computed once per record: what a resuming watcher's holdings are
   * compared with. Unset, holdings are ignored and snapshots are whole.
   */
  readonly digestOf?: (r: InstanceRecord) => bigint;
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
  /** held is what the client holds (WatchServicesRequest.held): its opening snapshot, if it gets one, carries only the differences. */
  readonly held?: Holdings;
  /** readable limits a namespace-wide watch to the services its principal may read (WatchScope.readable); undefined: all. */
  readonly readable?: (service: string) => boolean;
}

interface NamespaceWatchers {
  readonly all: Set<Watcher>;
  readonly byService: Map<string, Set<Watcher>>;
}

/**
 * WatchHub fans the store's changes out to watchers. Each change is appended
 * once to a shared history, and each interested watcher is told of it
 * without waiting on any reader: the watcher's stream reads the change from
 * the history at its own pace (watcher.ts). The same history serves
 * resumes. The hub also sends progress bookmarks on idle streams.
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
  /** snapshotInstances counts instances sent in snapshots (whole or differential), for /metrics. */
  snapshotInstances = 0;
  /** snapshotKept counts held instances a differential snapshot did not send again (their digest matched), for /metrics. */
  snapshotKept = 0;
  private progressTimer: Timer | undefined;
  // the revision of the latest change appended to the history and offered to watchers
  private dispatched: number;
  private closed = false;

  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly settings: WatchSettings,
  ) {
    this.history = this.seededHistory();
    this.dispatched = store.revision();
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
   * resumeRevision) is queued at once, then live changes follow. The
   * snapshot is differential when the request says what it holds.
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
      readable: req.services.length === 0 ? req.readable : undefined,
    };
    const w = new Watcher(scope, this, this.settings.maxQueue, this.settings.overflow, this.clock.now(), this.start(req));
    this.opened++;
    this.add(w);
    return w;
  }

  get registryId(): string {
    return this.store.registryId;
  }

  changeAt(revision: number): Change | undefined {
    return this.history.at(revision);
  }

  head(): number {
    return this.dispatched;
  }

  /**
   * snapshot builds the snapshot messages of scope at the store's current
   * revision. With held (a resuming watcher's holdings), it is differential:
   * only the instances held is missing or holds with another digest, and
   * removals for the held instances the scope no longer has.
   */
  snapshot(scope: WatchScope, reason: ResetReason | undefined, held?: Holdings): WatchItem[] {
    const items: WatchItem[] = [];
    let chunk: InstanceRecord[] = [];
    let removed: InstanceKey[] = [];
    let bytes = 0;
    const { snapshotChunkBytes = Infinity, sizeOf, digestOf } = this.settings;
    const differential = held !== undefined && digestOf !== undefined;
    // held instances the scope still has, whatever their digest
    const kept = new Set<string>();
    const flush = (): void => {
      items.push(removed.length === 0 ? { kind: "snapshot", instances: chunk } : { kind: "snapshot", instances: chunk, removed });
      chunk = [];
      removed = [];
      bytes = 0;
    };
    // each entry costs its bytes plus a tag and a length prefix (at most 6 bytes)
    const room = (size: number): void => {
      if (chunk.length + removed.length > 0 && bytes + size > snapshotChunkBytes) flush();
    };
    const added = (): void => {
      if (chunk.length + removed.length >= this.settings.snapshotChunk) flush();
    };
    const take = (records: readonly InstanceRecord[]): void => {
      for (const r of records) {
        if (!scope.matchAll && !matches(scope.filter, r)) continue;
        if (differential) {
          const digest = held.get(r.service)?.get(r.instanceId);
          if (digest !== undefined) {
            kept.add(`${r.service}/${r.instanceId}`);
            if (digest === digestOf(r)) {
              this.snapshotKept++;
              continue;
            }
          }
        }
        const size = sizeOf === undefined ? 0 : sizeOf(r) + 6;
        room(size);
        chunk.push(r);
        this.snapshotInstances++;
        bytes += size;
        added();
      }
    };
    if (scope.services.length === 0) {
      const readable = scope.readable;
      for (const [service, view] of this.store.services(scope.namespace)) if (readable === undefined || readable(service)) take(view.sorted());
    } else {
      for (const s of scope.services) take(this.store.service(scope.namespace, s)?.sorted() ?? []);
    }
    if (differential) {
      for (const [service, ids] of held) {
        for (const instanceId of ids.keys()) {
          if (kept.has(`${service}/${instanceId}`)) continue;
          // an InstanceKey: three strings with their tags and length prefixes
          room(service.length + instanceId.length + scope.namespace.length + 15);
          removed.push({ namespace: scope.namespace, service, instanceId });
          bytes += service.length + instanceId.length + scope.namespace.length + 15;
          added();
        }
      }
    }
    if (chunk.length + removed.length > 0) flush();
    items.push({ kind: "snapshot_end", revision: this.store.revision(), registryId: this.store.registryId, reason, differential });
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
    this.history = this.seededHistory();
    this.dispatched = this.store.revision();
    for (const ns of this.namespaces.values()) {
      const each = (w: Watcher): void => w.resetTo(reason);
      ns.all.forEach(each);
      for (const set of ns.byService.values()) set.forEach(each);
    }
    this.log.warn({ reason, watchers: this.count }, "watchers reset to a fresh snapshot");
  }

  /**
   * seededHistory is an empty history seeded with the store's recent
   * changes. It holds historySize changes for resumes, and at least
   * maxQueue, which watchers behind the live head read from.
   */
  private seededHistory(): History {
    const history = new History(Math.max(this.settings.historySize, this.settings.maxQueue));
    for (const c of this.store.recentChanges?.() ?? []) history.append(c);
    return history;
  }

  /**
   * start says how a watcher begins: a snapshot (with a reset reason when
   * a resume cannot be honoured), or the replay of exactly the changes
   * after the resume revision, read from the history at the stream's pace
   * whatever their number, when the history holds them all.
   */
  private start(req: WatchRequest): SnapshotStart | Replay {
    const current = this.store.revision();
    const held = req.held;
    if (req.resumeRevision === 0) return { snapshot: undefined, held };
    if ((req.registryId !== "" && req.registryId !== this.store.registryId) || req.resumeRevision > current) {
      return { snapshot: "REGISTRY_CHANGED", held };
    }
    if (req.resumeRevision === current) return { from: current, until: current };
    if (current - req.resumeRevision > this.settings.historySize || !this.history.holds(req.resumeRevision)) return { snapshot: "COMPACTED", held };
    return { from: req.resumeRevision, until: current };
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
    this.dispatched = change.revision;
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
        if (w.lastActivity <= idleSince && !w.ready) {
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
