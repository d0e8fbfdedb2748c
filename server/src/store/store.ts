import type { InstanceKey, InstanceRecord, InstanceSpec, RemovalReason } from "../registry/instance.js";

/**
 * Change is one committed mutation. Every change has its own revision, one
 * more than the change before it, so a sequence of changes has no gaps.
 */
export type Change =
  | { readonly type: "ADDED"; readonly revision: number; readonly instance: InstanceRecord }
  | {
      readonly type: "UPDATED";
      readonly revision: number;
      readonly instance: InstanceRecord;
      /** previous is the record before the change, so watchers can tell filter transitions. */
      readonly previous: InstanceRecord;
    }
  | {
      readonly type: "REMOVED";
      readonly revision: number;
      /** instance is the last state of the removed instance. */
      readonly instance: InstanceRecord;
      readonly reason: RemovalReason;
    };

/** ServiceView is a read-only view of one service's instances. */
export interface ServiceView {
  readonly size: number;
  /** servingCount counts SERVING instances. */
  readonly servingCount: number;
  /** sorted returns the instances in instance_id order; cached until the service changes. */
  sorted(): readonly InstanceRecord[];
  get(instanceId: string): InstanceRecord | undefined;
}

/**
 * Store is where registry state lives. Writes are asynchronous (a remote
 * store commits them elsewhere); reads are synchronous and come from a local
 * view that has applied every change the store has reported, so a snapshot
 * read and the change feed can never disagree.
 *
 * Subscribers see every change exactly once, in revision order, before the
 * write that caused it resolves (read your writes).
 */
export interface Store {
  /** registryId names this registry's state; it changes when the state is lost. */
  readonly registryId: string;
  /** revision is the revision of the latest change applied to the view (0: none yet). */
  revision(): number;
  get(key: InstanceKey): InstanceRecord | undefined;
  service(namespace: string, service: string): ServiceView | undefined;
  /** services lists the services of a namespace, in name order. */
  services(namespace: string): ReadonlyArray<readonly [string, ServiceView]>;
  /** namespaces lists the namespaces that hold at least one instance. */
  namespaces(): readonly string[];
  /**
   * put adds or replaces an instance and resolves with the change, or with
   * undefined when the stored instance already equals spec (nothing to do).
   */
  put(spec: InstanceSpec, now: number): Promise<Change | undefined>;
  /**
   * remove deletes an instance and resolves with the change, or with
   * undefined when it is absent or (with ifModRevision) was changed since.
   */
  remove(key: InstanceKey, reason: RemovalReason, ifModRevision?: number): Promise<Change | undefined>;
  /** subscribe registers a change listener and returns its unsubscribe. */
  subscribe(listener: (change: Change) => void): () => void;
  close(): Promise<void>;
}
