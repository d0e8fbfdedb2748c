import { describe, expect, it } from "vitest";
import type { Access, Permission } from "../src/domain/access.js";
import { RegistryError } from "../src/domain/errors.js";
import { UNLIMITED_QUOTAS } from "../src/registry/registry.js";
import { instance, makeCore } from "./support/core.js";

// Instance ownership, the lease binding rule and quotas, in the core (fake
// clock). End-to-end refusals over every protocol are in security.test.ts.

/** as is the access of principal holding perms on every service ("admin" implies the others, as the policy has it). */
function as(principal: string, ...perms: Permission[]): Access {
  const has = (p: Permission) => perms.includes(p) || perms.includes("admin") || (p === "read" && perms.includes("register"));
  return { principal, allows: (p) => has(p), allowsAll: (p) => has(p), allowsAny: (p) => has(p) };
}

const alice = as("alice", "register");
const bob = as("bob", "register");
const root = as("root", "admin");
const reader = as("reader", "read");
const key = (id: string) => ({ namespace: "default", service: "payments", instanceId: id });

async function denied(p: Promise<unknown>): Promise<string> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(RegistryError);
  expect((err as RegistryError).reason).toBe("PERMISSION_DENIED");
  return (err as RegistryError).message;
}

describe("instance ownership", () => {
  it("records the registering principal as the owner and refuses another's Register over it, naming the owner", async () => {
    const { registry, store } = makeCore();
    const r = await registry.register(instance("p-1"), undefined, alice);
    expect(r.instance.owner).toBe("alice");
    const message = await denied(registry.register(instance("p-1", { host: "6.6.6.6" }), undefined, bob));
    expect(message).toContain('instance default/payments/p-1 belongs to principal "alice"');
    expect(message).toContain('caller "bob"');
    expect(store.get(key("p-1"))).toMatchObject({ host: "10.0.0.1", owner: "alice" });
  });

  it("lets an admin change another's instance, which keeps its owner", async () => {
    const { registry } = makeCore();
    await registry.register(instance("p-1"), undefined, alice);
    const r = await registry.register(instance("p-1", { port: 9999 }), undefined, root);
    expect(r.instance).toMatchObject({ port: 9999, owner: "alice" });
  });

  it("refuses another principal's Deregister; the owner's and an admin's succeed", async () => {
    const { registry, store } = makeCore();
    await registry.register(instance("p-1"), undefined, alice);
    await registry.register(instance("p-2"), undefined, alice);
    await denied(registry.deregister(key("p-1"), bob));
    expect(store.get(key("p-1"))).toBeDefined();
    await registry.deregister(key("p-1"), alice);
    await registry.deregister(key("p-2"), root);
    expect(store.get(key("p-1"))).toBeUndefined();
    expect(store.get(key("p-2"))).toBeUndefined();
  });

  it("answers a beat for another's instance PERMISSION_DENIED per beat: no renewal, no status change, no binding", async () => {
    const { registry, store } = makeCore();
    await registry.register(instance("p-1"), undefined, alice);
    const intruder = registry.openStream(bob);
    const out = await registry.heartbeat(intruder, [{ key: key("p-1"), status: "NOT_SERVING", load: undefined }]);
    expect(out).toEqual([{ key: key("p-1"), result: "PERMISSION_DENIED", message: expect.stringContaining('belongs to principal "alice"') }]);
    expect(store.get(key("p-1"))?.status).toBe("SERVING");
    expect(intruder.keys.size).toBe(0);
  });

  it("needs the register permission to register, beat or deregister, and read to discover", async () => {
    const { registry } = makeCore();
    expect(await denied(registry.register(instance("p-1"), undefined, reader))).toBe(
      'permission denied: principal "reader" lacks the register permission on default/payments',
    );
    await registry.register(instance("p-1"), undefined, alice);
    const s = registry.openStream(reader);
    expect(await registry.heartbeat(s, [{ key: key("p-1"), status: undefined, load: undefined }])).toMatchObject([{ result: "PERMISSION_DENIED" }]);
    expect(registry.discover({ namespace: "", service: "payments", filter: undefined, strategy: "ROUND_ROBIN", hashKey: "", preferredZone: "", includeAll: false }, reader).chosen!.instanceId).toBe("p-1");
    expect(() =>
      registry.discover({ namespace: "", service: "payments", filter: undefined, strategy: "ROUND_ROBIN", hashKey: "", preferredZone: "", includeAll: false }, as("nobody")),
    ).toThrow('principal "nobody" lacks the read permission on default/payments');
  });

  it("lists only the services a principal may read", async () => {
    const { registry } = makeCore();
    await registry.register(instance("p-1"), undefined, alice);
    await registry.register(instance("o-1", { service: "orders" }), undefined, alice);
    const onlyOrders: Access = { principal: "o", allows: (p, _ns, svc) => p === "read" && svc === "orders", allowsAll: () => false, allowsAny: (p) => p === "read" };
    expect(registry.listServices("", onlyOrders).map((s) => s.service)).toEqual(["orders"]);
    expect(registry.listServices("", alice).map((s) => s.service)).toEqual(["orders", "payments"]);
  });
});

