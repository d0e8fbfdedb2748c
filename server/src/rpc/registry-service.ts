import { create, type Message } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  DeregisterResponseSchema,
  DiscoverResponseSchema,
  ListServicesResponseSchema,
  RegisterResponseSchema,
  RegistryService,
  SetOperatorStatusResponseSchema,
  type DeregisterRequest,
  type DiscoverRequest,
  type ListServicesRequest,
  type RegisterRequest,
  type SetOperatorStatusRequest,
  type WatchServicesRequest,
} from "@maxine/sdk/gen/maxine/registry/v1/registry_pb";
import type { Access } from "../domain/access.js";
import { invalid } from "../domain/errors.js";
import type { Discovered, Registry } from "../registry/registry.js";
import type { Limits } from "../registry/validate.js";
import type { WatchHub } from "../watch/hub.js";
import { filterOfPb, instanceInputOf, instanceToPb, keyOfPb, listedInstanceToPb, knownStatus, operatorStatusOf, strategyOf, ttlOf } from "../wire/convert.js";
import { decodeHeartbeatRequest, type BeatsRequest } from "../wire/heartbeat-wire.js";
import { discoverAnswer, registerBinary, registerJson } from "../wire/encoded.js";
import { outgoing, type Outgoing } from "./context.js";
import { HeartbeatCall } from "./heartbeat-call.js";
import { methodInfo, type BidiCall, type Service } from "./service.js";
import type { FlushScheduler } from "./stream-output.js";
import { runWatch, type OpenWatches } from "./watch-call.js";
import type { WatchBudget } from "./watch-budget.js";

/** RegistryServiceDeps are the parts the registry's RPCs call. */
export interface RegistryServiceDeps {
  readonly registry: Registry;
  readonly hub: WatchHub;
  readonly limits: Limits;
  readonly flushes: FlushScheduler;
  readonly open?: OpenWatches;
  readonly budget?: WatchBudget;
}

/**
 * registryService is maxine.registry.v1.RegistryService as a table of
 * handlers: each RPC's behaviour, written once, for every protocol. A
 * handler validates what only the wire can get wrong (unknown enum values),
 * calls the core and answers; the hot answers (Register, Discover) are
 * prepared from each record's cached encoding.
 */
export function registryService(deps: RegistryServiceDeps): Service {
  const { registry } = deps;
  const info = (name: string) => methodInfo(RegistryService, name);
  return {
    desc: RegistryService,
    methods: [
      {
        kind: "unary",
        info: info("Register"),
        async handle(ctx, m) {
          const req = m as RegisterRequest;
          if (req.instance !== undefined && !knownStatus(req.instance.status)) {
            throw invalid("instance.status", `unknown value ${req.instance.status}`);
          }
          const r = await registry.register(instanceInputOf(req.instance), ttlOf(req.leaseTtl), ctx.access);
          const registryId = registry.store.registryId;
          return {
            bytes: () => registerBinary(r, registryId),
            json: () => registerJson(r, registryId),
            message: () =>
              create(RegisterResponseSchema, {
                instance: instanceToPb(r.instance),
                leaseTtl: r.ttlMs === undefined ? undefined : durationFromMs(r.ttlMs),
                leaseExpiresAt: r.expiresAt === undefined ? undefined : timestampFromMs(r.expiresAt),
                revision: BigInt(r.revision),
                registryId,
              }),
          };
        },
      },
      {
        kind: "unary",
        info: info("Deregister"),
        async handle(ctx, m) {
          const revision = await registry.deregister(keyOfPb((m as DeregisterRequest).key), ctx.access);
          return outgoing(create(DeregisterResponseSchema, { revision: BigInt(revision), registryId: registry.store.registryId }));
        },
      },
      {
        kind: "unary",
        info: info("SetOperatorStatus"),
        async handle(ctx, m) {
          const req = m as SetOperatorStatusRequest;
          const status = operatorStatusOf(req.status);
          if (status === undefined) throw invalid("status", `unknown value ${req.status}`);
          const r = await registry.setOperatorStatus(keyOfPb(req.key), status, ctx.access);
          return outgoing(
            create(SetOperatorStatusResponseSchema, { instance: instanceToPb(r.instance), revision: BigInt(r.revision), registryId: registry.store.registryId }),
          );
        },
      },
      {
        kind: "unary",
        info: info("Discover"),
        cacheRequests: true,
        handle(ctx, m) {
          return discoverOutgoing(discover(registry, m as DiscoverRequest, ctx.access), registry.store.registryId);
        },
      },
      {
        kind: "unary",
        info: info("ListServices"),
        cacheRequests: true,
        handle(ctx, m) {
          const services = registry.listServices((m as ListServicesRequest).namespace, ctx.access);
          return outgoing(
            create(ListServicesResponseSchema, { services, revision: BigInt(registry.store.revision()), registryId: registry.store.registryId }),
          );
        },
      },
      {
        kind: "bidi_streaming",
        info: info("Heartbeat"),
        open: (ctx, out): BidiCall => new HeartbeatCall(registry, ctx, out),
        decodeBinary: decodeHeartbeatRequest,
      },
      {
        kind: "server_streaming",
        info: info("WatchServices"),
        run: (ctx, m, out) => runWatch(deps, ctx, m as WatchServicesRequest, out),
      },
    ],
  };
}

function discover(registry: Registry, req: DiscoverRequest, access: Access): Discovered {
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
  }, access);
}

/** discoverOutgoing is a Discover answer, written from each record's cached encoding (one-instance answers are kept per revision). */
function discoverOutgoing(d: Discovered, registryId: string): Outgoing {
  return {
    bytes: () => discoverAnswer(d, registryId, "binary"),
    json: () => discoverAnswer(d, registryId, "json"),
    message: (): Message =>
      create(DiscoverResponseSchema, {
        instance: d.chosen === undefined ? undefined : instanceToPb(d.chosen),
        instances: d.all.map((r, i) => listedInstanceToPb(r, d.leases[i]!)),
        revision: BigInt(d.revision),
        registryId,
      }),
  };
}
