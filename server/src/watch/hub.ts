import type { Clock } from "../domain/clock.js";
import { isEmptyFilter, matches } from "../domain/filter.js";
import type { InstanceKey, InstanceRecord } from "../domain/instance.js";
import type { Logger } from "../domain/logger.js";
import type { FilterSpec } from "../domain/filter.js";
import type { Change, Store } from "../store/store.js";
import { Fanout, type FanoutSettings } from "./fanout.js";
import { eventFor, sees, type Holdings, type ResetReason, type WatchItem } from "./items.js";
import type { WatchLens, WatchScope, Watcher } from "./watcher.js";

/** WatchSettings configure the instances' hub; every field is a server setting. */
export interface WatchSettings extends FanoutSettings {
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

/** instanceLens reads the registry's changes for watchers: by the changed instance's namespace and service, through the watch's filter. */
const instanceLens: WatchLens<Change, WatchItem> = {
  namespaceOf: (c) => c.instance.namespace,
  serviceOf: (c) => c.instance.service,
  sees: (c, scope) => sees(c, scope.filter, scope.matchAll),
  eventFor: (c, scope) => eventFor(c, scope.filter, scope.matchAll),
  progress: (revision, registryId) => ({ kind: "progress", revision, registryId }),
};

/**
 * WatchHub fans the store's changes out to WatchServices watchers: the
 * shared machinery of Fanout (one history, cursors, resumes, bookmarks)
 * with the instances' lens and snapshots, differential against what a
 * resuming watcher holds.
 */
export class WatchHub extends Fanout<Change, WatchItem> {
  readonly lens = instanceLens;
  /** snapshotInstances counts instances sent in snapshots (whole or differential), for /metrics. */
  snapshotInstances = 0;
  /** snapshotKept counts held instances a differential snapshot did not send again (their digest matched), for /metrics. */
  snapshotKept = 0;

  constructor(
    private readonly store: Store,
    clock: Clock,
    log: Logger,
    private readonly settings: WatchSettings,
  ) {
    super(store, clock, log, settings, { noun: "watch", maxSetting: "MAXINE_MAX_WATCHERS" });
  }

  /**
   * watch opens a watcher: a snapshot (or the replay of history after
   * resumeRevision) is queued at once, then live changes follow. The
   * snapshot is differential when the request says what it holds.
   */
  watch(req: WatchRequest): Watcher {
    const scope: WatchScope = {
      namespace: req.namespace,
      services: req.services,
      filter: req.filter,
      matchAll: isEmptyFilter(req.filter),
      readable: req.services.length === 0 ? req.readable : undefined,
    };
    return this.open(scope, req);
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
}
