import { create, toJsonString, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  DeregisterRequestSchema,
  DeregisterResponseSchema,
  DiscoverRequestSchema,
  DiscoverResponseSchema,
  ListServicesRequestSchema,
  ListServicesResponseSchema,
  RegisterRequestSchema,
  RegisterResponseSchema,
  type DeregisterRequest,
  type DeregisterResponse,
  type DiscoverRequest,
  type DiscoverResponse,
  type ListServicesRequest,
  type ListServicesResponse,
  type RegisterRequest,
  type RegisterResponse,
} from "@maxine/sdk/gen/maxine/registry/v1/registry_pb";
import { invalid } from "../domain/errors.js";
import type { Discovered, Registry } from "../registry/registry.js";
import { filterOfPb, instanceInputOf, instanceToPb, keyOfPb, knownStatus, strategyOf, ttlOf } from "./convert.js";
import { discoverAnswer, registerBinary } from "./encoded.js";

// The unary RPCs, each as one function from request to response: validate
// what only the wire can get wrong (unknown enum values), call the core,
// convert. The connect-es routes (service.ts) and the unary fast path
// (fast-unary.ts) both call these, so they answer alike.

/** answerRegister stores an instance and renews its lease. */
export async function answerRegister(registry: Registry, req: RegisterRequest): Promise<RegisterResponse> {
  if (req.instance !== undefined && !knownStatus(req.instance.status)) {
    throw invalid("instance.status", `unknown value ${req.instance.status}`);
  }
  const r = await registry.register(instanceInputOf(req.instance), ttlOf(req.leaseTtl));
  return create(RegisterResponseSchema, {
    instance: instanceToPb(r.instance),
    leaseTtl: durationFromMs(r.ttlMs),
    leaseExpiresAt: timestampFromMs(r.expiresAt),
    revision: BigInt(r.revision),
    registryId: registry.store.registryId,
  });
}

/** encodeRegister is answerRegister, encoded: protobuf written around the record's cached Instance bytes (encoded.ts). */
export async function encodeRegister(registry: Registry, req: RegisterRequest, format: "binary" | "json"): Promise<Uint8Array | string> {
  if (format === "json") return toJsonString(RegisterResponseSchema, await answerRegister(registry, req));
  if (req.instance !== undefined && !knownStatus(req.instance.status)) {
    throw invalid("instance.status", `unknown value ${req.instance.status}`);
  }
  const r = await registry.register(instanceInputOf(req.instance), ttlOf(req.leaseTtl));
  return registerBinary(r, registry.store.registryId);
}

/** answerDeregister removes an instance at once. */
export async function answerDeregister(registry: Registry, req: DeregisterRequest): Promise<DeregisterResponse> {
  const revision = await registry.deregister(keyOfPb(req.key));
  return create(DeregisterResponseSchema, { revision: BigInt(revision), registryId: registry.store.registryId });
}

/** answerDiscover chooses an instance of a service. */
export function answerDiscover(registry: Registry, req: DiscoverRequest): DiscoverResponse {
  const d = discover(registry, req);
  return create(DiscoverResponseSchema, {
    instance: instanceToPb(d.chosen),
    instances: d.all.map(instanceToPb),
    revision: BigInt(d.revision),
    registryId: registry.store.registryId,
  });
}

/** encodeDiscover is answerDiscover, encoded: the same answer written from each record's cached encoding. */
export function encodeDiscover(registry: Registry, req: DiscoverRequest, format: "binary" | "json"): Uint8Array | string {
  const d = discover(registry, req);
  return discoverAnswer(d, registry.store.registryId, format);
}

function discover(registry: Registry, req: DiscoverRequest): Discovered {
  const strategy = strategyOf(req.strategy);
  if (strategy === undefined) throw invalid("strategy", `unknown value ${req.strategy}`);
  return registry.discover({
    namespace: req.namespace,
    service: req.service,
    filter: filterOfPb(req.filter),
    strategy,
    hashKey: req.hashKey,
    preferredZone: req.preferredZone,
    includeAll: req.includeAll,
  });
}

/** answerListServices lists a namespace's services with their counts. */
export function answerListServices(registry: Registry, req: ListServicesRequest): ListServicesResponse {
  const services = registry.listServices(req.namespace);
  return create(ListServicesResponseSchema, { services, revision: BigInt(registry.store.revision()), registryId: registry.store.registryId });
}

/** UnaryMethod is one unary RPC as the fast path serves it. */
export interface UnaryMethod<I extends DescMessage = DescMessage, O extends DescMessage = DescMessage> {
  readonly name: string;
  readonly input: I;
  readonly output: O;
  answer(registry: Registry, req: MessageShape<I>): MessageShape<O> | Promise<MessageShape<O>>;
  /**
   * encode, when set, is answer already encoded (protobuf bytes or JSON
   * text), for the hot reads: the answer is assembled from cached encodings
   * instead of building and serialising a response message.
   */
  encode?(registry: Registry, req: MessageShape<I>, format: "binary" | "json"): Uint8Array | string | Promise<Uint8Array | string>;
  /** cacheRequests: requests are only read, never kept or changed, so one decoded request may serve identical bodies. */
  readonly cacheRequests?: boolean;
}

function method<I extends DescMessage, O extends DescMessage>(m: UnaryMethod<I, O>): UnaryMethod {
  return m as unknown as UnaryMethod;
}

/** unaryMethods are every unary RPC of RegistryService, by name. */
export const unaryMethods: ReadonlyMap<string, UnaryMethod> = new Map(
  [
    method({ name: "Register", input: RegisterRequestSchema, output: RegisterResponseSchema, answer: answerRegister, encode: encodeRegister }),
    method({ name: "Deregister", input: DeregisterRequestSchema, output: DeregisterResponseSchema, answer: answerDeregister }),
    method({ name: "Discover", input: DiscoverRequestSchema, output: DiscoverResponseSchema, answer: answerDiscover, encode: encodeDiscover, cacheRequests: true }),
    method({ name: "ListServices", input: ListServicesRequestSchema, output: ListServicesResponseSchema, answer: answerListServices, cacheRequests: true }),
  ].map((m) => [m.name, m]),
);
