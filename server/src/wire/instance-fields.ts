import {
  InstanceSchema,
  OperatorStatus as OperatorStatusPb,
  OperatorStatusSchema,
  ServingStatus,
  ServingStatusSchema,
  type Instance,
} from "@maxine/sdk/gen/maxine/registry/v1/registry_pb";
import { effectiveStatus, type InstanceRecord, type LeaseState, type OperatorStatus, type Status } from "../domain/instance.js";
import { enumOf, optionalDouble, string, stringMap, strings, timestampMs, uint32, uint64 } from "./schema-columns.js";
import { MessageWriter, perAnswer, suffixWriter, type Table } from "./schema-writer.js";

/** statusToPb maps the core's statuses to the wire enum. */
export const statusToPb: Record<Status, ServingStatus> = {
  SERVING: ServingStatus.SERVING,
  NOT_SERVING: ServingStatus.NOT_SERVING,
  DRAINING: ServingStatus.DRAINING,
};

/** operatorStatusToPb maps the core's operator overrides to the wire enum. */
export const operatorStatusToPb: Record<OperatorStatus, OperatorStatusPb> = {
  NONE: OperatorStatusPb.UNSPECIFIED,
  DRAINING: OperatorStatusPb.DRAINING,
  DISABLED: OperatorStatusPb.DISABLED,
};

/**
 * instanceFields is the one place that says how a stored record becomes an
 * Instance on the wire: a column per field of the generated Instance type.
 * A field added to Instance in proto/ and regenerated (npm run generate)
 * makes this table fail to compile until it says where the field comes
 * from; the binary encoder (instanceWriter) and the JSON mapping
 * (instanceJson in encoded.ts) both read it.
 */
export const instanceFields: Table<Instance, InstanceRecord> = {
  namespace: string((r) => r.namespace),
  service: string((r) => r.service),
  instanceId: string((r) => r.instanceId),
  host: string((r) => r.host),
  port: uint32((r) => r.port),
  version: string((r) => r.version),
  zone: string((r) => r.zone),
  tags: strings((r) => r.tags),
  metadata: stringMap((r) => r.metadata),
  weight: uint32((r) => r.weight),
  status: enumOf(ServingStatusSchema, (r) => statusToPb[effectiveStatus(r)]),
  registeredAt: timestampMs((r) => r.registeredAt),
  updatedAt: timestampMs((r) => r.updatedAt),
  createRevision: uint64((r) => r.createRevision),
  modRevision: uint64((r) => r.modRevision),
  owner: string((r) => r.owner),
  operatorStatus: enumOf(OperatorStatusSchema, (r) => operatorStatusToPb[r.operatorStatus]),
  // live lease state, not in the record: written per answer by leaseWriter, after the record's cached bytes
  reportedLoad: perAnswer(),
  leaseExpiresAt: perAnswer(),
};

/** instanceWriter encodes records as Instance messages, compiled from instanceFields and InstanceSchema at load. */
export const instanceWriter = new MessageWriter(InstanceSchema, instanceFields);

/**
 * leaseWriter writes an Instance's per-answer fields (those instanceFields
 * marks perAnswer) from a LeaseState: appended to a record's cached
 * Instance bytes, they make the Instance protobuf-es writes with every
 * field (suffixWriter checks at load that these fields come last).
 */
export const leaseWriter = suffixWriter(InstanceSchema, instanceFields, {
  reportedLoad: optionalDouble((l: LeaseState) => l.load),
  leaseExpiresAt: timestampMs((l: LeaseState) => l.expiresAt),
});
