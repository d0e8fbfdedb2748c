import { fromBinary } from "@bufbuild/protobuf";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { recordOf, type InstanceRecord, type Status, type OperatorStatus } from "../src/domain/instance.js";
import { silentLogger } from "../src/domain/logger.js";
import { DEFAULT_LIMITS } from "../src/registry/validate.js";
import { Cluster_LbPolicy, ClusterSchema } from "../src/xds/gen/envoy/config/cluster/v3/cluster_pb.js";
import { HealthStatus } from "../src/xds/gen/envoy/config/core/v3/health_check_pb.js";
import { ClusterLoadAssignmentSchema } from "../src/xds/gen/envoy/config/endpoint/v3/endpoint_pb.js";
import { RouteConfigurationSchema } from "../src/xds/gen/envoy/config/route/v3/route_pb.js";
import { MemoryStore } from "../src/store/memory-store.js";
import { XdsCache } from "../src/xds/cache.js";
import { encodeFilterValue, parseXdsName, xdsNameOf } from "../src/xds/names.js";
import { parseConfigPolicy, policyOfMetadata } from "../src/xds/policy.js";
import { clusterOf, loadAssignmentOf, routeOf, TYPE_URLS } from "../src/xds/resources.js";

// The domain mapping of the xDS control plane, in memory: resource names,
// instances to ClusterLoadAssignment (zones, priorities, weights, health),
// and the load-balancing policy.

function record(id: string, over: Partial<InstanceRecord> = {}): InstanceRecord {
  return recordOf(
    { namespace: "default", service: "payments", instanceId: id, host: "10.0.0.1", port: 8080, version: "", zone: "", tags: [], metadata: {}, weight: 100, status: "SERVING", owner: "anonymous", ...over },
    0,
    0,
    1,
    1,
  );
}

describe("resource names", () => {
  const parse = (n: string) => parseXdsName("resource_names[0]", n, DEFAULT_LIMITS);

  it("reads service, namespace and filters", () => {
    expect(parse("payments")).toMatchObject({ name: "payments", namespace: "default", service: "payments", matchAll: true });
    expect(parse("ns/payments")).toMatchObject({ namespace: "ns", service: "payments", matchAll: true });
    expect(parse("payments;version=2.1.0")).toMatchObject({ filter: { version: "2.1.0", tags: [] }, matchAll: false });
    expect(parse("ns/payments;tag=eu;tag=canary")).toMatchObject({ namespace: "ns", filter: { tags: ["canary", "eu"] } });
    expect(parse("payments;version=1%3B0%3Dx%25")).toMatchObject({ filter: { version: "1;0=x%" } });
    expect(xdsNameOf("default", "payments")).toBe("payments");
    expect(xdsNameOf("ns", "payments")).toBe("ns/payments");
  });

  it("refuses what is no Maxine service, naming the field and the rule", () => {
    const bad: [string, string][] = [
      ["", 'resource_names[0] (service): is required'],
      ["/payments", 'resource_names[0] (namespace): must not be empty before "/", got "/payments"'],
      ["a b", 'resource_names[0] (service): must be 1..128 characters of [A-Za-z0-9._-], got "a b"'],
      ["ns/a/b", 'resource_names[0] (service): must be 1..128 characters of [A-Za-z0-9._-], got "a/b"'],
      ["payments;zone=z1", 'resource_names[0]: unknown filter "zone": the filters are version= and tag=, in "payments;zone=z1"'],
      ["payments;version=1;version=2", 'resource_names[0]: version may be given once, in "payments;version=1;version=2"'],
      ["payments;tag", 'resource_names[0]: filter "tag" must be key=value with a value (version=..., tag=...), in "payments;tag"'],
      ["payments;tag=%zz", 'resource_names[0]: filter value "%zz" is not valid percent-encoding (write ; = % as %3B %3D %25)'],
      ["payments" + Array.from({ length: 40 }, (_, i) => `;tag=t${i}`).join(""), "resource_names[0] (filter).tags: at most 32 tags (MAXINE_MAX_TAGS), got 40"],
    ];
    for (const [name, message] of bad) expect(() => parse(name), name).toThrow(message);
  });

  it("property: a filter value written with encodeFilterValue reads back as itself", () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 40, unit: fc.constantFrom("a", "1", ";", "=", "%", ".", "-", "é") }), (v) => {
        expect(parse(`payments;version=${encodeFilterValue(v)}`).filter.version).toBe(v);
      }),
    );
  });
});