describe("heartbeat binding", () => {
  it("keeps an instance whose own stream still beats when a second stream beats it and goes away", async () => {
    const { registry, store, clock } = makeCore();
    await registry.register(instance("p-1"), undefined);
    const owner = registry.openStream();
    const other = registry.openStream();
    await registry.heartbeat(owner, [{ key: key("p-1"), status: undefined, load: undefined }]);
    expect(await registry.heartbeat(other, [{ key: key("p-1"), status: undefined, load: undefined }])).toMatchObject([{ result: "RENEWED" }]);
    registry.closeStream(other);
    for (let t = 0; t < 5; t++) {
      await clock.advance(1_000); // past the 1 s grace, the owner beating every second
      await registry.heartbeat(owner, [{ key: key("p-1"), status: undefined, load: undefined }]);
    }
    expect(store.get(key("p-1"))).toBeDefined();
    registry.closeStream(owner);
    await clock.advance(1_001);
    expect(store.get(key("p-1"))).toBeUndefined();
  });

  it("passes the instance to a session's new stream when its old stream closes late (a reconnect)", async () => {
    const { registry, store, clock } = makeCore();
    await registry.register(instance("p-1"), undefined);
    const old = registry.openStream();
    const fresh = registry.openStream();
    await registry.heartbeat(old, [{ key: key("p-1"), status: undefined, load: undefined }]);
    await registry.heartbeat(fresh, [{ key: key("p-1"), status: undefined, load: undefined }]);
    registry.closeStream(old);
    await clock.advance(2_000);
    expect(store.get(key("p-1"))).toBeDefined();
    expect(fresh.keys.has("default/payments/p-1")).toBe(true);
    registry.closeStream(fresh);
    await clock.advance(1_001);
    expect(store.get(key("p-1"))?.instanceId).toBeUndefined();
  });
});

describe("quotas", () => {
  const exhausted = async (p: Promise<unknown>, setting: string) => {
    const err = await p.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((err as RegistryError).reason).toBe("RESOURCE_EXHAUSTED");
    expect((err as RegistryError).message).toContain(setting);
  };

  it("bounds instances per principal; re-registering an existing one still works, and other principals are not affected", async () => {
    const { registry } = makeCore({ quotas: { ...UNLIMITED_QUOTAS, maxInstancesPerPrincipal: 2 } });
    await registry.register(instance("a-1"), undefined, alice);
    await registry.register(instance("a-2"), undefined, alice);
    await exhausted(registry.register(instance("a-3"), undefined, alice), 'principal "alice" owns the maximum of 2 instances (MAXINE_MAX_INSTANCES_PER_PRINCIPAL)');
    await registry.register(instance("a-2", { port: 1234 }), undefined, alice);
    await registry.register(instance("b-1"), undefined, bob);
    await registry.deregister(key("a-1"), alice);
    await registry.register(instance("a-3"), undefined, alice);
  });

  it("bounds instances, services and namespaces in all, keeping what is stored", async () => {
    const { registry, store } = makeCore({ quotas: { maxInstances: 3, maxServices: 2, maxNamespaces: 1, maxInstancesPerPrincipal: 100 } });
    await registry.register(instance("1"), undefined);
    await registry.register(instance("2", { service: "orders" }), undefined);
    await exhausted(registry.register(instance("3", { service: "third" }), undefined), "maximum of 2 services (MAXINE_MAX_SERVICES)");
    await exhausted(registry.register(instance("3", { namespace: "other" }), undefined), "MAXINE_MAX_SERVICES");
    await registry.register(instance("3"), undefined);
    await exhausted(registry.register(instance("4"), undefined), "maximum of 3 instances (MAXINE_MAX_INSTANCES)");
    expect(store.services("default").map(([s, v]) => [s, v.size])).toEqual([
      ["orders", 1],
      ["payments", 2],
    ]);
  });

  it("bounds namespaces", async () => {
    const { registry } = makeCore({ quotas: { ...UNLIMITED_QUOTAS, maxNamespaces: 1 } });
    await registry.register(instance("1"), undefined);
    await exhausted(registry.register(instance("2", { namespace: "other" }), undefined), "maximum of 1 namespaces (MAXINE_MAX_NAMESPACES)");
  });
});
