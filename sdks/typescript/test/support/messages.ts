import { create } from "@bufbuild/protobuf";
import {
  EventType,
  InstanceSchema,
  RemovalReason,
  ResetReason,
  ServingStatus,
  WatchServicesResponseSchema,
  type Instance,
  type WatchServicesResponse,
} from "../../src/gen/maxine/registry/v1/registry_pb.js";

/** inst builds a SERVING instance of service "svc" (fields overridable). */
export function inst(instanceId: string, fields: Partial<Omit<Instance, "$typeName">> = {}): Instance {
  return create(InstanceSchema, {
    namespace: "default",
    service: "svc",
    instanceId,
    host: "10.0.0.1",
    port: 80,
    weight: 100,
    status: ServingStatus.SERVING,
    ...fields,
  });
}

/** snapshot builds one snapshot chunk. */
export function snapshot(...instances: Instance[]): WatchServicesResponse {
  return create(WatchServicesResponseSchema, { message: { case: "snapshot", value: { instances } } });
}

/** snapshotEnd builds the end of a snapshot. */
export function snapshotEnd(revision: bigint, registryId = "reg-1", reason = ResetReason.UNSPECIFIED): WatchServicesResponse {
  return create(WatchServicesResponseSchema, {
    message: { case: "snapshotEnd", value: { revision, registryId, reset: reason !== ResetReason.UNSPECIFIED, reason } },
  });
}

/** event builds one watch event. */
export function event(type: EventType, instance: Instance, revision: bigint, removalReason = RemovalReason.UNSPECIFIED): WatchServicesResponse {
  return create(WatchServicesResponseSchema, { message: { case: "event", value: { type, instance, revision, removalReason } } });
}

/** progress builds a progress bookmark. */
export function progress(revision: bigint, registryId = "reg-1"): WatchServicesResponse {
  return create(WatchServicesResponseSchema, { message: { case: "progress", value: { revision, registryId } } });
}
