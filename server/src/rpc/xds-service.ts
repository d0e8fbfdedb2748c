import { AggregatedDiscoveryService } from "../xds/gen/envoy/service/discovery/v3/ads_pb.js";
import { AdsCall, type AdsDeps } from "./ads-call.js";
import { DeltaAdsCall } from "./delta-ads-call.js";
import { methodInfo, type Service } from "./service.js";

/**
 * xdsService is envoy.service.discovery.v3.AggregatedDiscoveryService as a
 * table of handlers, mounted on the pipeline like the registry (same port,
 * same interceptors: authentication, deadlines, metrics, access log, error
 * mapping), state of the world and incremental (Delta): gRPC's proxyless xDS clients and Envoy discover Maxine's
 * services through it (docs/xds.md). Each stream is a call object.
 */
export function xdsService(deps: AdsDeps): Service {
  const info = (name: string) => methodInfo(AggregatedDiscoveryService, name);
  return {
    desc: AggregatedDiscoveryService,
    methods: [
      { kind: "bidi_streaming", info: info("StreamAggregatedResources"), open: (ctx, out) => new AdsCall(deps, ctx, out) },
      { kind: "bidi_streaming", info: info("DeltaAggregatedResources"), open: (ctx, out) => new DeltaAdsCall(deps, ctx, out) },
    ],
  };
}
