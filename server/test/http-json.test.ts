import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Maxine } from "../src/app.js";
import { postJson, startInProcess, watchJson } from "./support/in-process.js";

let server: Maxine & { url: string };
beforeAll(async () => {
  server = await startInProcess({ MAXINE_WATCH_PROGRESS_INTERVAL: "200ms" });
});
afterAll(async () => {
  await server.close();
});

const inst = (id: string, over: object = {}) => ({
  service: "json-svc",
  instanceId: id,
  host: "10.1.0.1",
  port: 8080,
  zone: "z1",
  tags: ["http"],
  metadata: { owner: "team-a" },
  ...over,
});

describe("Connect JSON over HTTP/1.1 with plain fetch", () => {
  it("Register returns the stored instance, TTL, deadline and revision", async () => {
    const { status, json } = await postJson(server.url, "Register", { instance: inst("j1"), leaseTtl: "30s" });
    expect(status).toBe(200);
    expect(json.instance).toMatchObject({
      namespace: "default",
      service: "json-svc",
      instanceId: "j1",
      port: 8080,
      weight: 100,
      status: "SERVING_STATUS_SERVING",
      tags: ["http"],
      metadata: { owner: "team-a" },
    });
    expect(json.leaseTtl).toBe("30s");
    expect(Date.parse(json.leaseExpiresAt) - Date.now()).toBeGreaterThan(28_000);
    expect(Number(json.revision)).toBeGreaterThan(0);
    expect(json.registryId).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("Discover, ListServices and Deregister work; errors name the field and rule", async () => {
    await postJson(server.url, "Register", { instance: inst("j2", { zone: "z2" }) });
    const d = await postJson(server.url, "Discover", { service: "json-svc", preferredZone: "z2", includeAll: true });
    expect(d.status).toBe(200);
    expect(d.json.instance.instanceId).toBe("j2");
    expect(d.json.instances.map((i: { instanceId: string }) => i.instanceId)).toEqual(["j1", "j2"]);
    const hashed = await postJson(server.url, "Discover", { service: "json-svc", strategy: "STRATEGY_CONSISTENT_HASH", hashKey: "user-7" });
    const again = await postJson(server.url, "Discover", { service: "json-svc", strategy: "STRATEGY_CONSISTENT_HASH", hashKey: "user-7" });
    expect(hashed.json.instance.instanceId).toBe(again.json.instance.instanceId);

    const l = await postJson(server.url, "ListServices", {});
    expect(l.json.services).toContainEqual({ service: "json-svc", instanceCount: 2, servingCount: 2 });

    const dr = await postJson(server.url, "Deregister", { key: { service: "json-svc", instanceId: "j2" } });
    expect(dr.status).toBe(200);
    expect(Number(dr.json.revision)).toBeGreaterThan(0);
    const gone = await postJson(server.url, "Deregister", { key: { service: "json-svc", instanceId: "j2" } });
    expect(gone.status).toBe(404);
    expect(gone.json).toEqual({ code: "not_found", message: "key: instance j2 of service default/json-svc is not registered" });

    const bad = await postJson(server.url, "Register", { instance: inst("j3", { port: 0 }) });
    expect(bad.status).toBe(400);
    expect(bad.json).toEqual({ code: "invalid_argument", message: "instance.port: must be 1..65535, got 0" });
    const none = await postJson(server.url, "Discover", { service: "nothing-here" });
    expect(none.json).toEqual({ code: "not_found", message: "service default/nothing-here has no instances" });
    const noKey = await postJson(server.url, "Discover", { service: "json-svc", strategy: "STRATEGY_RENDEZVOUS" });
    expect(noKey.json).toEqual({ code: "invalid_argument", message: "hash_key: is required for STRATEGY_RENDEZVOUS" });
  });

  it("rejects malformed JSON and wrong types without harming the server", async () => {
    const res = await fetch(`${server.url}/maxine.registry.v1.RegistryService/Register`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{not json",
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { code: string }).code).toBe("invalid_argument");
    const wrongType = await postJson(server.url, "Register", { instance: { port: "eighty" } });
    expect(wrongType.json.code).toBe("invalid_argument");
    const badEnum = await postJson(server.url, "Discover", { service: "json-svc", strategy: 42 });
    expect(badEnum.json).toEqual({ code: "invalid_argument", message: "strategy: unknown value 42" });
    expect((await postJson(server.url, "ListServices", {})).status).toBe(200);
  });

  it("WatchServices streams a snapshot, ordered events and progress bookmarks over fetch", async () => {
    const ac = new AbortController();
    const stream = await watchJson(server.url, { services: ["watch-json"] }, ac.signal);
    expect(await stream.next()).toMatchObject({ snapshotEnd: { registryId: expect.any(String) } });
    await postJson(server.url, "Register", { instance: inst("w1", { service: "watch-json" }) });
    await postJson(server.url, "Deregister", { key: { service: "watch-json", instanceId: "w1" } });
    const added = await stream.next();
    const removed = await stream.next();
    expect(added.event).toMatchObject({ type: "EVENT_TYPE_ADDED", instance: { instanceId: "w1" } });
    expect(removed.event).toMatchObject({ type: "EVENT_TYPE_REMOVED", removalReason: "REMOVAL_REASON_DEREGISTERED" });
    expect(BigInt(removed.event.revision)).toBe(BigInt(added.event.revision) + 1n);
    expect(await stream.next()).toMatchObject({ progress: { revision: removed.event.revision } });
    ac.abort();
    await stream.cancel();
    await expect.poll(() => server.hub.watchers).toBe(0);
  });

  it("serves health on GET /healthz and 404s elsewhere", async () => {
    const ok = await fetch(`${server.url}/healthz`);
    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({ status: "serving" });
    expect((await fetch(`${server.url}/nope`)).status).toBe(404);
  });
});
