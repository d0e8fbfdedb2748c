import * as grpc from "@grpc/grpc-js";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Maxine } from "../src/app.js";
import type { Logger } from "../src/domain/logger.js";
import { instance } from "./support/core.js";
import { startInProcess } from "./support/in-process.js";
import { adsClient, delta, node, TYPE, type AdsStream } from "./support/ads-client.js";

// DeltaAggregatedResources (incremental xDS) on a real server over real
// HTTP/2 with the independent grpc-js client. "Nothing was sent" is proved
// with a sentinel change whose response must come next (streams are ordered).

const logs: string[] = [];
const recorder: Logger = (() => {
  const at = (level: string) => (obj: object, msg?: string) => void logs.push(JSON.stringify({ level, ...obj, msg }));
  return { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
})();

const key = (id: string, service = "payments", namespace = "") => ({ namespace, service, instanceId: id });

async function processed(nonce: string): Promise<void> {
  const end = Date.now() + 5_000;
  while (!logs.some((l) => l.includes(`"nonce":"${nonce}"`) && (l.includes("xds: ACK") || l.includes("NACK")))) {
    if (Date.now() > end) throw new Error(`the server did not read the request answering nonce ${nonce}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function names(r: any): string[] {
  return (r.resources ?? []).map((x: any) => x.name).sort();
}

function addresses(cla: any): string[] {
  return (cla.endpoints ?? []).flatMap((l: any) => l.lbEndpoints.map((e: any) => e.endpoint.address.socketAddress.address)).sort();
}

describe("DeltaAggregatedResources with a raw grpc-js client", () => {
  let server: Maxine & { url: string };
  let client: grpc.Client & Record<string, any>;
  const streams: AdsStream[] = [];
  const open = () => {
    const s = delta(client);
    streams.push(s);
    return s;
  };

  beforeAll(async () => {
    server = await startInProcess({ MAXINE_XDS_MAX_RESOURCES_PER_STREAM: "4" }, { logger: recorder });
    client = adsClient(server.port);
  });
  afterEach(async () => {
    for (const s of streams.splice(0)) s.close();
    for (const svc of ["payments", "orders"]) for (const v of server.registry.store.service("default", svc)?.sorted() ?? []) await server.registry.deregister(key(v.instanceId, svc));
  });
  afterAll(async () => {
    client.close();
    await server.close();
  });

  it("sends subscribed resources with per-resource versions, then only what changed; ACK sends nothing", async () => {
    await server.registry.register(instance("a", { host: "10.0.0.1" }), undefined);
    await server.registry.register(instance("o", { service: "orders", host: "10.0.1.1" }), undefined);
    const s = open();
    s.send({ node: node(), typeUrl: TYPE.eds, resourceNamesSubscribe: ["payments", "orders"] });
    const r0 = await s.nth(TYPE.eds, 0);
    expect(names(r0)).toEqual(["orders", "payments"]);
    for (const r of r0.resources) expect(r.version).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(r0.systemVersionInfo).toBe(String(server.registry.store.revision()));
    s.send({ typeUrl: TYPE.eds, responseNonce: r0.nonce });
    await processed(r0.nonce);
    // a change to payments sends payments only, with a new version
    await server.registry.register(instance("b", { host: "10.0.0.2" }), undefined);
    const r1 = await s.nth(TYPE.eds, 1);
    expect(s.messages.length).toBe(2);
    expect(names(r1)).toEqual(["payments"]);
    expect(addresses(r1.resources[0].resource)).toEqual(["10.0.0.1", "10.0.0.2"]);
    expect(r1.resources[0].version).not.toBe(r0.resources.find((r: any) => r.name === "payments").version);
    expect(r1.removedResources ?? []).toEqual([]);
  });

  it("unsubscribing stops pushes; subscribing again sends the resource again", async () => {
    await server.registry.register(instance("a", { host: "10.0.0.1" }), undefined);
    await server.registry.register(instance("o", { service: "orders", host: "10.0.1.1" }), undefined);
    const s = open();
    s.send({ node: node(), typeUrl: TYPE.eds, resourceNamesSubscribe: ["payments", "orders"] });
    const r0 = await s.nth(TYPE.eds, 0);
    s.send({ typeUrl: TYPE.eds, responseNonce: r0.nonce, resourceNamesUnsubscribe: ["payments"] });
    await processed(r0.nonce);
    await server.registry.register(instance("b", { host: "10.0.0.2" }), undefined);
    await server.registry.register(instance("o2", { service: "orders", host: "10.0.1.2" }), undefined);
    const r1 = await s.nth(TYPE.eds, 1);
    expect(s.messages.length).toBe(2);
    expect(names(r1)).toEqual(["orders"]);
    s.send({ typeUrl: TYPE.eds, responseNonce: r1.nonce, resourceNamesSubscribe: ["payments"] });
    const r2 = await s.nth(TYPE.eds, 2);
    expect(names(r2)).toEqual(["payments"]);
    expect(addresses(r2.resources[0].resource)).toEqual(["10.0.0.1", "10.0.0.2"]);
  });

  it("wildcard *: every service with instances; one that loses its last instance is in removed_resources", async () => {
    await server.registry.register(instance("a"), undefined);
    const s = open();
    s.send({ node: node(), typeUrl: TYPE.cds, resourceNamesSubscribe: ["*"] });
    expect(names(await s.nth(TYPE.cds, 0))).toEqual(["payments"]);
    await server.registry.register(instance("o", { service: "orders" }), undefined);
    const r1 = await s.nth(TYPE.cds, 1);
    expect(names(r1)).toEqual(["orders"]);
    await server.registry.deregister(key("o", "orders"));
    const r2 = await s.nth(TYPE.cds, 2);
    expect(r2.resources ?? []).toEqual([]);
    expect(r2.removedResources).toEqual(["orders"]);
  });

  it("a first LDS request that names nothing is the wildcard too", async () => {
    await server.registry.register(instance("a"), undefined);
    const s = open();
    s.send({ node: node(), typeUrl: TYPE.lds });
    expect(names(await s.nth(TYPE.lds, 0))).toEqual(["payments"]);
  });

  it("on reconnect, initial_resource_versions: only what differs is sent, and what is gone is removed", async () => {
    await server.registry.register(instance("a", { host: "10.0.0.1" }), undefined);
    await server.registry.register(instance("o", { service: "orders", host: "10.0.1.1" }), undefined);
    const s = open();
    s.send({ node: node(), typeUrl: TYPE.eds, resourceNamesSubscribe: ["payments", "orders"] });
    const r0 = await s.nth(TYPE.eds, 0);
    const versions = Object.fromEntries(r0.resources.map((r: any) => [r.name, r.version]));
    s.close();
    // while it is away, payments changes and orders does not
    await server.registry.register(instance("b", { host: "10.0.0.2" }), undefined);
    const again = open();
    again.send({ node: node(), typeUrl: TYPE.eds, resourceNamesSubscribe: ["payments", "orders"], initialResourceVersions: versions });
    const r1 = await again.nth(TYPE.eds, 0);
    expect(names(r1)).toEqual(["payments"]);
    expect(addresses(r1.resources[0].resource)).toEqual(["10.0.0.1", "10.0.0.2"]);
    // a wildcard client that held a service that is gone is told so
    const w = open();
    w.send({ node: node(), typeUrl: TYPE.cds, resourceNamesSubscribe: ["*"], initialResourceVersions: { payments: "stale", gone: "x" } });
    const c0 = await w.nth(TYPE.cds, 0);
    expect(names(c0)).toEqual(["orders", "payments"]);
    expect(c0.removedResources).toEqual(["gone"]);
    // everything held and current: no CDS response (one would come before the EDS response: the stream is ordered, and a flush answers CDS before EDS)
    const cds = Object.fromEntries(c0.resources.map((r: any) => [r.name, r.version]));
    const same = open();
    same.send({ node: node(), typeUrl: TYPE.cds, resourceNamesSubscribe: ["*"], initialResourceVersions: cds });
    same.send({ typeUrl: TYPE.eds, resourceNamesSubscribe: ["payments"] });
    await same.nth(TYPE.eds, 0);
    expect(same.count(TYPE.cds)).toBe(0);
  });

  it("a name that does not exist is in removed_resources once; a NACK is counted and nothing is resent", async () => {
    await server.registry.register(instance("a", { host: "10.0.0.1" }), undefined);
    const s = open();
    s.send({ node: node(), typeUrl: TYPE.eds, resourceNamesSubscribe: ["payments", "no such"] });
    const r0 = await s.nth(TYPE.eds, 0);
    expect(names(r0)).toEqual(["payments"]);
    expect(r0.removedResources).toEqual(["no such"]);
    s.send({ typeUrl: TYPE.eds, responseNonce: r0.nonce, errorDetail: { code: 3, message: "rejected by test" } });
    await processed(r0.nonce);
    await server.registry.register(instance("b", { host: "10.0.0.2" }), undefined);
    const r1 = await s.nth(TYPE.eds, 1);
    expect(s.messages.length).toBe(2);
    expect(names(r1)).toEqual(["payments"]);
    expect(r1.removedResources ?? []).toEqual([]);
    const text = await (await fetch(`${server.url}/metrics`)).text();
    expect(text).toMatch(/^maxine_xds_nacks_total\{type="eds"\} 1$/m);
  });

  it("the subscription limit holds over subscribe requests: RESOURCE_EXHAUSTED naming MAXINE_XDS_MAX_RESOURCES_PER_STREAM", async () => {
    const s = open();
    s.send({ node: node(), typeUrl: TYPE.eds, resourceNamesSubscribe: ["a", "b", "c"] });
    await s.nth(TYPE.eds, 0);
    s.send({ typeUrl: TYPE.eds, resourceNamesUnsubscribe: ["a"], resourceNamesSubscribe: ["d"] });
    s.send({ typeUrl: TYPE.cds, resourceNamesSubscribe: ["e", "f"] });
    await s.closed();
    expect(s.error?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(s.error?.details).toContain("(MAXINE_XDS_MAX_RESOURCES_PER_STREAM)");
  });
});
