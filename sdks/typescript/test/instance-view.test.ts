import { describe, expect, it } from "vitest";
import { EventType, RemovalReason, ResetReason } from "../src/gen/maxine/registry/v1/registry_pb.js";
import { InstanceView, type WatchChange } from "../src/instance-view.js";
import { event, inst, progress, snapshot, snapshotEnd } from "./support/messages.js";

const summary = (changes: readonly WatchChange[]) => changes.map((c) => `${c.type}:${c.instance.instanceId}@${c.revision}`);

describe("InstanceView", () => {
  it("collects snapshot chunks and applies them only at snapshot_end", () => {
    const v = new InstanceView();
    expect(v.apply(snapshot(inst("b"), inst("a"))).changes).toEqual([]);
    expect(v.apply(snapshot(inst("c"))).changes).toEqual([]);
    expect(v.size).toBe(0);
    const r = v.apply(snapshotEnd(7n));
    expect(summary(r.changes)).toEqual(["added:b@7", "added:a@7", "added:c@7"]);
    expect(r.synced).toEqual({ revision: 7n, registryId: "reg-1", reset: false, reason: ResetReason.UNSPECIFIED });
    expect(v.sorted("svc").map((i) => i.instanceId)).toEqual(["a", "b", "c"]);
    expect([v.revision, v.registryId, v.synced]).toEqual([7n, "reg-1", true]);
  });

  it("applies events in order, ignores stale ones, and tracks progress", () => {
    const v = new InstanceView();
    v.apply(snapshot(inst("a")));
    v.apply(snapshotEnd(3n));
    expect(summary(v.apply(event(EventType.ADDED, inst("b"), 4n)).changes)).toEqual(["added:b@4"]);
    const upd = v.apply(event(EventType.UPDATED, inst("a", { port: 81 }), 5n)).changes;
    expect(summary(upd)).toEqual(["updated:a@5"]);
    expect(upd[0]!.previous?.port).toBe(80);
    const rm = v.apply(event(EventType.REMOVED, inst("b"), 6n, RemovalReason.STREAM_CLOSED)).changes;
    expect(rm[0]).toMatchObject({ type: "removed", removalReason: RemovalReason.STREAM_CLOSED });
    expect(v.apply(event(EventType.ADDED, inst("z"), 6n)).changes).toEqual([]); // not newer than 6
    expect(v.get("svc", "z")).toBeUndefined();
    v.apply(progress(9n, "reg-1"));
    expect(v.revision).toBe(9n);
    expect(v.sorted("svc").map((i) => `${i.instanceId}:${i.port}`)).toEqual(["a:81"]);
  });

  it("turns a reset snapshot into the differences, so listeners stay consistent", () => {
    const v = new InstanceView();
    v.apply(snapshot(inst("a"), inst("b"), inst("c")));
    v.apply(snapshotEnd(10n, "old"));
    v.apply(snapshot(inst("a"), inst("b", { port: 99 }), inst("d")));
    const r = v.apply(snapshotEnd(2n, "new", ResetReason.REGISTRY_CHANGED));
    expect(summary(r.changes).sort()).toEqual(["added:d@2", "removed:c@2", "updated:b@2"]);
    expect(r.synced).toMatchObject({ reset: true, reason: ResetReason.REGISTRY_CHANGED, registryId: "new" });
    expect(v.revision).toBe(2n); // a new registry's revisions start over
    expect(v.sorted("svc").map((i) => i.instanceId)).toEqual(["a", "b", "d"]);
  });

  it("drops a partial snapshot whose stream failed", () => {
    const v = new InstanceView();
    v.apply(snapshot(inst("a")));
    v.abandonSnapshot();
    v.apply(snapshot(inst("b")));
    v.apply(snapshotEnd(1n));
    expect(v.sorted("svc").map((i) => i.instanceId)).toEqual(["b"]);
  });

  it("bumps a service's version on every change and keeps services apart", () => {
    const v = new InstanceView();
    v.apply(snapshot(inst("a"), inst("x", { service: "other" })));
    v.apply(snapshotEnd(1n));
    const before = v.version("svc");
    v.apply(event(EventType.UPDATED, inst("x", { service: "other", port: 1 }), 2n));
    expect(v.version("svc")).toBe(before);
    v.apply(event(EventType.REMOVED, inst("a"), 3n));
    expect(v.version("svc")).toBeGreaterThan(before);
    expect(v.serviceNames()).toEqual(["other"]);
  });
});
