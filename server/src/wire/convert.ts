import { create } from "@bufbuild/protobuf";
import { durationMs, timestampFromMs, type Duration } from "@bufbuild/protobuf/wkt";
import {
  BeatResult,
  EventType,
  InstanceSchema,
  OperatorStatus as OperatorStatusPb,
  RemovalReason as RemovalReasonPb,
  ResetReason as ResetReasonPb,
  ServingStatus,
  Strategy as StrategyPb,
  WatchServicesResponseSchema,
  type Filter,
  type HealthCheck,
  type Instance,
  type InstanceKey as InstanceKeyPb,
  type WatchServicesResponse,
} from "@maxine/sdk/gen/maxine/registry/v1/registry_pb";
import { invalid } from "../domain/errors.js";
import type { InstanceKey, InstanceRecord, LeaseState, OperatorStatus, Status } from "../domain/instance.js";
import { instanceWriter } from "./instance-fields.js";
import type { BeatOutcome } from "../registry/registry.js";
import type { Strategy } from "../registry/select.js";
import type { FilterSpec } from "../domain/filter.js";
import type { InstanceInput } from "../registry/validate.js";
import type { CheckInput } from "../registry/check-rules.js";
import type { CheckKind } from "../domain/health.js";
import type { WatchEventItem, WatchItem } from "../watch/items.js";

// Conversions between the wire types (generated from proto/) and the core's
// domain types. Everything protobuf-shaped stays in transport/.

const statusFromPb: Record<ServingStatus, Status | undefined> = {
  [ServingStatus.UNSPECIFIED]: undefined,
  [ServingStatus.SERVING]: "SERVING",
  [ServingStatus.NOT_SERVING]: "NOT_SERVING",
  [ServingStatus.DRAINING]: "DRAINING",
};


const strategyFromPb: Record<StrategyPb, Strategy> = {
  [StrategyPb.UNSPECIFIED]: "ROUND_ROBIN",
  [StrategyPb.ROUND_ROBIN]: "ROUND_ROBIN",
  [StrategyPb.RANDOM]: "RANDOM",
  [StrategyPb.WEIGHTED]: "WEIGHTED",
  [StrategyPb.LEAST_LOADED]: "LEAST_LOADED",
  [StrategyPb.CONSISTENT_HASH]: "CONSISTENT_HASH",
  [StrategyPb.RENDEZVOUS]: "RENDEZVOUS",
};

/** statusOf maps a wire status (an unknown number from a newer client is rejected by the caller). */
export function statusOf(s: ServingStatus): Status | undefined {
  return statusFromPb[s];
}

/** knownStatus reports whether s is a status this server understands. */
export function knownStatus(s: number): s is ServingStatus {
  return s in statusFromPb;
}

const operatorStatusFromPb: Record<OperatorStatusPb, OperatorStatus> = {
  [OperatorStatusPb.UNSPECIFIED]: "NONE",
  [OperatorStatusPb.DRAINING]: "DRAINING",
  [OperatorStatusPb.DISABLED]: "DISABLED",
};

/** operatorStatusOf maps a wire operator status; undefined for a value this server does not know. */
export function operatorStatusOf(s: OperatorStatusPb): OperatorStatus | undefined {
  return operatorStatusFromPb[s];
}

/** strategyOf maps a wire strategy; undefined for a value this server does not know. */
export function strategyOf(s: StrategyPb): Strategy | undefined {
  return strategyFromPb[s];
}

/**
 * ttlOf converts a lease TTL to milliseconds; undefined means the server's
 * default. A Duration whose nanos exceed a second or disagree in sign with
 * its seconds is malformed (protobuf's rule, not a rounding matter:
 * {1s, 2000000000ns} must not become 3 s), and a negative one is no TTL;
 * both throw INVALID_ARGUMENT naming field (a beat passes
 * "beats[i].lease_ttl"). The registry checks the range.
 */
export function ttlOf(d: Duration | undefined, field = "lease_ttl"): number | undefined {
  if (d === undefined) return undefined;
  const { seconds, nanos } = d;
  if (!(Number.isInteger(nanos) && nanos >= -999_999_999 && nanos <= 999_999_999) || (seconds > 0n && nanos < 0) || (seconds < 0n && nanos > 0)) {
    throw invalid(field, `nanos must be within ±999,999,999 and have the sign of seconds, got {${seconds}s, ${nanos}ns}`);
  }
  if (seconds < 0n || nanos < 0) throw invalid(field, `must not be negative, got {${seconds}s, ${nanos}ns}`);
  return durationMs(d);
}

/**
 * checkInputOf converts a wire HealthCheck to the core's input; field
 * names it in errors (a malformed duration throws INVALID_ARGUMENT here).
 */
export function checkInputOf(c: HealthCheck | undefined, field: string): CheckInput | undefined {
  if (c === undefined) return undefined;
  const kinds: CheckKind[] = [];
  if (c.http !== undefined) kinds.push("HTTP");
  if (c.tcp !== undefined) kinds.push("TCP");
  if (c.grpc !== undefined) kinds.push("GRPC");
  return {
    kinds,
    port: c.port,
    intervalMs: ttlOf(c.interval, `${field}.interval`),
    timeoutMs: ttlOf(c.timeout, `${field}.timeout`),
    healthyThreshold: c.healthyThreshold,
    unhealthyThreshold: c.unhealthyThreshold,
    deregisterAfterMs: ttlOf(c.deregisterAfter, `${field}.deregister_after`),
    httpPath: c.http?.path ?? "",
    httpMethod: c.http?.method ?? "",
    statusMin: c.http?.expectedStatusMin ?? 0,
    statusMax: c.http?.expectedStatusMax ?? 0,
    grpcService: c.grpc?.service ?? "",
  };
}

