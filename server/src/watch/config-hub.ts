import type { Clock } from "../domain/clock.js";
import type { ConfigChange, ConfigEntry } from "../domain/config-entry.js";
import type { FilterSpec } from "../domain/filter.js";
import type { Logger } from "../domain/logger.js";
import type { ConfigStore } from "../store/config-store.js";
import { Fanout, type FanoutSettings } from "./fanout.js";
import type { ResetReason } from "./items.js";
import type { WatchLens, WatchScope, Watcher } from "./watcher.js";

/** ConfigWatchItem is one message of a configuration watch, before encoding (WatchResponse in config.proto). */
export type ConfigWatchItem =
  | { readonly kind: "snapshot"; readonly entries: readonly ConfigEntry[] }
  | { readonly kind: "snapshot_end"; readonly revision: number; readonly registryId: string; readonly reason: ResetReason | undefined }
  | { readonly kind: "event"; readonly change: ConfigChange }
  | { readonly kind: "progress"; readonly revision: number; readonly registryId: string };

/** ConfigHubSettings configure the configuration hub: the watch settings, and how a snapshot is cut. */
export interface ConfigHubSettings extends FanoutSettings {
  /** snapshotChunk is the most entries in one snapshot message. */
  readonly snapshotChunk: number;
  /** snapshotChunkBytes bounds a snapshot message's values (MAXINE_MAX_RESPONSE_BYTES less room for the rest). */
  readonly snapshotChunkBytes: number;
}

/** ConfigWatchRequest is a validated configuration watch. */
export interface ConfigWatchRequest {
  readonly namespace: string;
  /** services watched; empty: the namespace (those readable allows). */
  readonly services: readonly string[];
  readonly resumeRevision: number;
  readonly registryId: string;
  readonly readable?: (service: string) => boolean;
}

const NO_FILTER: FilterSpec = Object.freeze({ tags: [], version: "", zone: "", metadata: {} });

// events are the same object for every watcher of a change (a memo of a pure function of the immutable change), so their encoding is shared too
const events = new WeakMap<ConfigChange, ConfigWatchItem>();

/** configLens reads configuration changes: by the key's namespace and service; every watcher of the service sees every change. */
const configLens: WatchLens<ConfigChange, ConfigWatchItem> = {
  namespaceOf: (c) => c.entry.namespace,
  serviceOf: (c) => c.entry.service,
  sees: () => true,
  eventFor(c) {
    let item = events.get(c);
    if (item === undefined) events.set(c, (item = { kind: "event", change: c }));
    return item;
  },
  progress: (revision, registryId) => ({ kind: "progress", revision, registryId }),
};

/**
 * ConfigHub serves configuration watches with the registry's watch
 * machinery (Fanout: one shared history, per-watcher cursors, resume by
 * revision, bounded lag with the same overflow policy, progress
 * bookmarks), reading the ConfigStore's feed (ADR 0011).
 */
export class ConfigHub extends Fanout<ConfigChange, ConfigWatchItem> {
  readonly lens = configLens;

  constructor(
    private readonly store: ConfigStore,
    clock: Clock,
    log: Logger,
    private readonly settings: ConfigHubSettings,
  ) {
    super(store, clock, log, settings, { noun: "config watch", maxSetting: "MAXINE_MAX_WATCHERS" });
  }

  /** watch opens a watcher: a snapshot, or the replay of the changes after resumeRevision, then live changes. */
  watch(req: ConfigWatchRequest): Watcher<ConfigChange, ConfigWatchItem> {
    const scope: WatchScope = {
      namespace: req.namespace,
      services: req.services,
      filter: NO_FILTER,
      matchAll: true,
      readable: req.services.length === 0 ? req.readable : undefined,
    };
    return this.open(scope, req);
  }

  snapshot(scope: WatchScope, reason: ResetReason | undefined): ConfigWatchItem[] {
    const items: ConfigWatchItem[] = [];
    let chunk: ConfigEntry[] = [];
    let bytes = 0;
    const services = scope.services.length > 0 ? scope.services : this.store.services(scope.namespace).filter((s) => scope.readable?.(s) ?? true);
    for (const service of services) {
      for (const e of this.store.keys(scope.namespace, service)) {
        // an entry costs its value plus its names and a few dozen bytes of fields and tags
        const size = e.value.length + e.key.length + e.service.length + e.namespace.length + e.contentType.length + e.principal.length + 64;
        if (chunk.length > 0 && (chunk.length >= this.settings.snapshotChunk || bytes + size > this.settings.snapshotChunkBytes)) {
          items.push({ kind: "snapshot", entries: chunk });
          chunk = [];
          bytes = 0;
        }
        chunk.push(e);
        bytes += size;
      }
    }
    if (chunk.length > 0) items.push({ kind: "snapshot", entries: chunk });
    items.push({ kind: "snapshot_end", revision: this.store.revision(), registryId: this.store.registryId, reason });
    return items;
  }
}
