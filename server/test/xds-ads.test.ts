import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Maxine } from "../src/app.js";
import type { Logger } from "../src/domain/logger.js";
import { instance } from "./support/core.js";
import { startInProcess } from "./support/in-process.js";
import { adsClient, delta, node, sotw, TYPE, type AdsStream } from "./support/ads-client.js";

// StreamAggregatedResources (state of the world) on a real server over real
// HTTP/2, with an independent client: @grpc/grpc-js and the Envoy protos
// loaded at run time from @grpc/grpc-js-xds's deps (protobufjs decodes the
// resources; the server encodes them with protobuf-es).
//
// "Nothing was sent" is proved without sleeping: a stream's responses arrive
// in order, so after the step under test the test makes a change that must
// be pushed (a sentinel) and checks that the next response is that one.

const logs: string[] = [];
const recorder: Logger = (() => {
  const at = (level: string) => (obj: object, msg?: string) => void logs.push(JSON.stringify({ level, ...obj, msg }));
  return { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
})();

const key = (id: string, service = "payments", namespace = "") => ({ namespace, service, instanceId: id });

function endpointsOf(cla: any): { locality: any; weight: number; priority: number; endpoints: { address: string; port: number; health: string; weight: number }[] }[] {
  return (cla.endpoints ?? []).map((l: any) => ({
    locality: l.locality,
    weight: l.loadBalancingWeight?.value,
    priority: l.priority ?? 0,
    endpoints: l.lbEndpoints.map((e: any) => ({
      address: e.endpoint.address.socketAddress.address,
      port: e.endpoint.address.socketAddress.portValue,
      health: e.healthStatus,
      weight: e.loadBalancingWeight?.value,
    })),
  }));
}

function addresses(cla: any): string[] {
  return endpointsOf(cla)
    .flatMap((l) => l.endpoints.map((e) => `${e.address}:${e.port}`))
    .sort();
}

/** processed waits until the server read the request answering nonce (its ACK or NACK log line): what the test does next cannot overtake it. */
async function processed(nonce: string): Promise<void> {
  const end = Date.now() + 5_000;
  while (!logs.some((l) => l.includes(`"nonce":"${nonce}"`) && (l.includes("xds: ACK") || l.includes("NACK")))) {
    if (Date.now() > end) throw new Error(`the server did not read the request answering nonce ${nonce}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** ack acknowledges response r of typeUrl with names and waits until the server read it. */
async function ack(s: AdsStream, typeUrl: string, r: any, resourceNames: string[]): Promise<void> {
  s.send({ typeUrl, resourceNames, versionInfo: r.versionInfo, responseNonce: r.nonce });
  await processed(r.nonce);
}

async function metric(url: string, line: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const m = text.split("\n").find((l) => l.startsWith(line + " "));
  return m === undefined ? 0 : Number(m.slice(line.length + 1));
}

describe("StreamAggregatedResources (SotW) with a raw grpc-js client", () => {
  let server: Maxine & { url: string };
  let client: grpc.Client & Record<string, any>;
  const streams: AdsStream[] = [];
  const open = () => {
    const s = sotw(client);
    streams.push(s);
    return s;
  };

  beforeAll(async () => {
    server = await startInProcess({ MAXINE_XDS_MAX_RESOURCES_PER_STREAM: "5", MAXINE_LOG_LEVEL: "debug" }, { logger: recorder, debugEnabled: () => false });
    client = adsClient(server.port);
  });
  afterEach(async () => {
    for (const s of streams.splice(0)) s.close();
    for (const ns of ["", "ns", "other"]) {
      for (const svc of ["payments", "orders", "empty"]) {
        for (const v of server.registry.store.service(ns === "" ? "default" : ns, svc)?.sorted() ?? []) await server.registry.deregister(key(v.instanceId, svc, ns));
      }
    }
  });
  afterAll(async () => {
    client.close();
    await server.close();
  });

  it("serves the Listener, RouteConfiguration, Cluster and ClusterLoadAssignment of a service, with versions and nonces; an ACK sends nothing", async () => {
    await server.registry.register(instance("a", { host: "10.0.0.1", port: 8080 }), undefined);
    const s = open();
    s.send({ node: node(), typeUrl: TYPE.lds, resourceNames: ["payments"] });
    const lds = await s.nth(TYPE.lds, 0);
    expect(lds.versionInfo).toBe(String(server.registry.store.revision()));
    expect(lds.nonce).not.toBe("");
    const listener = lds.resources[0];
    expect(listener["@type"]).toBe(TYPE.lds);
    expect(listener.name).toBe("payments");
    const hcm = listener.apiListener.apiListener;
    expect(hcm["@type"]).toBe("type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager");
    expect(hcm.rds).toMatchObject({ routeConfigName: "payments", configSource: { ads: {}, resourceApiVersion: "V3" } });
    expect(hcm.httpFilters.map((f: any) => f.typedConfig["@type"])).toEqual(["type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"]);
    await ack(s, TYPE.lds, lds, ["payments"]);

    s.send({ typeUrl: TYPE.rds, resourceNames: ["payments"] });
    const rds = await s.nth(TYPE.rds, 0);
    expect(rds.resources[0]).toMatchObject({ name: "payments", virtualHosts: [{ domains: ["*"], routes: [{ match: { prefix: "" }, route: { cluster: "payments" } }] }] });
    await ack(s, TYPE.rds, rds, ["payments"]);

    s.send({ typeUrl: TYPE.cds, resourceNames: ["payments"] });
    const cds = await s.nth(TYPE.cds, 0);
    expect(cds.resources[0]).toMatchObject({ name: "payments", type: "EDS", edsClusterConfig: { serviceName: "payments", edsConfig: { ads: {} } } });
    expect(cds.resources[0].lbPolicy ?? "ROUND_ROBIN").toBe("ROUND_ROBIN");
    // the endpoints are gRPC servers: Envoy is told to speak HTTP/2 to them
    expect(cds.resources[0].typedExtensionProtocolOptions["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]).toMatchObject({ explicitHttpConfig: { http2ProtocolOptions: {} } });
    await ack(s, TYPE.cds, cds, ["payments"]);

    s.send({ typeUrl: TYPE.eds, resourceNames: ["payments"] });
    const eds = await s.nth(TYPE.eds, 0);
    expect(eds.resources[0].clusterName).toBe("payments");
    expect(addresses(eds.resources[0])).toEqual(["10.0.0.1:8080"]);
    await ack(s, TYPE.eds, eds, ["payments"]);
    // nonces are unique on the stream
    expect(new Set([lds.nonce, rds.nonce, cds.nonce, eds.nonce]).size).toBe(4);

    // sentinel: a new instance pushes the CLA, and it is the next response: the ACKs sent nothing, LDS/RDS/CDS did not change
    await server.registry.register(instance("b", { host: "10.0.0.2", port: 8080 }), undefined);
    const eds2 = await s.nth(TYPE.eds, 1);
    expect(s.messages.length).toBe(5);
    expect(addresses(eds2.resources[0])).toEqual(["10.0.0.1:8080", "10.0.0.2:8080"]);
    expect(Number(eds2.versionInfo)).toBeGreaterThan(Number(eds.versionInfo));
    expect(eds2.nonce).not.toBe(eds.nonce);
  });

  it("pushes within 1 s of a Register, a drain, a deregister and a session's death", async () => {
    await server.registry.register(instance("a", { host: "10.0.0.1" }), undefined);
    const s = open();
    s.send({ node: node(), typeUrl: TYPE.eds, resourceNames: ["payments"] });
    await s.nth(TYPE.eds, 0);
    const timed = async (n: number, act: () => Promise<unknown>) => {
      const t0 = performance.now();
      await act();
      const r = await s.nth(TYPE.eds, n, 1_000);
      return { r, ms: performance.now() - t0 };
    };
    const reg = await timed(1, () => server.registry.register(instance("b", { host: "10.0.0.2" }), undefined));
    expect(addresses(reg.r.resources[0])).toEqual(["10.0.0.1:8080", "10.0.0.2:8080"]);
    const drain = await timed(2, () => server.registry.setOperatorStatus(key("b"), "DRAINING"));
    expect(endpointsOf(drain.r.resources[0])[0]!.endpoints.map((e) => e.health)).toEqual(["HEALTHY", "DRAINING"]);
    const dereg = await timed(3, () => server.registry.deregister(key("b")));
    expect(addresses(dereg.r.resources[0])).toEqual(["10.0.0.1:8080"]);
    // a session (heartbeat stream) that dies: its instance goes after the grace (0 here), and the CLA follows
    const hb = server.registry.openStream();
    await server.registry.heartbeat(hb, [{ key: key("c"), status: "SERVING", load: undefined, register: { instance: instance("c", { host: "10.0.0.3" }), ttlMs: undefined } }]);
    expect(addresses((await s.nth(TYPE.eds, 4, 1_000)).resources[0])).toContain("10.0.0.3:8080");
    const death = await timed(5, async () => server.registry.closeStream(hb, 0));
    expect(addresses(death.r.resources[0])).toEqual(["10.0.0.1:8080"]);
    for (const t of [reg, drain, dereg, death]) expect(t.ms).toBeLessThan(1_000);
  });

  it("a NACK is logged and counted, the last good config stands, and nothing is resent until the next change", async () => {
    await server.registry.register(instance("a"), undefined);
    const before = await metric(server.url, 'maxine_xds_nacks_total{type="eds"}');
    const pushesBefore = await metric(server.url, 'maxine_xds_pushes_total{type="eds"}');
    const s = open();
    s.send({ node: node(), typeUrl: TYPE.eds, resourceNames: ["payments"] });
    const first = await s.nth(TYPE.eds, 0);
    s.send({ typeUrl: TYPE.eds, resourceNames: ["payments"], versionInfo: "", responseNonce: first.nonce, errorDetail: { code: 3, message: "endpoint 10.0.0.1 rejected by test" } });
    await processed(first.nonce);
    await server.registry.register(instance("b", { host: "10.0.0.2" }), undefined); // the sentinel
    const next = await s.nth(TYPE.eds, 1);
    expect(s.messages.length).toBe(2);
    expect(addresses(next.resources[0])).toEqual(["10.0.0.1:8080", "10.0.0.2:8080"]);
    expect(await metric(server.url, 'maxine_xds_nacks_total{type="eds"}')).toBe(before + 1);
    expect(await metric(server.url, 'maxine_xds_pushes_total{type="eds"}')).toBe(pushesBefore + 2);
    const nack = logs.map((l) => JSON.parse(l)).find((l) => l.level === "warn" && l.error === "endpoint 10.0.0.1 rejected by test");
    expect(nack).toMatchObject({ type: "endpoints", nonce: first.nonce, stale: false, msg: expect.stringContaining("NACK") });
  });

  it("a client repeating NACKs is counted and warned once per response (no log flood); the next response's NACK counts again", async () => {
    await server.registry.register(instance("a"), undefined);
    const before = await metric(server.url, 'maxine_xds_nacks_total{type="eds"}');
    const s = open();
    s.send({ node: node(), typeUrl: TYPE.eds, resourceNames: ["payments"] });
    const first = await s.nth(TYPE.eds, 0);
    const nack = (nonce: string, message: string) =>
      s.send({ typeUrl: TYPE.eds, resourceNames: ["payments"], versionInfo: "", responseNonce: nonce, errorDetail: { code: 3, message } });
    for (let i = 0; i < 50; i++) nack(first.nonce, "repeated rejection");
    nack("made-up-nonce", "repeated rejection");
    // requests are read in order: once the last one is logged, every NACK above was read
    await processed("made-up-nonce");
    await server.registry.register(instance("b", { host: "10.0.0.2" }), undefined);
    const next = await s.nth(TYPE.eds, 1);
    expect(await metric(server.url, 'maxine_xds_nacks_total{type="eds"}')).toBe(before + 1);
    const warned = () => logs.map((l) => JSON.parse(l)).filter((l) => l.level === "warn" && l.error === "repeated rejection").length;
    expect(warned()).toBe(1);
    nack(next.nonce, "repeated rejection");
    await processed(next.nonce);
    expect(await metric(server.url, 'maxine_xds_nacks_total{type="eds"}')).toBe(before + 2);
    expect(warned()).toBe(2);
  });

  it("subscribes and unsubscribes by name; a resource is sent again only when it changed or is subscribed again", async () => {
    await server.registry.register(instance("a", { host: "10.0.0.1" }), undefined);
    await server.registry.register(instance("o", { service: "orders", host: "10.0.1.1" }), undefined);
    const s = open();
    s.send({ node: node(), typeUrl: TYPE.eds, resourceNames: ["payments"] });
    const r0 = await s.nth(TYPE.eds, 0);
    expect(r0.resources.map((r: any) => r.clusterName)).toEqual(["payments"]);
    s.send({ typeUrl: TYPE.eds, resourceNames: ["payments", "orders"], responseNonce: r0.nonce, versionInfo: r0.versionInfo });
    const r1 = await s.nth(TYPE.eds, 1);
    expect(r1.resources.map((r: any) => r.clusterName).sort()).toEqual(["orders", "payments"]);
    // unsubscribe payments: nothing to send; a change to payments is not pushed, one to orders is
    await ack(s, TYPE.eds, r1, ["orders"]);
    await server.registry.register(instance("b", { host: "10.0.0.2" }), undefined);
    await server.registry.register(instance("o2", { service: "orders", host: "10.0.1.2" }), undefined);
    const r2 = await s.nth(TYPE.eds, 2);
    expect(s.messages.length).toBe(3);
    expect(r2.resources.map((r: any) => r.clusterName)).toEqual(["orders"]);
    expect(addresses(r2.resources[0])).toEqual(["10.0.1.1:8080", "10.0.1.2:8080"]);
    // subscribing again sends it again, current
    s.send({ typeUrl: TYPE.eds, resourceNames: ["orders", "payments"], responseNonce: r2.nonce, versionInfo: r2.versionInfo });
    const r3 = await s.nth(TYPE.eds, 3);
    expect(addresses(r3.resources.find((r: any) => r.clusterName === "payments"))).toEqual(["10.0.0.1:8080", "10.0.0.2:8080"]);
  });

  it("wildcard LDS and CDS list every service with instances; services appear and go", async () => {
    await server.registry.register(instance("a"), undefined);
    await server.registry.register(instance("x", { namespace: "ns", service: "orders" }), undefined);
    const s = open();
    s.send({ node: node(), typeUrl: TYPE.lds, resourceNames: [] });
    s.send({ typeUrl: TYPE.cds, resourceNames: ["*"] });
    const l0 = await s.nth(TYPE.lds, 0);
    const c0 = await s.nth(TYPE.cds, 0);
    expect(l0.resources.map((r: any) => r.name).sort()).toEqual(["ns/orders", "payments"]);
    expect(c0.resources.map((r: any) => r.name).sort()).toEqual(["ns/orders", "payments"]);
    s.send({ typeUrl: TYPE.lds, resourceNames: [], responseNonce: l0.nonce, versionInfo: l0.versionInfo });
    // a new service appears
    await server.registry.register(instance("o", { service: "orders" }), undefined);
    const l1 = await s.nth(TYPE.lds, 1);
    expect(l1.resources.map((r: any) => r.name).sort()).toEqual(["ns/orders", "orders", "payments"]);
    // a service loses its last instance: it leaves the wildcard answer
    await server.registry.deregister(key("x", "orders", "ns"));
    const l2 = await s.nth(TYPE.lds, 2);
    expect(l2.resources.map((r: any) => r.name).sort()).toEqual(["orders", "payments"]);
  });

  it("a named subscription to a service with no instances yet gets an empty CLA, filled when one registers", async () => {
    const s = open();
    s.send({ node: node(), typeUrl: TYPE.lds, resourceNames: ["empty"] });
    s.send({ typeUrl: TYPE.eds, resourceNames: ["empty"] });
    expect((await s.nth(TYPE.lds, 0)).resources.map((r: any) => r.name)).toEqual(["empty"]);
    const e0 = await s.nth(TYPE.eds, 0);
    expect(e0.resources).toHaveLength(1);
    expect(e0.resources[0].endpoints ?? []).toEqual([]);
    await server.registry.register(instance("e", { service: "empty", host: "10.9.9.9" }), undefined);
    expect(addresses((await s.nth(TYPE.eds, 1)).resources[0])).toEqual(["10.9.9.9:8080"]);
  });

  it("zone preference: the client's zone has priority 0 and the others 1; no client zone, or none of its zone, all 0", async () => {
    await server.registry.register(instance("a", { zone: "z1", host: "10.0.0.1" }), undefined);
    await server.registry.register(instance("b", { zone: "z2", host: "10.0.0.2" }), undefined);
    const cla = async (zone: string | undefined) => {
      const s = open();
      s.send({ node: node(zone), typeUrl: TYPE.eds, resourceNames: ["payments"] });
      return endpointsOf((await s.nth(TYPE.eds, 0)).resources[0]).map((l) => `${l.locality.zone}:${l.priority}`);
    };
    expect(await cla("z1")).toEqual(["z1:0", "z2:1"]);
    expect(await cla("z2")).toEqual(["z1:1", "z2:0"]);
    expect(await cla(undefined)).toEqual(["z1:0", "z2:0"]);
    expect(await cla("z9")).toEqual(["z1:0", "z2:0"]);
  });

  it("weights: a zone's endpoints are grouped by weight into sub-localities weighted weight x healthy endpoints; health follows the status", async () => {
    await server.registry.register(instance("a", { zone: "z1", weight: 100, host: "10.0.0.1" }), undefined);
    await server.registry.register(instance("b", { zone: "z1", weight: 100, host: "10.0.0.2" }), undefined);
    await server.registry.register(instance("c", { zone: "z1", weight: 300, host: "10.0.0.3" }), undefined);
    await server.registry.register(instance("d", { zone: "z1", weight: 300, host: "10.0.0.4", status: "NOT_SERVING" }), undefined);
    const s = open();
    s.send({ node: node("z1"), typeUrl: TYPE.eds, resourceNames: ["payments"] });
    const ls = endpointsOf((await s.nth(TYPE.eds, 0)).resources[0]);
    expect(ls.map((l) => ({ sub: l.locality.subZone, weight: l.weight }))).toEqual([
      { sub: "w100", weight: 200 },
      { sub: "w300", weight: 300 },
    ]);
    expect(ls[1]!.endpoints).toEqual([
      { address: "10.0.0.3", port: 8080, health: "HEALTHY", weight: 300 },
      { address: "10.0.0.4", port: 8080, health: "UNHEALTHY", weight: 300 },
    ]);
    // the last healthy one of a sub-locality drained: weight 1 (never 0, which clients read as "absent")
    await server.registry.setOperatorStatus(key("c"), "DRAINING");
    const after = endpointsOf((await s.nth(TYPE.eds, 1)).resources[0]);
    expect(after.map((l) => l.weight)).toEqual([200, 1]);
    expect(after[1]!.endpoints.map((e) => e.health)).toEqual(["DRAINING", "UNHEALTHY"]);
  });

  it("filtered views: ;version= and ;tag= name their own Listener, Route, Cluster and CLA", async () => {
    await server.registry.register(instance("a", { version: "2.1.0", tags: ["canary", "eu"], host: "10.0.0.1" }), undefined);
    await server.registry.register(instance("b", { version: "2.1.0", tags: ["eu"], host: "10.0.0.2" }), undefined);
    await server.registry.register(instance("c", { version: "1;0", tags: ["canary", "eu"], host: "10.0.0.3" }), undefined);
    const s = open();
    const names = ["payments;version=2.1.0", "payments;tag=canary;tag=eu", "payments;version=1%3B0"];
    s.send({ node: node(), typeUrl: TYPE.eds, resourceNames: names });
    s.send({ typeUrl: TYPE.rds, resourceNames: [names[0]] });
    s.send({ typeUrl: TYPE.cds, resourceNames: [names[0]] });
    const eds = await s.nth(TYPE.eds, 0);
    const by = new Map<string, any>(eds.resources.map((r: any) => [r.clusterName, r]));
    expect(addresses(by.get(names[0]))).toEqual(["10.0.0.1:8080", "10.0.0.2:8080"]);
    expect(addresses(by.get(names[1]))).toEqual(["10.0.0.1:8080", "10.0.0.3:8080"]);
    expect(addresses(by.get(names[2]))).toEqual(["10.0.0.3:8080"]);
    expect((await s.nth(TYPE.rds, 0)).resources[0].virtualHosts[0].routes[0].route.cluster).toBe(names[0]);
    expect((await s.nth(TYPE.cds, 0)).resources[0].edsClusterConfig.serviceName).toBe(names[0]);
    // an instance that stops matching leaves the filtered view only
    await server.registry.register(instance("b", { version: "2.2.0", tags: ["eu"], host: "10.0.0.2" }), undefined);
    const next = new Map<string, any>((await s.nth(TYPE.eds, 1)).resources.map((r: any) => [r.clusterName, r]));
    expect(addresses(next.get(names[0]))).toEqual(["10.0.0.1:8080"]);
  });

  it("a name that is no Maxine service does not exist (logged with the field and the rule); the stream stays open", async () => {
    await server.registry.register(instance("a"), undefined);
    const s = open();
    s.send({ node: node(), typeUrl: TYPE.lds, resourceNames: ["bad name!", "payments;colour=red", "payments"] });
    const l0 = await s.nth(TYPE.lds, 0);
    expect(l0.resources.map((r: any) => r.name)).toEqual(["payments"]);
    const bad = () => logs.map((l) => JSON.parse(l)).filter((l) => l.type === "listener" && l.err !== undefined);
    // the first at warn, the next at debug (one warn per stream and type: a client cannot flood the log at warn)
    expect(bad().map((l) => [l.level, l.err])).toEqual([
      ["warn", 'resource_names[0] (service): must be 1..128 characters of [A-Za-z0-9._-], got "bad name!"'],
      ["debug", 'resource_names[1]: unknown filter "colour": the filters are version= and tag=, in "payments;colour=red"'],
    ]);
    s.send({ typeUrl: TYPE.eds, resourceNames: ["payments"] });
    expect(addresses((await s.nth(TYPE.eds, 0)).resources[0])).toEqual(["10.0.0.1:8080"]);
    // 3 more requests naming 3 new bad names each (the test server allows 5 names a stream): all at debug, none at warn
    for (let r = 0; r < 3; r++) s.send({ typeUrl: TYPE.lds, resourceNames: [`bad ${r}a`, `bad ${r}b`, `bad ${r}c`, "payments"] });
    const end = Date.now() + 5_000;
    while (bad().length < 11) {
      if (Date.now() > end) throw new Error(`the 9 more bad names were not logged: ${JSON.stringify(bad())}`);
      await new Promise((r) => setTimeout(r, 5));
    }
    expect(bad().filter((l) => l.level === "warn")).toHaveLength(1);
    expect(bad().filter((l) => l.level === "debug")).toHaveLength(10);
  });

  it(`a stream may subscribe to at most MAXINE_XDS_MAX_RESOURCES_PER_STREAM names over its types: RESOURCE_EXHAUSTED naming the setting`, async () => {
    const s = open();
    s.send({ node: node(), typeUrl: TYPE.lds, resourceNames: ["a1", "a2", "a3"] });
    await s.nth(TYPE.lds, 0);
    s.send({ typeUrl: TYPE.eds, resourceNames: ["a1", "a2", "a3"] });
    await s.closed();
    expect(s.error?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(s.error?.details).toBe("resource_names: a stream may subscribe to at most 5 resources over its four types (MAXINE_XDS_MAX_RESOURCES_PER_STREAM)");
  });

  it("reads the load-balancing policy from the service's configuration (key xds), else from instance metadata", async () => {
    await server.registry.register(instance("a", { metadata: { "xds-lb-policy": "LEAST_REQUEST" } }), undefined);
    const s = open();
    s.send({ node: node(), typeUrl: TYPE.cds, resourceNames: ["payments"] });
    s.send({ typeUrl: TYPE.rds, resourceNames: ["payments"] });
    expect((await s.nth(TYPE.cds, 0)).resources[0].lbPolicy).toBe("LEAST_REQUEST");
    const r0 = await s.nth(TYPE.rds, 0);
    expect(r0.resources[0].virtualHosts[0].routes[0].route.hashPolicy ?? []).toEqual([]);
    const res = await fetch(`${server.url}/maxine.config.v1.ConfigService/Put`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ service: "payments", key: "xds", value: Buffer.from('{"lbPolicy":"RING_HASH","hashHeader":"x-user-id"}').toString("base64"), contentType: "application/json" }),
    });
    expect(res.status).toBe(200);
    const c1 = await s.nth(TYPE.cds, 1);
    expect(c1.resources[0]).toMatchObject({ lbPolicy: "RING_HASH", ringHashLbConfig: {} });
    const r1 = await s.nth(TYPE.rds, 1);
    expect(r1.resources[0].virtualHosts[0].routes[0].route.hashPolicy).toEqual([{ header: { headerName: "x-user-id" }, policySpecifier: "header" }]);
    await fetch(`${server.url}/maxine.config.v1.ConfigService/Delete`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ service: "payments", key: "xds" }) });
    expect((await s.nth(TYPE.cds, 2)).resources[0].lbPolicy).toBe("LEAST_REQUEST");
  });
});

describe("xDS stream lifecycle", () => {
  it("streams go through the per-method metrics, release what they held when they end, and end with UNAVAILABLE on shutdown", async () => {
    const server = await startInProcess({ MAXINE_MAX_WATCHERS_PER_CONNECTION: "2" });
    const client = adsClient(server.port);
    try {
      await server.registry.register(instance("a"), undefined);
      const a = sotw(client);
      a.send({ node: node(), typeUrl: TYPE.eds, resourceNames: ["payments"] });
      await a.nth(TYPE.eds, 0);
      const b = sotw(client);
      b.send({ node: node(), typeUrl: TYPE.lds, resourceNames: [] });
      await b.nth(TYPE.lds, 0);
      expect(await metric(server.url, "maxine_xds_streams")).toBe(2);
      // an xDS stream takes a watch slot of its connection (MAXINE_MAX_WATCHERS_PER_CONNECTION): the third is refused
      const c = sotw(client);
      c.send({ node: node(), typeUrl: TYPE.lds, resourceNames: [] });
      await c.closed();
      expect(c.error?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
      expect(c.error?.details).toContain("MAXINE_MAX_WATCHERS_PER_CONNECTION");
      // a client that ends its stream frees its slot
      a.close();
      const t0 = Date.now();
      while ((await metric(server.url, "maxine_xds_streams")) !== 1) {
        if (Date.now() - t0 > 5_000) throw new Error("the cancelled stream was not released");
        await new Promise((r) => setTimeout(r, 10));
      }
      const d = sotw(client);
      d.send({ node: node(), typeUrl: TYPE.eds, resourceNames: ["payments"] });
      await d.nth(TYPE.eds, 0);
      const text = await (await fetch(`${server.url}/metrics`)).text();
      expect(text).toMatch(/^maxine_rpc_requests_total\{method="StreamAggregatedResources",protocol="grpc",code="resource_exhausted"\} 1$/m);
      // shutdown ends every open stream with UNAVAILABLE: clients reconnect elsewhere
      await server.close();
      await Promise.all([b.closed(), d.closed()]);
      expect([b.error?.code, d.error?.code]).toEqual([grpc.status.UNAVAILABLE, grpc.status.UNAVAILABLE]);
    } finally {
      client.close();
      await server.close();
    }
  });
});

describe("an xDS client that does not read", () => {
  it("gets nothing more queued while it does not read, then the current state once it reads again", async () => {
    const server = await startInProcess();
    const client = adsClient(server.port);
    try {
      for (let i = 0; i < 200; i++) await server.registry.register(instance(`i${String(i).padStart(3, "0")}`, { host: `10.0.${i >> 8}.${i & 255}` }), undefined);
      const s = sotw(client);
      s.send({ node: node(), typeUrl: TYPE.eds, resourceNames: ["payments"] });
      await s.nth(TYPE.eds, 0);
      s.call.pause();
      // 300 changes, each in a turn of its own (a reading client would get one response each: see the control below),
      // each a whole CLA of 200 endpoints (about 8 KB)
      for (let i = 0; i < 300; i++) {
        await server.registry.setOperatorStatus(key("i000"), i % 2 === 0 ? "DRAINING" : "NONE");
        await new Promise((r) => setImmediate(r));
      }
      await server.registry.setOperatorStatus(key("i001"), "DRAINING");
      s.call.resume();
      const last = await s.waitFor((ms) => {
        const cla = ms.at(-1)?.resources[0];
        return cla !== undefined && endpointsOf(cla)[0]!.endpoints[1]!.health === "DRAINING";
      });
      // without backpressure all 301 would have been queued; flow control holds a few, then one current response
      expect(last.length).toBeLessThan(60);
      expect(endpointsOf(last.at(-1).resources[0])[0]!.endpoints.slice(0, 2).map((e) => e.health)).toEqual(["HEALTHY", "DRAINING"]);
      s.close();
      // the control: a client that reads gets a response per change made in a turn of its own
      const reader = sotw(client);
      reader.send({ node: node(), typeUrl: TYPE.eds, resourceNames: ["payments"] });
      await reader.nth(TYPE.eds, 0);
      for (let i = 0; i < 20; i++) {
        await server.registry.setOperatorStatus(key("i002"), i % 2 === 0 ? "DRAINING" : "NONE");
        await new Promise((r) => setImmediate(r));
      }
      await reader.nth(TYPE.eds, 20);
      reader.close();
    } finally {
      client.close();
      await server.close();
    }
  });
});

describe("xDS responses over MAXINE_MAX_RESPONSE_BYTES", () => {
  it("end the stream with RESOURCE_EXHAUSTED naming the setting", async () => {
    const server = await startInProcess({ MAXINE_MAX_RESPONSE_BYTES: "1024" });
    const client = adsClient(server.port);
    try {
      for (let i = 0; i < 40; i++) await server.registry.register(instance(`i${i}`, { host: `10.0.0.${i}` }), undefined);
      const s = sotw(client);
      s.send({ node: node(), typeUrl: TYPE.eds, resourceNames: ["payments"] });
      await s.closed();
      expect(s.error?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
      expect(s.error?.details).toMatch(/^response: a message of \d+ bytes exceeds the limit of 1024 bytes \(MAXINE_MAX_RESPONSE_BYTES\)$/);
    } finally {
      client.close();
      await server.close();
    }
  });
});

describe("xDS authorization", () => {
  const dir = mkdtempSync(join(tmpdir(), "maxine-xds-auth-"));
  const sha = (t: string) => createHash("sha256").update(t).digest("hex");
  const TOKENS = { prod: "tok-xds-prod-reader-1a2b", admin: "tok-xds-admin-3c4d" };
  let server: Maxine & { url: string };
  let client: grpc.Client & Record<string, any>;
  const bearer = (t: string) => {
    const md = new grpc.Metadata();
    md.set("authorization", `Bearer ${t}`);
    return md;
  };
  beforeAll(async () => {
    writeFileSync(join(dir, "tokens"), `prod-reader sha256:${sha(TOKENS.prod)} prod-reader\nroot sha256:${sha(TOKENS.admin)} admin\n`);
    writeFileSync(
      join(dir, "policy.yaml"),
      `roles:
  prod-reader:
    - { permissions: [read], namespaces: [prod], services: ["*"] }
  admin:
    - { permissions: [admin], namespaces: ["*"], services: ["*"] }
`,
    );
    server = await startInProcess({ MAXINE_AUTH_TOKENS_FILE: join(dir, "tokens"), MAXINE_AUTH_POLICY_FILE: join(dir, "policy.yaml") });
    client = adsClient(server.port);
    await server.registry.register(instance("p", { namespace: "prod", host: "10.1.0.1" }), undefined);
    await server.registry.register(instance("s", { namespace: "staging", host: "10.2.0.1" }), undefined);
  });
  afterAll(async () => {
    client.close();
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("no credential: UNAUTHENTICATED, through the same interceptor chain as every RPC", async () => {
    const s = sotw(client);
    s.send({ node: node(), typeUrl: TYPE.lds, resourceNames: [] });
    await s.closed();
    expect(s.error?.code).toBe(grpc.status.UNAUTHENTICATED);
  });

  it("a reader of one namespace gets nothing of another: not by name, not by wildcard", async () => {
    const s = sotw(client, bearer(TOKENS.prod));
    s.send({ node: node(), typeUrl: TYPE.lds, resourceNames: [] });
    expect((await s.nth(TYPE.lds, 0)).resources.map((r: any) => r.name)).toEqual(["prod/payments"]);
    s.send({ typeUrl: TYPE.eds, resourceNames: ["prod/payments", "staging/payments"] });
    const eds = await s.nth(TYPE.eds, 0);
    expect(eds.resources.map((r: any) => r.clusterName)).toEqual(["prod/payments"]);
    expect(addresses(eds.resources[0])).toEqual(["10.1.0.1:8080"]);
    s.close();
    const admin = sotw(client, bearer(TOKENS.admin));
    admin.send({ node: node(), typeUrl: TYPE.lds, resourceNames: [] });
    expect((await admin.nth(TYPE.lds, 0)).resources.map((r: any) => r.name).sort()).toEqual(["prod/payments", "staging/payments"]);
    admin.close();
  });

  it("Delta: a resource of a namespace the caller may not read does not exist (removed_resources)", async () => {
    const s = delta(client, bearer(TOKENS.prod));
    s.send({ node: node(), typeUrl: TYPE.eds, resourceNamesSubscribe: ["prod/payments", "staging/payments"] });
    const r0 = await s.nth(TYPE.eds, 0);
    expect(r0.resources.map((r: any) => r.name)).toEqual(["prod/payments"]);
    expect(r0.removedResources).toEqual(["staging/payments"]);
    s.close();
  });

  it("a policy reload ends open xDS streams (UNAVAILABLE): clients reconnect under the new policy", async () => {
    const s = sotw(client, bearer(TOKENS.prod));
    s.send({ node: node(), typeUrl: TYPE.lds, resourceNames: [] });
    await s.nth(TYPE.lds, 0);
    writeFileSync(
      join(dir, "policy.yaml"),
      `roles:
  prod-reader:
    - { permissions: [read], namespaces: [prod, staging], services: ["*"] }
  admin:
    - { permissions: [admin], namespaces: ["*"], services: ["*"] }
`,
    );
    expect(await server.reloadAuth()).toBe(true);
    await s.closed();
    expect(s.error?.code).toBe(grpc.status.UNAVAILABLE);
    const again = sotw(client, bearer(TOKENS.prod));
    again.send({ node: node(), typeUrl: TYPE.lds, resourceNames: [] });
    expect((await again.nth(TYPE.lds, 0)).resources.map((r: any) => r.name).sort()).toEqual(["prod/payments", "staging/payments"]);
    again.close();
  });
});
