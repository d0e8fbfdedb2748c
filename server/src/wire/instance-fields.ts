import {
  CheckResultSchema,
  CheckStatus as CheckStatusPb,
  CheckStatusSchema,
  GrpcCheckSchema,
  HealthCheckSchema,
  HttpCheckSchema,
  InstanceSchema,
  TcpCheckSchema,
  OperatorStatus as OperatorStatusPb,
  OperatorStatusSchema,
  ServingStatus,
  ServingStatusSchema,
  type CheckResult as CheckResultPb,
  type GrpcCheck,
  type HealthCheck,
  type HttpCheck,
  type Instance,
  type TcpCheck,
} from "@maxine/sdk/gen/maxine/registry/v1/registry_pb";
import { effectiveStatus, type InstanceRecord, type LeaseState, type OperatorStatus, type Status } from "../domain/instance.js";
import type { CheckResult, CheckSpec, CheckStatus } from "../domain/health.js";
import { durationMs, enumOf, message, optionalDouble, string, stringMap, strings, timestampMs, uint32, uint64 } from "./schema-columns.js";
import { MessageWriter, perAnswer, suffixWriter, tailWriter, type Table } from "./schema-writer.js";

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

/** checkStatusToPb maps the core's check statuses to the wire enum. */
export const checkStatusToPb: Record<CheckStatus, CheckStatusPb> = {
  PENDING: CheckStatusPb.PENDING,
  PASSING: CheckStatusPb.PASSING,
  FAILING: CheckStatusPb.FAILING,
};

const httpCheckWriter = new MessageWriter<HttpCheck, CheckSpec>(HttpCheckSchema, {
  path: string((c) => c.httpPath),
  method: string((c) => c.httpMethod),
  expectedStatusMin: uint32((c) => c.statusMin),
  expectedStatusMax: uint32((c) => c.statusMax),
});
const tcpCheckWriter = new MessageWriter<TcpCheck, CheckSpec>(TcpCheckSchema, {});
const grpcCheckWriter = new MessageWriter<GrpcCheck, CheckSpec>(GrpcCheckSchema, { service: string((c) => c.grpcService) });

/** healthCheckWriter writes a check as the HealthCheck a client sent, with the server's defaults applied. */
const healthCheckWriter = new MessageWriter<HealthCheck, CheckSpec>(HealthCheckSchema, {
  http: message(httpCheckWriter, (c) => (c.kind === "HTTP" ? c : undefined)),
  tcp: message(tcpCheckWriter, (c) => (c.kind === "TCP" ? c : undefined)),
  grpc: message(grpcCheckWriter, (c) => (c.kind === "GRPC" ? c : undefined)),
  port: uint32((c) => c.port),
  interval: durationMs((c) => c.intervalMs),
  timeout: durationMs((c) => c.timeoutMs),
  healthyThreshold: uint32((c) => c.healthyThreshold),
  unhealthyThreshold: uint32((c) => c.unhealthyThreshold),
  deregisterAfter: durationMs((c) => (c.deregisterAfterMs === 0 ? undefined : c.deregisterAfterMs)),
});

const checkResultWriter = new MessageWriter<CheckResultPb, CheckResult>(CheckResultSchema, {
  status: enumOf(CheckStatusSchema, (r) => checkStatusToPb[r.status]),
  message: string((r) => r.message),
  changedAt: timestampMs((r) => r.changedAt),
});

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
  // live lease state, not in the record: written per answer by leaseWriter, spliced into the record's cached bytes
  reportedLoad: perAnswer(),
  leaseExpiresAt: perAnswer(),
  healthCheck: message(healthCheckWriter, (r) => r.health?.check),
  checkResult: message(checkResultWriter, (r) => r.health?.result),
};

/** instanceWriter encodes records as Instance messages, compiled from instanceFields and InstanceSchema at load. */
export const instanceWriter = new MessageWriter(InstanceSchema, instanceFields);

/**
 * leaseWriter writes an Instance's per-answer fields (those instanceFields
 * marks perAnswer) from a LeaseState: spliced into a record's cached
 * Instance bytes before the fields numbered above them (instanceTailWriter's),
 * they make the Instance protobuf-es writes with every field (suffixWriter
 * checks at load that the per-answer fields are consecutive in number order).
 */
export const leaseWriter = suffixWriter(InstanceSchema, instanceFields, {
  reportedLoad: optionalDouble((l: LeaseState) => l.load),
  leaseExpiresAt: timestampMs((l: LeaseState) => l.expiresAt),
});

/**
 * instanceTailWriter writes the cached fields numbered above the per-answer
 * ones (the check and its result): the end of a record's cached bytes,
 * which a listed instance writes after its lease state. Empty for an
 * instance without a check, the common case.
 */
export const instanceTailWriter = tailWriter(InstanceSchema, instanceFields);
