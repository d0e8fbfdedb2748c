import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import {
  EventType,
  InstanceSchema,
  RemovalReason,
  ServingStatus,
  SnapshotEndSchema,
  WatchEventSchema,
} from "../../sdks/typescript/src/gen/maxine/registry/v1/registry_pb.js";
import { FADE_MS, NamespaceView } from "../src/namespace-view.js";

// The page's copy of a namespace, as the watch stream changes it (no DOM).

const inst = (id: string, rev: number, status = ServingStatus.SERVING, service = "orders") =>
  create(InstanceSchema, { namespace: "default", service, instanceId: id, host: "h", port: 1, status, modRevision: BigInt(rev) });
const end = (rev: number, registryId = "reg-a") => create(SnapshotEndSchema, { revision: BigInt(rev), registryId });
const event = (type: EventType, i: ReturnType<typeof inst>, rev: number, removalReason = RemovalReason.UNSPECIFIED) =>
  create(WatchEventSchema, { type, instance: i, revision: BigInt(rev), removalReason });

describe("NamespaceView", () => {
  it("installs a snapshot, applies events in place, and counts by status", () => {
    const v = new NamespaceView("default");
    v.replace([inst("b", 2), inst("a", 1), inst("p", 3, ServingStatus.SERVING, "payments")], end(3), 1000);
    expect(v.synced).toBe(true);
    expect(v.rowsOf("orders").map((r) => r.instance.instanceId)).toEqual(["a", "b"]);
    expect(v.rowsOf("orders")[0]!.changedAt).toBe(0); // the first snapshot flashes nothing
    const sorted = v.rowsOf("orders");
    expect(v.apply(event(EventType.UPDATED, inst("a", 4, ServingStatus.DRAINING), 4), 2000)).toMatchObject({ type: "UPDATED", detail: "DRAINING", revision: 4n });
    // the sorted list is kept and shows the change (the row changed in place)
    expect(v.rowsOf("orders")).toBe(sorted);
    expect(sorted[0]).toMatchObject({ changedAt: 2000, instance: { status: ServingStatus.DRAINING } });
    expect(v.counts("orders")).toEqual({ total: 2, serving: 1, draining: 1, notServing: 0 });
    expect(v.revision).toBe(4n);
    v.apply(event(EventType.ADDED, inst("c", 5), 5), 2100);
    expect(v.rowsOf("orders").map((r) => r.instance.instanceId)).toEqual(["a", "b", "c"]);
    expect(v.instanceCount()).toBe(4);
  });

  it("keeps a REMOVED row with its reason for FADE_MS, then drops it (and its service when empty)", () => {
    const v = new NamespaceView("default");
    v.replace([inst("a", 1), inst("p", 2, ServingStatus.SERVING, "payments")], end(2), 0);
    expect(v.apply(event(EventType.REMOVED, inst("p", 2, ServingStatus.SERVING, "payments"), 3, RemovalReason.STREAM_CLOSED), 1000)).toMatchObject({ detail: "stream closed" });
    expect(v.rowsOf("payments")[0]!.removed).toEqual({ reason: "stream closed", at: 1000 });
    expect(v.counts("payments").total).toBe(0);
    expect(v.prune(1000 + FADE_MS - 1)).toBe(false);
    expect(v.prune(1000 + FADE_MS)).toBe(true);
    expect(v.services.has("payments")).toBe(false);
    expect(v.rowsOf("payments")).toEqual([]);
  });

  it("flashes after a reset only the rows whose content changed, and treats another registry as all new", () => {
    const v = new NamespaceView("default");
    v.replace([inst("a", 1), inst("b", 2)], end(2), 0);
    v.replace([inst("a", 1), inst("b", 7)], end(7), 5000);
    expect(v.rowsOf("orders").map((r) => r.changedAt)).toEqual([0, 5000]);
    v.replace([inst("a", 1)], end(1, "reg-b"), 6000);
    expect(v.registryId).toBe("reg-b");
    expect(v.rowsOf("orders").map((r) => r.changedAt)).toEqual([6000]);
  });
});
