import { matches } from "../domain/filter.js";
import type { InstanceKey, InstanceRecord, RemovalReason } from "../domain/instance.js";

/**
 * Holdings are what a resuming watcher says it holds: per service, each
 * instance id with its content digest (WatchServicesRequest.held), so that
 * its opening snapshot carries only the differences.
 */
export type Holdings = ReadonlyMap<string, ReadonlyMap<string, bigint>>;
import type { FilterSpec } from "../domain/filter.js";
import type { Change } from "../store/store.js";

/** ResetReason says why a watcher got a fresh snapshot. */
export type ResetReason = "COMPACTED" | "REGISTRY_CHANGED" | "OVERFLOW";

/** WatchEventItem is one change as one watcher sees it (after its filter). */
export interface WatchEventItem {
  readonly kind: "event";
  readonly type: "ADDED" | "UPDATED" | "REMOVED";
  readonly instance: InstanceRecord;
  readonly revision: number;
  /** removalReason for REMOVED; FILTERED when the instance only stopped matching. */
  readonly removalReason: RemovalReason | "FILTERED" | undefined;
}

/** WatchItem is one message of a watch stream, before encoding. */
export type WatchItem =
  | {
      readonly kind: "snapshot";
      readonly instances: readonly InstanceRecord[];
      /** removed, in a differential snapshot, names held instances the watch no longer has. */
      readonly removed?: readonly InstanceKey[];
    }
  | {
      readonly kind: "snapshot_end";
      readonly revision: number;
      readonly registryId: string;
      readonly reason: ResetReason | undefined;
      /** differential: the snapshot carried only the differences from the watcher's holdings. */
      readonly differential?: boolean;
    }
  | WatchEventItem
  | { readonly kind: "progress"; readonly revision: number; readonly registryId: string };

/**
 * eventFor turns a store change into what a watcher with filter f sees:
 * an instance that starts matching is ADDED, one that stops matching is
 * REMOVED with reason FILTERED, and changes it never saw are dropped.
 */
export function eventFor(change: Change, f: FilterSpec, matchAll: boolean): WatchEventItem | undefined {
  if (matchAll) return unfilteredEvent(change);
  const { revision, instance } = change;
  const now = matchAll || matches(f, instance);
  switch (change.type) {
    case "ADDED":
      return now ? { kind: "event", type: "ADDED", instance, revision, removalReason: undefined } : undefined;
    case "REMOVED":
      return now ? { kind: "event", type: "REMOVED", instance, revision, removalReason: change.reason } : undefined;
    case "UPDATED": {
      const before = matchAll || matches(f, change.previous);
      if (before && now) return { kind: "event", type: "UPDATED", instance, revision, removalReason: undefined };
      if (now) return { kind: "event", type: "ADDED", instance, revision, removalReason: undefined };
      if (before) return { kind: "event", type: "REMOVED", instance, revision, removalReason: "FILTERED" };
      return undefined;
    }
  }
}

// A change as every watcher without a filter sees it, made once per change
// (a memo of a pure function of the immutable change, not state): the
// fan-out then hands the same item, and so the same cached frame, to each.
const unfiltered = new WeakMap<Change, WatchEventItem>();

function unfilteredEvent(change: Change): WatchEventItem {
  let item = unfiltered.get(change);
  if (item === undefined) {
    const { revision, instance } = change;
    const removalReason = change.type === "REMOVED" ? change.reason : undefined;
    unfiltered.set(change, (item = { kind: "event", type: change.type, instance, revision, removalReason }));
  }
  return item;
}

/** sees reports whether a watcher with filter f gets an event for change (eventFor without building it). */
export function sees(change: Change, f: FilterSpec, matchAll: boolean): boolean {
  if (matchAll || matches(f, change.instance)) return true;
  return change.type === "UPDATED" && matches(f, change.previous);
}
