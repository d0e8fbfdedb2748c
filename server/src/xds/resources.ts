import { createHash } from "node:crypto";
import { create, toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { AnySchema, type Any } from "@bufbuild/protobuf/wkt";
import { effectiveStatus, type InstanceRecord } from "../domain/instance.js";
import { Cluster_DiscoveryType, Cluster_LbPolicy, ClusterSchema } from "./gen/envoy/config/cluster/v3/cluster_pb.js";
import { ApiVersion } from "./gen/envoy/config/core/v3/config_source_pb.js";
import { HealthStatus } from "./gen/envoy/config/core/v3/health_check_pb.js";
import { ClusterLoadAssignmentSchema } from "./gen/envoy/config/endpoint/v3/endpoint_pb.js";
import { EndpointSchema, LbEndpointSchema, LocalityLbEndpointsSchema, type LbEndpoint, type LocalityLbEndpoints } from "./gen/envoy/config/endpoint/v3/endpoint_components_pb.js";
import { ListenerSchema } from "./gen/envoy/config/listener/v3/listener_pb.js";
import { RouteConfigurationSchema } from "./gen/envoy/config/route/v3/route_pb.js";
import { RouterSchema } from "./gen/envoy/extensions/filters/http/router/v3/router_pb.js";
import { HttpProtocolOptionsSchema } from "./gen/envoy/extensions/upstreams/http/v3/http_protocol_options_pb.js";
import { HttpConnectionManagerSchema } from "./gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager_pb.js";

/** XdsType is one of the four resource types Maxine serves, by its short name. */
export type XdsType = "listener" | "route" | "cluster" | "endpoints";

/** TYPE_URLS are the type URLs of the four types: what DiscoveryRequest.type_url and Any.type_url carry. */
export const TYPE_URLS: Readonly<Record<XdsType, string>> = {
  listener: "type.googleapis.com/envoy.config.listener.v3.Listener",
  route: "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
  cluster: "type.googleapis.com/envoy.config.cluster.v3.Cluster",
  endpoints: "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
};

/** typeOfUrl is the XdsType of a type URL, or undefined for a type Maxine does not serve. */
export function typeOfUrl(url: string): XdsType | undefined {
  for (const t of XDS_TYPES) if (TYPE_URLS[t] === url) return t;
  return undefined;
}

/** XDS_TYPES lists the served types in the order a client resolves them (LDS, RDS, CDS, EDS). */
export const XDS_TYPES: readonly XdsType[] = ["listener", "route", "cluster", "endpoints"];

/** LbPolicyName is a cluster's load-balancing policy, as the service's configuration or its instances' metadata name it. */
export type LbPolicyName = "ROUND_ROBIN" | "LEAST_REQUEST" | "RING_HASH";

/** LbPolicy is how a view's clients balance: the policy, and for RING_HASH the request header hashed (none: a random hash per call). */
export interface LbPolicy {
  readonly policy: LbPolicyName;
  readonly hashHeader: string;
}

/** ROUND_ROBIN_POLICY is the policy of a service that sets none. */
export const ROUND_ROBIN_POLICY: LbPolicy = Object.freeze({ policy: "ROUND_ROBIN", hashHeader: "" });

/** sameLbPolicy reports whether two policies make the same Route and Cluster. */
export function sameLbPolicy(a: LbPolicy, b: LbPolicy): boolean {
  return a.policy === b.policy && a.hashHeader === b.hashHeader;
}

/**
 * Packed is one resource ready to send: its name, the Any that carries it
 * (encoded once, shared by every stream it goes to), and its version for
 * Delta: a digest of its bytes, so that equal content has an equal version
 * on every replica and across restarts (a reconnecting client's
 * initial_resource_versions are then compared exactly).
 */
export interface Packed {
  readonly name: string;
  readonly any: Any;
  readonly version: string;
}

/** packed makes the Packed of a resource. */
export function packed(name: string, any: Any): Packed {
  return { name, any, version: createHash("sha256").update(any.value).digest("base64url").slice(0, 22) };
}

/** pack encodes message into the Any a DiscoveryResponse carries. */
export function pack<D extends DescMessage>(schema: D, message: MessageShape<D>, typeUrl: string): Any {
  return create(AnySchema, { typeUrl, value: toBinary(schema, message) });
}

const ADS = { configSourceSpecifier: { case: "ads" as const, value: {} }, resourceApiVersion: ApiVersion.V3 };

/**
 * listenerOf is the API listener of name N: an HttpConnectionManager that
 * takes RouteConfiguration N over ADS, with the router filter last (grpc-go
 * requires it; Envoy's rules want a stat_prefix).
 */
export function listenerOf(name: string): Any {
  const hcm = create(HttpConnectionManagerSchema, {
    statPrefix: "maxine",
    routeSpecifier: { case: "rds", value: { configSource: ADS, routeConfigName: name } },
    httpFilters: [{ name: "envoy.filters.http.router", configType: { case: "typedConfig", value: pack(RouterSchema, create(RouterSchema), ROUTER_URL) } }],
  });
  const listener = create(ListenerSchema, { name, apiListener: { apiListener: pack(HttpConnectionManagerSchema, hcm, HCM_URL) } });
  return pack(ListenerSchema, listener, TYPE_URLS.listener);
}

const HCM_URL = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
const ROUTER_URL = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router";

/** routeOf is RouteConfiguration N: one virtual host for every domain, one route (every path) to cluster N; with RING_HASH, hashed on the policy's header. */
export function routeOf(name: string, lb: LbPolicy): Any {
  const hashPolicy =
    lb.policy === "RING_HASH" && lb.hashHeader !== "" ? [{ policySpecifier: { case: "header" as const, value: { headerName: lb.hashHeader } } }] : [];
  const route = create(RouteConfigurationSchema, {
    name,
    virtualHosts: [
      {
        name,
        domains: ["*"],
        routes: [{ match: { pathSpecifier: { case: "prefix", value: "" } }, action: { case: "route", value: { clusterSpecifier: { case: "cluster", value: name }, hashPolicy } } }],
      },
    ],
  });
  return pack(RouteConfigurationSchema, route, TYPE_URLS.route);
}

const HTTP_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

/**
 * HTTP2_UPSTREAM says that the cluster's endpoints speak HTTP/2 (they are
 * gRPC servers): Envoy would speak HTTP/1.1 to them otherwise. gRPC's
 * clients, which always speak HTTP/2, do not read it.
 */
const HTTP2_UPSTREAM = pack(
  HttpProtocolOptionsSchema,
  create(HttpProtocolOptionsSchema, { upstreamProtocolOptions: { case: "explicitHttpConfig", value: { protocolConfig: { case: "http2ProtocolOptions", value: {} } } } }),
  `type.googleapis.com/${HTTP_OPTIONS}`,
);

/** clusterOf is Cluster N: EDS over ADS (ClusterLoadAssignment N) with the view's load-balancing policy, its endpoints spoken to over HTTP/2. */
export function clusterOf(name: string, lb: LbPolicy): Any {
  const cluster = create(ClusterSchema, {
    name,
    typedExtensionProtocolOptions: { [HTTP_OPTIONS]: HTTP2_UPSTREAM },
    clusterDiscoveryType: { case: "type", value: Cluster_DiscoveryType.EDS },
    edsClusterConfig: { edsConfig: ADS, serviceName: name },
    lbPolicy: Cluster_LbPolicy[lb.policy],
    ...(lb.policy === "RING_HASH" ? { lbConfig: { case: "ringHashLbConfig" as const, value: {} } } : {}),
  });
  return pack(ClusterSchema, cluster, TYPE_URLS.cluster);
}

/** healthOf maps an instance's effective status to an endpoint's health: clients send new calls to HEALTHY endpoints only. */
export function healthOf(r: InstanceRecord): HealthStatus {
  switch (effectiveStatus(r)) {
    case "SERVING":
      return HealthStatus.HEALTHY;
    case "DRAINING":
      return HealthStatus.DRAINING;
    default:
      return HealthStatus.UNHEALTHY;
  }
}

/**
 * loadAssignmentOf is ClusterLoadAssignment N for a client in clientZone
 * ("" unknown): the instances (already filtered to the view) grouped by zone
 * and, within a zone, by weight into sub-localities `w<weight>` whose
 * weight is weight x HEALTHY endpoints (at least 1): gRPC's round robin
 * ignores endpoint weights but honours locality weights, so this is what
 * makes weights split traffic (docs/xds.md). Each endpoint carries its
 * weight too (Envoy and ring hash read it). Localities of the client's zone
 * have priority 0 and the others 1; with no client zone, or none of the
 * view's instances in it, every locality has priority 0 (priorities must
 * start at 0 with no gap).
 */
export function loadAssignmentOf(name: string, instances: readonly InstanceRecord[], clientZone: string): Any {
  const groups = new Map<string, { zone: string; weight: number; healthy: number; endpoints: LbEndpoint[] }>();
  let local = false;
  for (const r of instances) {
    const key = `${r.zone}\u0000${r.weight}`;
    let g = groups.get(key);
    if (g === undefined) groups.set(key, (g = { zone: r.zone, weight: r.weight, healthy: 0, endpoints: [] }));
    const health = healthOf(r);
    if (health === HealthStatus.HEALTHY) g.healthy++;
    if (clientZone !== "" && r.zone === clientZone) local = true;
    g.endpoints.push(
      create(LbEndpointSchema, {
        hostIdentifier: {
          case: "endpoint",
          value: create(EndpointSchema, { address: { address: { case: "socketAddress", value: { address: r.host, portSpecifier: { case: "portValue", value: r.port } } } } }),
        },
        healthStatus: health,
        loadBalancingWeight: r.weight,
      }),
    );
  }
  const localities: LocalityLbEndpoints[] = [];
  for (const g of [...groups.values()].sort((a, b) => (a.zone === b.zone ? a.weight - b.weight : a.zone < b.zone ? -1 : 1))) {
    localities.push(
      create(LocalityLbEndpointsSchema, {
        locality: { zone: g.zone, subZone: `w${g.weight}` },
        lbEndpoints: g.endpoints,
        loadBalancingWeight: Math.max(1, g.weight * g.healthy),
        priority: local && g.zone !== clientZone ? 1 : 0,
      }),
    );
  }
  return pack(ClusterLoadAssignmentSchema, create(ClusterLoadAssignmentSchema, { clusterName: name, endpoints: localities }), TYPE_URLS.endpoints);
}
