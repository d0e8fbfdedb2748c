/**
 * The messages a cluster primary and its workers exchange over the cluster's
 * IPC channel (docs/workers.md). Each carries `maxine` naming its kind, so
 * that prom-client's own messages on the same channel are told apart.
 */

/** Listening is a worker's word that it serves: its port and the registry it serves. */
export interface Listening {
  readonly maxine: "listening";
  readonly port: number;
  readonly registryId: string;
}

/** MetricsAsk is a worker's request for the whole server's metrics (a scrape it received). */
export interface MetricsAsk {
  readonly maxine: "metrics";
  readonly id: number;
}

/** MetricsAnswer is the primary's answer: every worker's metrics aggregated, or why not. */
export interface MetricsAnswer {
  readonly maxine: "metrics";
  readonly id: number;
  readonly contentType?: string;
  readonly body?: string;
  readonly error?: string;
}

/** WorkerMessage is what a worker sends its primary. */
export type WorkerMessage = Listening | MetricsAsk;

/** CLUSTER_PORT_ENV passes a worker the port the server already listens on, so a restarted worker of a port-0 server joins the same port. */
export const CLUSTER_PORT_ENV = "MAXINE_CLUSTER_PORT";

/** isWorkerMessage reports whether an IPC message is one of Maxine's (and not prom-client's). */
export function isWorkerMessage(m: unknown): m is WorkerMessage {
  return typeof m === "object" && m !== null && ((m as WorkerMessage).maxine === "listening" || (m as WorkerMessage).maxine === "metrics");
}

// The registry in the primary (MAXINE_STORE=memory with MAXINE_WORKERS > 1, docs/workers.md): a worker's
// store (cluster/primary-store.ts) asks, the primary's authority (cluster/registry-authority.ts) answers
// and feeds every worker the changes, each batch encoded once (v8.serialize) and sent to each worker once.

/** StoreSync asks the primary for a snapshot of the registry and then its feed (a worker starting). */
export interface StoreSync {
  readonly maxine: "store-sync";
}

/** StorePut is Store.put forwarded: id names the request in the answer. */
export interface StorePut {
  readonly maxine: "store-put";
  readonly id: number;
  readonly spec: unknown;
  readonly now: number;
  /** ttlMs is the LeaseClaim's (absent: none). */
  readonly ttlMs?: number;
  readonly owner?: string;
}

/** StoreRemove is Store.remove forwarded. */
export interface StoreRemove {
  readonly maxine: "store-remove";
  readonly id: number;
  readonly key: { readonly namespace: string; readonly service: string; readonly instanceId: string };
  readonly reason: string;
  readonly ifModRevision?: number;
  readonly owner?: string;
}

/** StoreTtls is SharedLeases.ttls forwarded. */
export interface StoreTtls {
  readonly maxine: "store-ttls";
  readonly id: number;
  readonly keys: readonly string[];
}

/** StoreLeases are a worker's lease reports of one batch, in order: renewals [key, ttlMs, stream], then the streams that ended. */
export interface StoreLeases {
  readonly maxine: "store-leases";
  readonly renewed: ReadonlyArray<readonly [string, number, number]>;
  /** released: a stream ended; its keys with the ms left of each one's lease by the worker's count. */
  readonly released: ReadonlyArray<{ readonly stream: number; readonly graceMs: number; readonly keys: ReadonlyArray<readonly [string, number]> }>;
}

/** ConfigSync asks the primary to open the configuration store (if it has not) and send a snapshot and then its feed. */
export interface ConfigSync {
  readonly maxine: "config-sync";
}

/** ConfigWriteAsk is ConfigStore.write forwarded. */
export interface ConfigWriteAsk {
  readonly maxine: "config-write";
  readonly id: number;
  readonly write: unknown;
}

/** StoreMessage is what a worker's stores send the primary. */
export type StoreMessage = StoreSync | StorePut | StoreRemove | StoreTtls | StoreLeases | ConfigSync | ConfigWriteAsk;

/**
 * StoreBatch is the store messages a worker made in one turn of its event
 * loop, in order, sent as one IPC message (one write and one
 * serialization for 20 Registers at once, not 20).
 */
export interface StoreBatch {
  readonly maxine: "store-batch";
  readonly messages: readonly StoreMessage[];
}

/** MAX_BATCH bounds the messages of one StoreBatch; a worker sends more as several batches. */
export const MAX_BATCH = 4096;

/** Reply answers one request: the revision of its change (0: nothing changed), the TTLs asked for, or the error (a RegistryError's reason and message). */
export interface Reply {
  readonly id: number;
  readonly revision?: number;
  readonly ttls?: ReadonlyArray<readonly [string, number]>;
  readonly error?: { readonly reason: string; readonly message: string };
}

/**
 * StoreSnapshot is the registry at a revision, sent to a worker once after
 * its StoreSync; the feed that follows starts after that revision. data is
 * v8.serialize of SnapshotData.
 */
export interface StoreSnapshot {
  readonly maxine: "store-snapshot";
  readonly registryId: string;
  readonly data: Uint8Array;
  /** live are the ids of the workers that hold the registry (ReplicaSet.live). */
  readonly live: readonly string[];
}

/** StoreFeed is one turn's changes (data: v8.serialize of Change[], encoded once for every worker) and this worker's answers, sent after them. */
export interface StoreFeed {
  readonly maxine: "store-feed";
  readonly data?: Uint8Array;
  readonly replies?: readonly Reply[];
}

/** StoreLive tells the workers that the set of live workers changed. */
export interface StoreLive {
  readonly maxine: "store-live";
  readonly live: readonly string[];
}

/** ConfigSnapshot is the configuration store at a revision (data: v8.serialize of its entries, revision and recent changes), or why it could not open. */
export interface ConfigSnapshot {
  readonly maxine: "config-snapshot";
  readonly registryId?: string;
  readonly data?: Uint8Array;
  readonly error?: string;
}

/** ConfigFeed is the configuration's changes of one turn (data: v8.serialize of ConfigChange[]) and this worker's answers. */
export interface ConfigFeed {
  readonly maxine: "config-feed";
  readonly data?: Uint8Array;
  readonly replies?: readonly Reply[];
}

/** PrimaryMessage is what the primary's authority sends a worker. */
export type PrimaryMessage = StoreSnapshot | StoreFeed | StoreLive | ConfigSnapshot | ConfigFeed;

const STORE_KINDS = new Set(["store-batch", "store-sync", "store-put", "store-remove", "store-ttls", "store-leases", "config-sync", "config-write"]);
const PRIMARY_KINDS = new Set(["store-snapshot", "store-feed", "store-live", "config-snapshot", "config-feed"]);

/** isStoreMessage reports whether an IPC message claims to be a worker store's (its fields are checked where it is handled). */
export function isStoreMessage(m: unknown): m is { readonly maxine: StoreMessage["maxine"] | StoreBatch["maxine"] } {
  return typeof m === "object" && m !== null && STORE_KINDS.has((m as { maxine?: unknown }).maxine as string);
}

/** isPrimaryMessage reports whether an IPC message is the primary's authority's. */
export function isPrimaryMessage(m: unknown): m is PrimaryMessage {
  return typeof m === "object" && m !== null && PRIMARY_KINDS.has((m as { maxine?: unknown }).maxine as string);
}
