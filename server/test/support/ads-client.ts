import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { fileURLToPath } from "node:url";
import { Collector } from "./grpc-client.js";

const DEPS = fileURLToPath(new URL("../../../node_modules/@grpc/grpc-js-xds/deps/", import.meta.url));

/** TYPE is the type URL of each resource type Maxine serves. */
export const TYPE = {
  lds: "type.googleapis.com/envoy.config.listener.v3.Listener",
  rds: "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
  cds: "type.googleapis.com/envoy.config.cluster.v3.Cluster",
  eds: "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
} as const;

let pkg: any;

/**
 * adsClient is an independent xDS client: @grpc/grpc-js with the Envoy
 * protos loaded at run time from the pinned @grpc/grpc-js-xds package's
 * deps (protobufjs, no generated code). With json: true, the Any resources
 * of a response arrive decoded ({"@type": url, ...fields}).
 */
export function adsClient(port: number): grpc.Client & Record<string, any> {
  pkg ??= grpc.loadPackageDefinition(
    protoLoader.loadSync(
      [
        "envoy/service/discovery/v3/ads.proto",
        "envoy/config/listener/v3/listener.proto",
        "envoy/config/route/v3/route.proto",
        "envoy/config/cluster/v3/cluster.proto",
        "envoy/config/endpoint/v3/endpoint.proto",
        "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto",
        "envoy/extensions/filters/http/router/v3/router.proto",
        "envoy/extensions/upstreams/http/v3/http_protocol_options.proto",
      ],
      {
        includeDirs: ["envoy-api", "xds", "googleapis", "protoc-gen-validate"].map((d) => DEPS + d),
        keepCase: false,
        longs: String,
        enums: String,
        defaults: false,
        oneofs: true,
        json: true,
      },
    ),
  );
  const Ctor = pkg.envoy.service.discovery.v3.AggregatedDiscoveryService as typeof grpc.Client;
  return new Ctor(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as grpc.Client & Record<string, any>;
}

/** AdsStream is one open ADS stream (SotW or Delta) with its responses collected. */
export class AdsStream extends Collector<any> {
  /** send writes one request. */
  send(req: object): void {
    (this.call as grpc.ClientDuplexStream<any, any>).write(req);
  }

  /** next waits for the (n+1)th response of typeUrl and returns it (bounded). */
  async nth(typeUrl: string, n: number, timeoutMs = 5_000): Promise<any> {
    const got = await this.waitFor((ms) => ms.filter((m) => m.typeUrl === typeUrl).length > n, timeoutMs);
    return got.filter((m) => m.typeUrl === typeUrl)[n];
  }

  /** count counts the responses of typeUrl so far. */
  count(typeUrl: string): number {
    return this.messages.filter((m) => m.typeUrl === typeUrl).length;
  }

  close(): void {
    this.call.cancel();
  }
}

/** sotw opens a StreamAggregatedResources stream. */
export function sotw(client: Record<string, any>, metadata?: grpc.Metadata): AdsStream {
  return new AdsStream(metadata === undefined ? client.StreamAggregatedResources() : client.StreamAggregatedResources(metadata));
}

/** delta opens a DeltaAggregatedResources stream. */
export function delta(client: Record<string, any>, metadata?: grpc.Metadata): AdsStream {
  return new AdsStream(metadata === undefined ? client.DeltaAggregatedResources() : client.DeltaAggregatedResources(metadata));
}

/** node is a DiscoveryRequest node in zone (none: no locality). */
export function node(zone?: string): object {
  return zone === undefined ? { id: "test" } : { id: "test", locality: { zone } };
}
