import { describe, expect, it } from "vitest";
import { RegistryError } from "../src/domain/errors.js";
import { instance, makeCore } from "./support/core.js";

const key = (id: string) => ({ namespace: "", service: "payments", instanceId: id });

describe("Registry: register and revisions", () => {
  it("stores an instance with defaults and advances the revision on every change only", async () => {
    const { registry, store } = makeCore();
    const r = await registry.register(instance("a", { tags: ["z", "a", "z"] }), undefined);
    expect(r.revision).toBe(1);
    expect(r.ttlMs).toBe(10_000);
    expect(r.instance).toMatchObject({ namespace: "default", weight: 100, status: "SERVING", tags: ["a", "z"], createRevision: 1, modRevision: 1 });
    // Same spec again: lease renewed, no revision.
    const again = await registry.register(instance("a", { tags: ["a", "z"] }), undefined);
    expect(again.revision).toBe(1);
    expect(store.revision()).toBe(1);
    // A change: new revision, create revision kept.
    const changed = await registry.register(instance("a", { port: 9090 }), undefined);
    expect(changed.revision).toBe(2);
    expect(changed.instance).toMatchObject({ createRevision: 1, modRevision: 2, port: 9090 });
  });

  it("assigns an instance id when none is given", async () => {
    const { registry } = makeCore();
    const r = await registry.register(instance(""), undefined);
    expect(r.instance.instanceId).toBe("gen-1");
  });

  it.each([
    [{ port: 0 }, "instance.port: must be 1..65535, got 0"],
    [{ port: 70000 }, "instance.port: must be 1..65535, got 70000"],
    [{ host: "" }, "instance.host: is required"],
    [{ host: "a b" }, "instance.host: must be 1..253 characters"],
    [{ service: "" }, "instance.service: is required"],
    [{ service: "bad/name" }, "instance.service: must be 1..128 characters of [A-Za-z0-9._-]"],
    [{ namespace: "x y" }, "instance.namespace: must be 1..128 characters"],
    [{ instanceId: "id with space" }, "instance.instance_id: must be 1..128 characters of [A-Za-z0-9._:-]"],
    [{ weight: 10_001 }, "instance.weight: must be 0..10000"],
    [{ tags: [""] }, "instance.tags[0]: must not be empty"],
    [{ tags: Array.from({ length: 33 }, (_, i) => `t${i}`) }, "instance.tags: at most 32 tags (MAXINE_MAX_TAGS), got 33"],
    [{ metadata: { k: "x".repeat(5000) } }, "instance.metadata: at most 4096 bytes of keys and values (MAXINE_MAX_METADATA_BYTES), got 5001"],
    [{ version: "v".repeat(129) }, "instance.version: must be at most 128 characters"],
  ])("rejects %j with a message naming the field and rule", async (over, message) => {
    const { registry } = makeCore();
    const err = await registry.register(instance("a", over), undefined).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RegistryError);
    expect((err as RegistryError).reason).toBe("INVALID_ARGUMENT");
    expect((err as RegistryError).message).toContain(message);
  });

  it("bounds the lease TTL", async () => {
    const { registry } = makeCore();
    await expect(registry.register(instance("a"), 500)).rejects.toThrow("lease_ttl: must be 1s..3600s (MAXINE_LEASE_TTL_MIN..MAXINE_LEASE_TTL_MAX), got 0.5s");
    await expect(registry.register(instance("a"), 3_600_001)).rejects.toThrow("lease_ttl: must be 1s..3600s (MAXINE_LEASE_TTL_MIN..MAXINE_LEASE_TTL_MAX), got 3600.001s");
    expect((await registry.register(instance("a"), 2_000)).ttlMs).toBe(2_000);
  });

  it("limits instances per service with RESOURCE_EXHAUSTED, but lets existing ones re-register", async () => {
    const { registry } = makeCore({ limits: { maxInstancesPerService: 2 } });
    await registry.register(instance("a"), undefined);
    await registry.register(instance("b"), undefined);
    await expect(registry.register(instance("c"), undefined)).rejects.toMatchObject({
      reason: "RESOURCE_EXHAUSTED",
      message: "instance: service default/payments already holds the maximum of 2 instances (MAXINE_MAX_INSTANCES_PER_SERVICE)",
    });
    await expect(registry.register(instance("b", { port: 1 }), undefined)).resolves.toBeDefined();
    await registry.register(instance("c", { service: "other" }), undefined);
  });

  it("deregisters at once and reports NOT_FOUND for an unknown instance", async () => {
    const { registry, store } = makeCore();
    await registry.register(instance("a"), undefined);
    expect(await registry.deregister(key("a"))).toBe(2);
    expect(store.get({ namespace: "default", service: "payments", instanceId: "a" })).toBeUndefined();
    await expect(registry.deregister(key("a"))).rejects.toMatchObject({ reason: "NOT_FOUND" });
    await expect(registry.deregister(undefined)).rejects.toThrow("key: is required");
  });

  it("lists services with instance and serving counts", async () => {
    const { registry } = makeCore();
    await registry.register(instance("a"), undefined);
    await registry.register(instance("b", { status: "DRAINING" }), undefined);
    await registry.register(instance("c", { service: "auth" }), undefined);
    await registry.register(instance("d", { namespace: "prod" }), undefined);
    expect(registry.listServices("")).toEqual([
      { service: "auth", instanceCount: 1, servingCount: 1 },
      { service: "payments", instanceCount: 2, servingCount: 1 },
    ]);
    expect(registry.listServices("prod")).toEqual([{ service: "payments", instanceCount: 1, servingCount: 1 }]);
    expect(registry.listServices("empty")).toEqual([]);
  });
});

