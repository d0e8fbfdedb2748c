import type { InstanceKey, InstanceRecord, InstanceSpec, RemovalReason } from "../domain/instance.js";

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
  /** serving returns the SERVING instances (by effective status) in instance_id order; cached like sorted. */
  serving(): readonly InstanceRecord[];
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
   * With owner set, a stored instance that another principal owns is left
   * as it is and put rejects with PERMISSION_DENIED (checked with the write,
   * atomically: two replicas cannot both win). A spec whose health has no
   * result keeps the stored result while the check is the same, and starts
   * PENDING otherwise (resolveHealth in domain/health.ts), in the same write.
   */
  put(spec: InstanceSpec, now: number, lease?: LeaseClaim, owner?: string): Promise<Change | undefined>;
  /**
   * remove deletes an instance and resolves with the change, or with
   * undefined when it is absent or (with ifModRevision) was changed since.
   * With owner set, an instance another principal owns is kept and remove
   * rejects with PERMISSION_DENIED.
   */
  remove(key: InstanceKey, reason: RemovalReason, ifModRevision?: number, owner?: string): Promise<Change | undefined>;
  /** subscribe registers a change listener and returns its unsubscribe. */
  subscribe(listener: (change: Change) => void): () => void;
  close(): Promise<void>;
  /**
   * leases is set by stores shared between replicas: leases then live in
   * the store, which expires them itself (one sweeper for all replicas),
   * and the registry reports renewals and ended streams to it. Unset (the
   * memory store): the registry expires instances itself.
   */
  readonly leases?: SharedLeases;
  /**
   * replicas is set by stores shared between replicas: the live replicas
   * of the registry, among which the health checks are divided (each runs
   * on exactly one). Unset: this server is the only one.
   */
  readonly replicas?: ReplicaSet;
  /** recentChanges are changes committed before this process subscribed, oldest first, to seed resume history. */
  recentChanges?(): readonly Change[];
  /**
   * subscribeResets registers a listener called when the view was replaced
   * rather than changed (the shared state was lost or changes were missed):
   * watchers then need a fresh snapshot, and the resume history is void.
   */
  subscribeResets?(listener: (reason: StoreResetReason) => void): () => void;
  /** health reports whether writes can reach the store; reads always work. */
  health?(): StoreHealth;
  /** subscribeHealth registers a listener called when health() changes (the store became unreachable or reachable again). */
  subscribeHealth?(listener: () => void): () => void;
}

/** StoreResetReason says why a store replaced its view. */
export type StoreResetReason = "REGISTRY_CHANGED" | "COMPACTED";

/** StoreHealth is a store's health for /healthz: "degraded" serves reads from the mirror but cannot write. */
export interface StoreHealth {
  readonly status: "ok" | "degraded";
  readonly detail: string;
}

/**
 * LeaseClaim asks put to start or renew the instance's lease in a shared
 * store (Register). ttlMs 0 makes the instance persistent instead: no
 * lease, and any lease it had ends (Register with an active check).
 */
export interface LeaseClaim {
  readonly ttlMs: number;
}

/**
 * SharedLeases is how the registry tells a shared store about leases held
 * on this replica. Calls never wait on the network: renewals are batched,
 * and while the store is unreachable they are kept and re-asserted later.
 */
export interface SharedLeases {
  /** renewed: a heartbeat on stream (this replica's stream id) renewed key's lease for ttlMs. */
  renewed(key: string, ttlMs: number, stream: number): void;
  /** released: stream ended; its instances go after graceMs unless another stream takes them first. */
  released(keys: readonly string[], graceMs: number, stream: number): void;
  /**
   * ttls reads the lease TTLs keys were last registered with, on any
   * replica: a heartbeat for a lease this replica has not seen (its
   * session registered elsewhere and moved here, or this replica
   * restarted) renews it for that TTL. A key it cannot tell (registered
   * before TTLs were stored, or the store unreachable) is left out, and
   * the caller uses its default. It never rejects.
   */
  ttls(keys: readonly string[]): Promise<ReadonlyMap<string, number>>;
}

/** ReplicaSet is the live replicas of a shared registry, this one included once it has joined. */
export interface ReplicaSet {
  /** self is this replica's id. */
  readonly self: string;
  /** live lists the live replicas' ids in order (the same list on every replica, give or take a refresh). */
  live(): readonly string[];
  /** subscribe registers a listener called when live() changes. */
  subscribe(listener: () => void): () => void;
}
