import { checkServingStatus, resolveHealth, sameHealth, worseStatus, type Health, type HealthSpec } from "./health.js";
import { shared, sharedMetadata, sharedTags } from "./intern.js";

/** Status is an instance's serving status. */
export type Status = "SERVING" | "NOT_SERVING" | "DRAINING";

/**
 * OperatorStatus is an operator's override of an instance's status
 * (SetOperatorStatus, `maxine drain`): "NONE" leaves the status to the
 * instance's own reports.
 */
export type OperatorStatus = "NONE" | "DRAINING" | "DISABLED";

/** RemovalReason says why an instance left the registry (CHECK_FAILED: its check's deregister-after passed). */
export type RemovalReason = "DEREGISTERED" | "LEASE_EXPIRED" | "STREAM_CLOSED" | "CHECK_FAILED";

/** DEFAULT_NAMESPACE is the namespace of requests that name none. */
export const DEFAULT_NAMESPACE = "default";

/** DEFAULT_WEIGHT is the weight of an instance registered with weight 0. */
export const DEFAULT_WEIGHT = 100;

/** InstanceSpec is what a client says about an instance: validated and normalised. */
export interface InstanceSpec {
  readonly namespace: string;
  readonly service: string;
  readonly instanceId: string;
  readonly host: string;
  readonly port: number;
  readonly version: string;
  readonly zone: string;
  /** tags, sorted and without duplicates. */
  readonly tags: readonly string[];
  readonly metadata: Readonly<Record<string, string>>;
  readonly weight: number;
  readonly status: Status;
  /** owner is the principal that registered the instance: set by the server, never by the client. */
  readonly owner: string;
  /**
   * operatorStatus is the operator's override, set by the server. Unset in
   * a spec given to Store.put: the stored instance's override is kept (in
   * the same atomic write), so an owner's re-registration or a beat's status
   * change never clears it.
   */
  readonly operatorStatus?: OperatorStatus;
  /**
   * health is the instance's active check (set by the client) with its
   * result (set by the registry's checker). A spec without a result keeps
   * the stored one while the check is unchanged (resolveHealth).
   */
  readonly health?: HealthSpec | undefined;
}

/**
 * InstanceRecord is an instance as stored: the spec plus server-set times
 * and revisions. Records are immutable; a change makes a new record.
 */
export interface InstanceRecord extends InstanceSpec {
  readonly operatorStatus: OperatorStatus;
  /** health is the check and its result, in one slot (most instances have none: a slot per field would cost every record). */
  readonly health: Health | undefined;
  readonly registeredAt: number;
  readonly updatedAt: number;
  readonly createRevision: number;
  readonly modRevision: number;
  /**
   * encoded is the record's Instance as protobuf (latin1 bytes), written
   * once by the wire layer when first needed (wire/encoded.ts
   * instanceBytes) and never changed: the record is immutable, so its
   * encoding is too. A slot in the record, not a table beside it: a weak
   * map's entry per stored instance cost more than the slot.
   */
  encoded?: string;
}

/**
 * recordOf makes the stored record of spec. Every record is written by
 * this one literal, so all share one hidden class with every field in the
 * object itself (a spread plus added fields put them in a separate
 * property array): a record is the largest part of an instance's memory.
 * The values instances repeat are shared copies (intern.ts).
 */
export function recordOf(spec: InstanceSpec, registeredAt: number, updatedAt: number, createRevision: number, modRevision: number): InstanceRecord {
  return {
    namespace: shared(spec.namespace),
    service: shared(spec.service),
    instanceId: spec.instanceId,
    host: spec.host,
    port: spec.port,
    version: shared(spec.version),
    zone: shared(spec.zone),
    tags: sharedTags(spec.tags),
    metadata: sharedMetadata(spec.metadata),
    weight: spec.weight,
    status: spec.status,
    owner: shared(spec.owner),
    operatorStatus: spec.operatorStatus ?? "NONE",
    health: resolveHealth(spec.health, undefined, updatedAt),
    registeredAt,
    updatedAt,
    createRevision,
    modRevision,
    encoded: undefined,
  };
}

/**
 * effectiveStatus is the status an instance is treated as having (Discover,
 * ListServices counts, Instance.status on the wire): the operator's override
 * when set, else the worse of what the instance reported and what its
 * active check allows (SERVING only while the check is PASSING).
 */
export function effectiveStatus(r: InstanceRecord): Status {
  switch (r.operatorStatus) {
    case "DRAINING":
      return "DRAINING";
    case "DISABLED":
      return "NOT_SERVING";
    default:
      return r.health === undefined ? r.status : worseStatus(r.status, checkServingStatus(r.health));
  }
}

/**
 * LeaseState is what the answering server knows, right now, of an
 * instance's lease: the load its beats last reported and when it goes
 * unless renewed. It changes with every beat and is not revisioned, so it
 * is no part of the (immutable, cached) record: answers that list instances
 * with it (Discover include_all) write it per answer. undefined: not known
 * here.
 */
export interface LeaseState {
  readonly load: number | undefined;
  readonly expiresAt: number | undefined;
}

/** UNKNOWN_LEASE is the LeaseState of an instance whose lease this server does not know. */
export const UNKNOWN_LEASE: LeaseState = Object.freeze({ load: undefined, expiresAt: undefined });

/** InstanceKey names one instance. */
export interface InstanceKey {
  readonly namespace: string;
  readonly service: string;
  readonly instanceId: string;
}

/** keyString is the map key of an instance; '/' cannot occur in any of its parts. */
export function keyString(k: InstanceKey): string {
  // join writes one flat string; a template literal makes a tree of
  // concatenations (three more objects per stored key, slower to hash)
  return [k.namespace, k.service, k.instanceId].join("/");
}

/** sameSpec reports whether two instances differ in nothing a client can set. */
export function sameSpec(a: InstanceSpec, b: InstanceSpec): boolean {
  if (
    a.host !== b.host ||
    a.port !== b.port ||
    a.version !== b.version ||
    a.zone !== b.zone ||
    a.weight !== b.weight ||
    a.status !== b.status ||
    a.owner !== b.owner ||
    (a.operatorStatus ?? "NONE") !== (b.operatorStatus ?? "NONE") ||
    a.tags.length !== b.tags.length ||
    !sameHealth(a.health, b.health)
  ) {
    return false;
  }
  for (let i = 0; i < a.tags.length; i++) if (a.tags[i] !== b.tags[i]) return false;
  const ak = Object.keys(a.metadata);
  if (ak.length !== Object.keys(b.metadata).length) return false;
  for (const k of ak) if (a.metadata[k] !== b.metadata[k]) return false;
  return true;
}
