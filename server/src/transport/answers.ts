import { create } from "@bufbuild/protobuf";
import { DiscoverResponseSchema, type DiscoverRequest, type DiscoverResponse } from "@maxine/sdk/gen/maxine/registry/v1/registry_pb";
import { invalid } from "../registry/errors.js";
import type { Registry } from "../registry/registry.js";
import { filterOfPb, instanceToPb, strategyOf } from "./convert.js";

/**
 * answerDiscover runs one Discover request against the core and builds its
 * answer. The connect-es route and the unary fast path (fast-discover.ts)
 * both call it, so they answer alike.
 */
export function answerDiscover(registry: Registry, req: DiscoverRequest): DiscoverResponse {
  const strategy = strategyOf(req.strategy);
  if (strategy === undefined) throw invalid("strategy", `unknown value ${req.strategy}`);
  const d = registry.discover({
    namespace: req.namespace,
    service: req.service,
    filter: filterOfPb(req.filter),
    strategy,
    hashKey: req.hashKey,
    preferredZone: req.preferredZone,
    includeAll: req.includeAll,
  });
  return create(DiscoverResponseSchema, {
    instance: instanceToPb(d.chosen),
    instances: d.all.map(instanceToPb),
    revision: BigInt(d.revision),
    registryId: registry.store.registryId,
  });
}