describe("ClusterLoadAssignment", () => {
  const decode = (any: { typeUrl: string; value: Uint8Array }) => {
    expect(any.typeUrl).toBe(TYPE_URLS.endpoints);
    return fromBinary(ClusterLoadAssignmentSchema, any.value);
  };

  it("maps status to health: SERVING HEALTHY, DRAINING DRAINING, NOT_SERVING and operator-disabled UNHEALTHY", () => {
    const cla = decode(
      loadAssignmentOf(
        "payments",
        [record("a"), record("b", { status: "DRAINING" }), record("c", { status: "NOT_SERVING" }), record("d", { operatorStatus: "DISABLED" }), record("e", { operatorStatus: "DRAINING" })],
        "",
      ),
    );
    expect(cla.endpoints[0]!.lbEndpoints.map((e) => e.healthStatus)).toEqual([
      HealthStatus.HEALTHY,
      HealthStatus.DRAINING,
      HealthStatus.UNHEALTHY,
      HealthStatus.UNHEALTHY,
      HealthStatus.DRAINING,
    ]);
  });

  const status = fc.constantFrom<Status>("SERVING", "SERVING", "DRAINING", "NOT_SERVING");
  const operator = fc.constantFrom<OperatorStatus>("NONE", "NONE", "NONE", "DRAINING", "DISABLED");
  const instances = fc.uniqueArray(
    fc.record({ id: fc.stringMatching(/^[a-z0-9]{1,6}$/), zone: fc.constantFrom("", "z1", "z2", "z3"), weight: fc.constantFrom(1, 50, 100, 300, 10_000), status, operator }),
    { selector: (i) => i.id, maxLength: 30 },
  );

  it("property: every instance present once (health by status), weights and priorities as docs/xds.md says", () => {
    fc.assert(
      fc.property(instances, fc.constantFrom("", "z1", "z2", "z9"), (specs, clientZone) => {
        const records = specs.map((s, i) => record(s.id, { zone: s.zone, weight: s.weight, status: s.status, operatorStatus: s.operator, host: `10.0.${i >> 8}.${i & 255}` }));
        const cla = decode(loadAssignmentOf("payments", records, clientZone));
        expect(cla.clusterName).toBe("payments");
        const seen: string[] = [];
        const local = clientZone !== "" && records.some((r) => r.zone === clientZone);
        for (const l of cla.endpoints) {
          const zone = l.locality!.zone;
          const members = records.filter((r) => r.zone === zone && `w${r.weight}` === l.locality!.subZone);
          expect(members.length).toBe(l.lbEndpoints.length);
          const healthy = l.lbEndpoints.filter((e) => e.healthStatus === HealthStatus.HEALTHY).length;
          expect(l.loadBalancingWeight).toBe(Math.max(1, members[0]!.weight * healthy));
          expect(l.priority).toBe(local && zone !== clientZone ? 1 : 0);
          for (const e of l.lbEndpoints) {
            const sa = e.hostIdentifier.case === "endpoint" ? e.hostIdentifier.value.address?.address : undefined;
            expect(sa?.case).toBe("socketAddress");
            const addr = sa!.case === "socketAddress" ? sa!.value : undefined;
            const r = records.find((x) => x.host === addr!.address)!;
            seen.push(r.instanceId);
            expect(e.loadBalancingWeight).toBe(r.weight);
            const effective = r.operatorStatus === "DRAINING" ? "DRAINING" : r.operatorStatus === "DISABLED" ? "NOT_SERVING" : r.status;
            expect(e.healthStatus).toBe({ SERVING: HealthStatus.HEALTHY, DRAINING: HealthStatus.DRAINING, NOT_SERVING: HealthStatus.UNHEALTHY }[effective]);
          }
        }
        expect(seen.sort()).toEqual(records.map((r) => r.instanceId).sort());
        // priorities start at 0 with no gap
        const priorities = [...new Set(cla.endpoints.map((l) => l.priority))].sort();
        if (priorities.length > 0) expect(priorities).toEqual(priorities.length === 1 ? [0] : [0, 1]);
      }),
    );
  });
});

