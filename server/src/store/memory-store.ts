import { randomUUID } from "node:crypto";
import { keyString, recordOf, sameSpec, type InstanceKey, type InstanceRecord, type InstanceSpec, type RemovalReason } from "../domain/instance.js";
import { ownedByOther } from "../domain/access.js";
import { resolveHealth } from "../domain/health.js";
import type { Change, LeaseClaim, Store } from "./store.js";
import { ViewReads } from "./view.js";

/**
 * MemoryStore is the embedded default store: state in this process, lost on
 * restart (a restart gets a new registryId, so watchers that resume are told
 * to reset). Writes apply synchronously; the promise only keeps the Store
 * interface that remote stores need.
 */
export class MemoryStore extends ViewReads implements Store {
  readonly registryId = randomUUID();
  private readonly listeners = new Set<(change: Change) => void>();
  private rev = 0;

  revision(): number {
    return this.rev;
  }

  async put(spec: InstanceSpec, now: number, _lease?: LeaseClaim, owner?: string): Promise<Change | undefined> {
    return this.putNow(spec, now, owner);
  }

  /**
   * putNow is put, committed before it returns (or throws PERMISSION_DENIED):
   * the primary's authority (cluster/registry-authority.ts) handles a
   * lease in the same turn as its write.
   */
  putNow(spec: InstanceSpec, now: number, owner?: string): Change | undefined {
    const previous = this.view.get(spec);
    if (previous !== undefined && owner !== undefined && previous.owner !== owner) throw ownedByOther(keyString(spec), previous.owner, owner);
    // an unset override keeps the stored one (the Store contract's put)
    if (spec.operatorStatus === undefined) spec = { ...spec, operatorStatus: previous?.operatorStatus ?? "NONE" };
    // a check without a result keeps the stored result while the check is the same (the Store contract's put)
    if (spec.health !== undefined && spec.health.result === undefined) spec = { ...spec, health: resolveHealth(spec.health, previous?.health, now) };
    if (previous !== undefined && sameSpec(previous, spec)) return undefined;
    const revision = ++this.rev;
    const instance = recordOf(spec, previous?.registeredAt ?? now, now, previous?.createRevision ?? revision, revision);
    this.view.set(instance);
    return this.emit(
      previous === undefined ? { type: "ADDED", revision, instance } : { type: "UPDATED", revision, instance, previous },
    );
  }

  async remove(key: InstanceKey, reason: RemovalReason, ifModRevision?: number, owner?: string): Promise<Change | undefined> {
    return this.removeNow(key, reason, ifModRevision, owner);
  }

  /** removeNow is remove, committed before it returns (or throws PERMISSION_DENIED). */
  removeNow(key: InstanceKey, reason: RemovalReason, ifModRevision?: number, owner?: string): Change | undefined {
    const instance = this.view.get(key);
    if (instance === undefined) return undefined;
    if (owner !== undefined && instance.owner !== owner) throw ownedByOther(keyString(key), instance.owner, owner);
    if (ifModRevision !== undefined && instance.modRevision !== ifModRevision) return undefined;
    this.view.delete(key);
    return this.emit({ type: "REMOVED", revision: ++this.rev, instance, reason });
  }

  subscribe(listener: (change: Change) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async close(): Promise<void> {
    this.listeners.clear();
  }

  private emit(change: Change): Change {
    for (const l of this.listeners) l(change);
    return change;
  }
}
