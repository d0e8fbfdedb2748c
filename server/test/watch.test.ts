import { describe, expect, it } from "vitest";
import type { WatchRequest } from "../src/watch/hub.js";
import { brief, drain, instance, makeCore } from "./support/core.js";

const ALL = { tags: [], version: "", zone: "", metadata: {} };
const req = (over: Partial<WatchRequest> = {}): WatchRequest => ({
  namespace: "default",
  services: [],
  filter: ALL,
  resumeRevision: 0,
  registryId: "",
  ...over,
});
const key = (id: string, service = "payments") => ({ namespace: "", service, instanceId: id });

describe("WatchHub", () => {
  it("sends a chunked snapshot, an end marker, then ordered deltas", async () => {
    const { registry, hub } = makeCore();
    for (const id of ["a", "b", "c", "d"]) await registry.register(instance(id), undefined);
    const w = hub.watch(req());
    expect((await drain(w)).map(brief)).toEqual(["snapshot[a,b,c]", "snapshot[d]", "end@4"]);
    await registry.register(instance("e"), undefined);
    await registry.register(instance("a", { port: 1 }), undefined);
    await registry.deregister(key("b"));
    expect((await drain(w)).map(brief)).toEqual(["ADDED e@5", "UPDATED a@6", "REMOVED b@7:DEREGISTERED"]);
    w.end();
    expect(hub.watchers).toBe(0);
  });

  it("scopes to named services and to the namespace", async () => {
    const { registry, hub } = makeCore();
    const w = hub.watch(req({ services: ["auth", "payments"] }));
    await drain(w);
    await registry.register(instance("p"), undefined);
    await registry.register(instance("x", { service: "other" }), undefined);
    await registry.register(instance("a", { service: "auth" }), undefined);
    await registry.register(instance("n", { namespace: "prod" }), undefined);
    expect((await drain(w)).map(brief)).toEqual(["ADDED p@1", "ADDED a@3"]);
    w.end();
  });

  it("turns filter transitions into ADDED and REMOVED(FILTERED)", async () => {
    const { registry, hub } = makeCore();
    await registry.register(instance("a", { tags: ["canary"] }), undefined);
    await registry.register(instance("b"), undefined);
    const w = hub.watch(req({ filter: { ...ALL, tags: ["canary"] } }));
    expect((await drain(w)).map(brief)).toEqual(["snapshot[a]", "end@2"]);
    await registry.register(instance("a"), undefined); // stops matching
    await registry.register(instance("b", { tags: ["canary"] }), undefined); // starts matching
    await registry.register(instance("b", { tags: ["canary"], port: 2 }), undefined); // still matching
    await registry.register(instance("a", { port: 3 }), undefined); // never seen
    expect((await drain(w)).map(brief)).toEqual(["REMOVED a@3:FILTERED", "ADDED b@4", "UPDATED b@5"]);
    w.end();
  });

  it("resumes from a revision in history with exactly the missed events, then a progress bookmark", async () => {
    const { registry, hub, store } = makeCore();
    await registry.register(instance("a"), undefined);
    const w1 = hub.watch(req());
    await drain(w1);
    await registry.register(instance("b"), undefined);
    await registry.register(instance("x", { service: "other" }), undefined);
    await registry.deregister(key("a"));
    w1.end();
    const w2 = hub.watch(req({ services: ["payments"], resumeRevision: 1, registryId: store.registryId }));
    expect((await drain(w2)).map(brief)).toEqual(["ADDED b@2", "REMOVED a@4:DEREGISTERED", "progress@4"]);
    await registry.register(instance("c"), undefined);
    expect((await drain(w2)).map(brief)).toEqual(["ADDED c@5"]);
    w2.end();
  });

  it("resets with a fresh snapshot when the resume revision is compacted, ahead, or from another registry", async () => {
    const { registry, hub, store } = makeCore({ watch: { historySize: 2 } });
    for (const id of ["a", "b", "c", "d"]) await registry.register(instance(id), undefined);
    const compacted = hub.watch(req({ resumeRevision: 1, registryId: store.registryId }));
    expect((await drain(compacted)).map(brief)).toEqual(["snapshot[a,b,c]", "snapshot[d]", "end@4:COMPACTED"]);
    const inHistory = hub.watch(req({ resumeRevision: 2, registryId: store.registryId }));
    expect((await drain(inHistory)).map(brief)).toEqual(["ADDED c@3", "ADDED d@4", "progress@4"]);
    const ahead = hub.watch(req({ resumeRevision: 99 }));
    expect((await drain(ahead)).map(brief).at(-1)).toBe("end@4:REGISTRY_CHANGED");
    const other = hub.watch(req({ resumeRevision: 3, registryId: "another-registry" }));
    expect((await drain(other)).map(brief).at(-1)).toBe("end@4:REGISTRY_CHANGED");
    const upToDate = hub.watch(req({ resumeRevision: 4, registryId: store.registryId }));
    expect((await drain(upToDate)).map(brief)).toEqual(["progress@4"]);
    for (const w of [compacted, inHistory, ahead, other, upToDate]) w.end();
  });

  it("resets a watcher that falls behind instead of growing its queue", async () => {
    const { registry, hub } = makeCore({ watch: { maxQueue: 5, snapshotChunk: 100 } });
    const w = hub.watch(req());
    await drain(w);
    for (let i = 0; i < 20; i++) await registry.register(instance(`i${i}`), undefined);
    expect(w.behind).toBe(0);
    expect(w.resets).toBe(1);
    // the snapshot is built when the client reads: it holds every change, and nothing older follows it
    const ids = Array.from({ length: 20 }, (_, i) => `i${i}`).sort();
    expect((await drain(w)).map(brief)).toEqual([`snapshot[${ids.join(",")}]`, "end@20:OVERFLOW"]);
    await registry.register(instance("late"), undefined);
    expect((await drain(w)).map(brief)).toEqual(["ADDED late@21"]);
    w.end();
  });

  it("ends a watcher that falls behind with WATCH_OVERFLOW under the close policy", async () => {
    const { registry, hub } = makeCore({ watch: { maxQueue: 3, overflow: "close" } });
    const w = hub.watch(req());
    await drain(w);
    for (let i = 0; i < 5; i++) await registry.register(instance(`i${i}`), undefined);
    await expect(w.next()).rejects.toMatchObject({ reason: "WATCH_OVERFLOW" });
    expect(hub.watchers).toBe(0);
  });

  it("delivers to a waiting reader at once and sends progress bookmarks only on idle streams", async () => {
    const { registry, hub, clock } = makeCore({ watch: { progressIntervalMs: 1_000 } });
    const idle = hub.watch(req());
    const busy = hub.watch(req({ services: ["payments"] }));
    await drain(idle);
    await drain(busy);
    const waiting = idle.next();
    await registry.register(instance("a"), undefined);
    expect(brief((await waiting).value)).toBe("ADDED a@1");
    await drain(busy);
    await clock.advance(1_000);
    expect((await drain(idle)).map(brief)).toEqual(["progress@1"]);
    await clock.advance(500);
    await registry.register(instance("b", { service: "other" }), undefined);
    await clock.advance(500);
    expect((await drain(idle)).map(brief)).toEqual(["ADDED b@2"]);
    idle.end();
    busy.end();
  });

  it("limits watchers and ends them all with SHUTTING_DOWN on close", async () => {
    const { hub } = makeCore({ watch: { maxWatchers: 2 } });
    const a = hub.watch(req());
    const b = hub.watch(req({ services: ["x", "y"] }));
    expect(() => hub.watch(req())).toThrow("watch: the server holds the maximum of 2 watch streams");
    await drain(a);
    await drain(b);
    const pending = a.next();
    hub.close();
    await expect(pending).rejects.toMatchObject({ reason: "SHUTTING_DOWN" });
    await expect(b.next()).rejects.toMatchObject({ reason: "SHUTTING_DOWN" });
    expect(hub.watchers).toBe(0);
    expect(() => hub.watch(req())).toThrow("shutting down");
  });
});