describe("load-balancing policy", () => {
  it("reads the configuration's JSON, naming the field and the rule when it is not a policy", () => {
    expect(parseConfigPolicy('{"lbPolicy":"RING_HASH","hashHeader":"x-user-id"}')).toEqual({ policy: "RING_HASH", hashHeader: "x-user-id" });
    expect(parseConfigPolicy('{"lbPolicy":"LEAST_REQUEST","hashHeader":"x"}')).toEqual({ policy: "LEAST_REQUEST", hashHeader: "" });
    expect(() => parseConfigPolicy('{"lbPolicy":"RANDOM"}')).toThrow('configuration key xds.lbPolicy: must be one of ROUND_ROBIN, LEAST_REQUEST, RING_HASH, got "RANDOM"');
    expect(() => parseConfigPolicy('{"lbPolicy":"RING_HASH","hashHeader":"X User"}')).toThrow("configuration key xds.hashHeader: must be a lower-case header name");
    expect(() => parseConfigPolicy("[1]")).toThrow("configuration key xds: must be a JSON object");
    expect(() => parseConfigPolicy("{")).toThrow("configuration key xds: must be JSON");
  });

  it("takes the metadata of the first instance (by id) that names a valid policy", () => {
    const rs = [record("a"), record("b", { metadata: { "xds-lb-policy": "nope" } }), record("c", { metadata: { "xds-lb-policy": "RING_HASH", "xds-hash-header": "x-k" } })];
    expect(policyOfMetadata(rs, silentLogger)).toEqual({ policy: "RING_HASH", hashHeader: "x-k" });
    expect(policyOfMetadata([record("a")], silentLogger)).toBeUndefined();
  });

  it("builds the Cluster and the Route of a policy", () => {
    const ring = { policy: "RING_HASH" as const, hashHeader: "x-user-id" };
    const cluster = fromBinary(ClusterSchema, clusterOf("payments", ring).value);
    expect(cluster.lbPolicy).toBe(Cluster_LbPolicy.RING_HASH);
    expect(cluster.lbConfig.case).toBe("ringHashLbConfig");
    const route = fromBinary(RouteConfigurationSchema, routeOf("payments", ring).value);
    const action = route.virtualHosts[0]!.routes[0]!.action;
    expect(action.case === "route" && action.value.hashPolicy[0]!.policySpecifier).toMatchObject({ case: "header", value: { headerName: "x-user-id" } });
  });
});

describe("XdsCache: each resource built once per change, shared by every stream", () => {
  const spec = (id: string, over: Partial<InstanceRecord> = {}) => ({
    namespace: "default",
    service: "payments",
    instanceId: id,
    host: "10.0.0.1",
    port: 8080,
    version: "",
    zone: "z1",
    tags: [],
    metadata: {},
    weight: 100,
    status: "SERVING" as const,
    owner: "anonymous",
    ...over,
  });

  it("hands every holder the same encoded objects until a change alters their bytes", async () => {
    const store = new MemoryStore();
    const cache = new XdsCache({ store, logger: silentLogger });
    const told: string[] = [];
    const holder = (who: string) => ({ changed: (ns: string, svc: string) => void told.push(`${who}:${ns}/${svc}`), reset: () => void told.push(`${who}:reset`) });
    const [h1, h2, idle, wild] = [holder("h1"), holder("h2"), holder("idle"), holder("wild")];
    for (const h of [h1, h2, idle, wild]) cache.subscribe(h);
    cache.wildcard(wild, true);
    await store.put(spec("a"), 1);
    const name = parseXdsName("n", "payments", DEFAULT_LIMITS);
    const v1 = cache.acquire(name, h1);
    const v2 = cache.acquire(name, h2);
    expect(v2).toBe(v1);
    const cla = v1.resource("endpoints", "z1");
    expect(v2.resource("endpoints", "z1")).toBe(cla);
    const cluster = v1.resource("cluster", "");
    // a client zone no instance is in shares the no-zone CLA
    expect(v1.resource("endpoints", "z9")).toBe(v1.resource("endpoints", ""));
    expect(v1.resource("endpoints", "z1")).not.toBe(v1.resource("endpoints", ""));
    // a change elsewhere: nothing rebuilt; a change here that the resources do not show (metadata): the same objects
    await store.put(spec("o", { service: "orders" }), 2);
    await store.put(spec("a", { metadata: { note: "x" } }), 3);
    // told: the holders of the changed service's views and the wildcard stream, no other
    expect(told).toEqual(["wild:default/payments", "wild:default/orders", "h1:default/payments", "h2:default/payments", "wild:default/payments"]);
    expect(v1.resource("endpoints", "z1")).toBe(cla);
    expect(v1.resource("cluster", "")).toBe(cluster);
    // a change the CLA shows: a new CLA (with a new version), the Cluster unchanged
    await store.put(spec("b", { host: "10.0.0.2" }), 4);
    const cla2 = v1.resource("endpoints", "z1");
    expect(cla2).not.toBe(cla);
    expect(cla2.version).not.toBe(cla.version);
    expect(v2.resource("endpoints", "z1")).toBe(cla2);
    expect(v1.resource("cluster", "")).toBe(cluster);
    // a policy change in the metadata: a new Cluster
    await store.put(spec("a", { metadata: { "xds-lb-policy": "RING_HASH" } }), 5);
    expect(v1.resource("cluster", "")).not.toBe(cluster);
    cache.release(v1, h1);
    told.length = 0;
    await store.put(spec("c", { host: "10.0.0.3" }), 6);
    expect(told).toEqual(["h2:default/payments", "wild:default/payments"]);
    cache.release(v2, h2);
    expect(cache.acquire(name, h1)).not.toBe(v1); // released by every holder: gone
    cache.close();
  });
});