describe("Registry: leases, streams and grace", () => {
  it("expires an instance that gets no heartbeat within its TTL", async () => {
    const { registry, store, clock } = makeCore();
    await registry.register(instance("a"), 2_000);
    await clock.advance(1_999);
    expect(store.get({ namespace: "default", service: "payments", instanceId: "a" })).toBeDefined();
    await clock.advance(1);
    expect(store.get({ namespace: "default", service: "payments", instanceId: "a" })).toBeUndefined();
  });

  it("keeps an instance alive through heartbeats and re-registration", async () => {
    const { registry, store, clock } = makeCore();
    await registry.register(instance("a"), 2_000);
    const s = registry.openStream();
    for (let i = 0; i < 5; i++) {
      await clock.advance(1_500);
      const [ack] = await registry.heartbeat(s, [{ key: key("a"), status: undefined, load: undefined }]);
      expect(ack).toMatchObject({ result: "RENEWED", expiresAt: clock.now() + 2_000 });
    }
    // curl-style: Register again renews too.
    await registry.register(instance("b"), 2_000);
    for (let i = 0; i < 3; i++) {
      await clock.advance(1_500);
      await registry.register(instance("b"), 2_000);
      await registry.heartbeat(s, [{ key: key("a"), status: undefined, load: undefined }]);
    }
    expect(store.service("default", "payments")?.size).toBe(2);
    expect(store.revision()).toBe(2);
    registry.closeStream(s);
  });

  it("removes a stream's instances after the grace, with reason STREAM_CLOSED", async () => {
    const { registry, store, clock, hub } = makeCore();
    await registry.register(instance("a"), 10_000);
    const s = registry.openStream();
    await registry.heartbeat(s, [{ key: key("a"), status: undefined, load: undefined }]);
    const w = hub.watch({ namespace: "default", services: [], filter: { tags: [], version: "", zone: "", metadata: {} }, resumeRevision: 0, registryId: "" });
    await w.next(); // snapshot chunk
    await w.next(); // snapshot end
    registry.closeStream(s);
    await clock.advance(999);
    expect(store.service("default", "payments")?.size).toBe(1);
    await clock.advance(1);
    expect(store.service("default", "payments")).toBeUndefined();
    const ev = await w.next();
    expect(ev.value).toMatchObject({ kind: "event", type: "REMOVED", removalReason: "STREAM_CLOSED", revision: 2 });
    w.end();
  });

  it("keeps instances with no events when a new stream claims them within the grace", async () => {
    const { registry, store, clock } = makeCore();
    await registry.register(instance("a"), 10_000);
    const s1 = registry.openStream();
    await registry.heartbeat(s1, [{ key: key("a"), status: undefined, load: undefined }]);
    registry.closeStream(s1);
    await clock.advance(900);
    const s2 = registry.openStream();
    await registry.heartbeat(s2, [{ key: key("a"), status: undefined, load: undefined }]);
    await clock.advance(5_000);
    expect(store.revision()).toBe(1);
    expect(store.service("default", "payments")?.size).toBe(1);
    registry.closeStream(s2);
  });

  it("does not start a grace when an old stream that lost the instance to a new one ends", async () => {
    const { registry, store, clock } = makeCore();
    await registry.register(instance("a"), 10_000);
    const s1 = registry.openStream();
    const s2 = registry.openStream();
    await registry.heartbeat(s1, [{ key: key("a"), status: undefined, load: undefined }]);
    await registry.heartbeat(s2, [{ key: key("a"), status: undefined, load: undefined }]);
    registry.closeStream(s1);
    await clock.advance(3_000);
    expect(store.service("default", "payments")?.size).toBe(1);
    registry.closeStream(s2);
    await clock.advance(1_000);
    expect(store.service("default", "payments")).toBeUndefined();
  });

  it("still expires a bound instance whose stream stays open but sends no heartbeat", async () => {
    const { registry, store, clock } = makeCore();
    await registry.register(instance("a"), 2_000);
    const s = registry.openStream();
    await registry.heartbeat(s, [{ key: key("a"), status: undefined, load: undefined }]);
    await clock.advance(2_000);
    expect(store.service("default", "payments")).toBeUndefined();
    registry.closeStream(s);
  });

  it("answers UNKNOWN for an instance the registry does not hold and INVALID for a bad beat", async () => {
    const { registry } = makeCore();
    const s = registry.openStream();
    const acks = await registry.heartbeat(s, [
      { key: key("ghost"), status: undefined, load: undefined },
      { key: { namespace: "", service: "", instanceId: "x" }, status: undefined, load: undefined },
      { key: key("ghost"), status: undefined, load: -1 },
    ]);
    expect(acks.map((a) => a.result)).toEqual(["UNKNOWN", "INVALID", "INVALID"]);
    expect(acks[1]).toMatchObject({ message: "beats[1].key.service: is required" });
    expect(acks[2]).toMatchObject({ message: "beats[2].load: must be a finite number >= 0, got -1" });
    registry.closeStream(s);
  });

  it("registers an unknown instance from the whole instance a beat carries, bound to the stream (REGISTERED)", async () => {
    const { registry, store, clock, hub } = makeCore();
    const w = hub.watch({ namespace: "default", services: [], filter: { tags: [], version: "", zone: "", metadata: {} }, resumeRevision: 0, registryId: "" });
    await w.next(); // snapshot end
    const s = registry.openStream();
    const acks = await registry.heartbeat(s, [
      { key: key("a"), status: "DRAINING", load: undefined, register: { instance: instance("a", { status: "DRAINING", zone: "z1" }), ttlMs: 4_000 } },
      { key: key("b"), status: undefined, load: undefined },
    ]);
    expect(acks).toEqual([
      { key: { namespace: "default", service: "payments", instanceId: "a" }, result: "REGISTERED", expiresAt: clock.now() + 4_000 },
      expect.objectContaining({ result: "UNKNOWN" }),
    ]);
    expect(store.get({ namespace: "default", service: "payments", instanceId: "a" })).toMatchObject({ status: "DRAINING", zone: "z1" });
    expect((await w.next()).value).toMatchObject({ kind: "event", type: "ADDED", revision: 1 });
    expect(registry.counts).toMatchObject({ beatsRegistered: 1, beatsUnknown: 1 });
    // Bound to the stream: it goes a grace after the stream ends, not at its TTL.
    registry.closeStream(s);
    await clock.advance(999);
    expect(store.service("default", "payments")?.size).toBe(1);
    await clock.advance(1);
    expect(store.service("default", "payments")).toBeUndefined();
    expect((await w.next()).value).toMatchObject({ type: "REMOVED", removalReason: "STREAM_CLOSED" });
    w.end();
  });

  it("renews a known instance on a beat carrying it, without applying it", async () => {
    const { registry, store } = makeCore();
    await registry.register(instance("a"), undefined);
    const s = registry.openStream();
    const [ack] = await registry.heartbeat(s, [
      { key: key("a"), status: undefined, load: undefined, register: { instance: instance("a", { port: 9999 }), ttlMs: undefined } },
    ]);
    expect(ack).toMatchObject({ result: "RENEWED" });
    expect(store.get({ namespace: "default", service: "payments", instanceId: "a" })?.port).toBe(8080);
    expect(store.revision()).toBe(1);
    registry.closeStream(s);
  });

  it("answers UNKNOWN with the reason when a beat's instance cannot be registered", async () => {
    const { registry, store } = makeCore({ limits: { maxInstancesPerService: 1 } });
    await registry.register(instance("full"), undefined);
    const s = registry.openStream();
    const acks = await registry.heartbeat(s, [
      { key: key("a"), status: undefined, load: undefined, register: { instance: instance("other"), ttlMs: undefined } },
      { key: key("b"), status: undefined, load: undefined, register: { instance: instance("b", { port: 0 }), ttlMs: undefined } },
      { key: key("c"), status: undefined, load: undefined, register: { instance: instance("c"), ttlMs: 10 } },
      { key: key("d"), status: undefined, load: undefined, register: { instance: instance("d"), ttlMs: undefined } },
    ]);
    expect(acks.map((a) => a.result)).toEqual(["UNKNOWN", "UNKNOWN", "UNKNOWN", "UNKNOWN"]);
    const messages = acks.map((a) => (a as { message: string }).message);
    expect(messages[0]).toBe(
      "instance a of service default/payments is not registered; beats[0].instance must name the same instance as the beat's key, got default/payments/other",
    );
    expect(messages[1]).toContain("registering it from beats[1].instance failed: instance.port: must be 1..65535, got 0");
    expect(messages[2]).toContain("registering it from beats[2].instance failed: lease_ttl: must be 1s..3600s (MAXINE_LEASE_TTL_MIN..MAXINE_LEASE_TTL_MAX), got 0.01s");
    expect(messages[3]).toContain("registering it from beats[3].instance failed: instance: service default/payments already holds the maximum of 1 instances (MAXINE_MAX_INSTANCES_PER_SERVICE)");
    expect(store.service("default", "payments")?.size).toBe(1);
    expect(registry.counts).toMatchObject({ beatsRegistered: 0, beatsUnknown: 4 });
    registry.closeStream(s);
  });

  it("applies a status change from a heartbeat as one UPDATED revision", async () => {
    const { registry, store } = makeCore();
    await registry.register(instance("a"), undefined);
    const s = registry.openStream();
    await registry.heartbeat(s, [{ key: key("a"), status: "DRAINING", load: undefined }]);
    await registry.heartbeat(s, [{ key: key("a"), status: "DRAINING", load: undefined }]);
    expect(store.revision()).toBe(2);
    expect(store.get({ namespace: "default", service: "payments", instanceId: "a" })?.status).toBe("DRAINING");
    registry.closeStream(s);
  });

  it("limits heartbeat streams in total", () => {
    const { registry } = makeCore({ lease: { maxHeartbeatStreams: 2 } });
    const a = registry.openStream();
    const b = registry.openStream();
    expect(() => registry.openStream()).toThrow("heartbeat: the server holds the maximum of 2 heartbeat streams (MAXINE_MAX_HEARTBEAT_STREAMS)");
    registry.closeStream(a);
    registry.closeStream(registry.openStream());
    registry.closeStream(b);
  });

  it("refuses work after close and cancels its timer", async () => {
    const { registry, clock } = makeCore();
    await registry.register(instance("a"), undefined);
    expect(clock.pendingTimers).toBeGreaterThan(0);
    registry.close();
    await expect(registry.register(instance("b"), undefined)).rejects.toMatchObject({ reason: "SHUTTING_DOWN" });
  });
});