/** instanceInputOf converts a wire instance to the core's input; field names it in errors ("beats[0].instance" for a beat's). */
export function instanceInputOf(i: Instance | undefined, field = "instance"): InstanceInput | undefined {
  if (i === undefined) return undefined;
  return {
    healthCheck: checkInputOf(i.healthCheck, `${field}.health_check`),
    namespace: i.namespace,
    service: i.service,
    instanceId: i.instanceId,
    host: i.host,
    port: i.port,
    version: i.version,
    zone: i.zone,
    tags: i.tags,
    metadata: i.metadata,
    weight: i.weight,
    status: statusFromPb[i.status],
  };
}

/** keyOfPb converts a wire key. */
export function keyOfPb(k: Pick<InstanceKeyPb, "namespace" | "service" | "instanceId"> | undefined): InstanceKey | undefined {
  return k === undefined ? undefined : { namespace: k.namespace, service: k.service, instanceId: k.instanceId };
}

/** filterOfPb converts a wire filter. */
export function filterOfPb(f: Filter | undefined): FilterSpec | undefined {
  return f === undefined ? undefined : { tags: f.tags, version: f.version, zone: f.zone, metadata: f.metadata };
}

/**
 * instanceToPb converts a stored record, from the one table that maps a
 * record to Instance (instance-fields.ts). It is built per call, not kept
 * with the record: a message per stored instance for its whole life cost
 * more heap than the record itself, for answers (Register in JSON, the
 * connect-es path) that are written once. Binary and JSON fan-out use the
 * record's cached encodings (encoded.ts) instead.
 */
export function instanceToPb(r: InstanceRecord): Instance {
  return create(InstanceSchema, instanceWriter.init(r));
}

/**
 * listedInstanceToPb is r's Instance with its live lease state, as Discover
 * include_all lists it: a message of its own (instanceToPb's are shared),
 * for the connect-es path and as the reference of listedInstanceBytes.
 */
export function listedInstanceToPb(r: InstanceRecord, lease: LeaseState): Instance {
  return create(InstanceSchema, {
    ...instanceWriter.init(r),
    reportedLoad: lease.load,
    leaseExpiresAt: lease.expiresAt === undefined ? undefined : timestampFromMs(lease.expiresAt),
  });
}

/** eventTypeToPb and removalToPb map a watch event's type and removal reason to their wire values. */
export const eventTypeToPb = { ADDED: EventType.ADDED, UPDATED: EventType.UPDATED, REMOVED: EventType.REMOVED } as const;
export const removalToPb = {
  DEREGISTERED: RemovalReasonPb.DEREGISTERED,
  LEASE_EXPIRED: RemovalReasonPb.LEASE_EXPIRED,
  STREAM_CLOSED: RemovalReasonPb.STREAM_CLOSED,
  FILTERED: RemovalReasonPb.FILTERED,
  CHECK_FAILED: RemovalReasonPb.CHECK_FAILED,
} as const;
const resetToPb = {
  COMPACTED: ResetReasonPb.COMPACTED,
  REGISTRY_CHANGED: ResetReasonPb.REGISTRY_CHANGED,
  OVERFLOW: ResetReasonPb.OVERFLOW,
} as const;

/** watchEventFieldsOf converts an event's fields other than its instance. */
export function watchEventFieldsOf(item: WatchEventItem) {
  return {
    type: eventTypeToPb[item.type],
    revision: BigInt(item.revision),
    removalReason: item.removalReason === undefined ? RemovalReasonPb.UNSPECIFIED : removalToPb[item.removalReason],
  };
}

/** watchItemToPb converts one watch stream item. */
export function watchItemToPb(item: WatchItem): WatchServicesResponse {
  switch (item.kind) {
    case "snapshot":
      return create(WatchServicesResponseSchema, {
        message: { case: "snapshot", value: { instances: item.instances.map(instanceToPb), removed: [...(item.removed ?? [])] } },
      });
    case "snapshot_end":
      return create(WatchServicesResponseSchema, {
        message: {
          case: "snapshotEnd",
          value: {
            revision: BigInt(item.revision),
            registryId: item.registryId,
            reset: item.reason !== undefined,
            reason: item.reason === undefined ? ResetReasonPb.UNSPECIFIED : resetToPb[item.reason],
            differential: item.differential === true,
          },
        },
      });
    case "event":
      return create(WatchServicesResponseSchema, {
        message: { case: "event", value: { ...watchEventFieldsOf(item), instance: instanceToPb(item.instance) } },
      });
    case "progress":
      return create(WatchServicesResponseSchema, {
        message: { case: "progress", value: { revision: BigInt(item.revision), registryId: item.registryId } },
      });
  }
}

const beatResultToPb = {
  RENEWED: BeatResult.RENEWED,
  UNKNOWN: BeatResult.UNKNOWN,
  INVALID: BeatResult.INVALID,
  REGISTERED: BeatResult.REGISTERED,
  PERMISSION_DENIED: BeatResult.PERMISSION_DENIED,
} as const;

/** beatAckOf converts one heartbeat outcome. */
export function beatAckOf(o: BeatOutcome) {
  return {
    key: o.key,
    result: beatResultToPb[o.result],
    leaseExpiresAt: "expiresAt" in o ? timestampFromMs(o.expiresAt) : undefined,
    message: "expiresAt" in o ? "" : o.message,
  };
}
