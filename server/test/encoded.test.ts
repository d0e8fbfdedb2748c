import { create, toBinary, toJsonString } from "@bufbuild/protobuf";
import { DiscoverResponseSchema, InstanceSchema, RegisterResponseSchema, WatchServicesResponseSchema } from "@maxine/sdk/gen/maxine/registry/v1/registry_pb";
import { durationFromMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import type { InstanceRecord } from "../src/domain/instance.js";
import type { Discovered, Registered } from "../src/registry/registry.js";
import type { WatchEventItem } from "../src/watch/items.js";
import { instanceToPb, listedInstanceToPb, watchItemToPb } from "../src/wire/convert.js";
import { discoverAnswer, discoverBinary, discoverJson, encodeInstance, registerBinary, watchEventFrame } from "../src/wire/encoded.js";

// The hand-written Discover encoders must produce exactly protobuf-es's
// bytes and text: callers decode them with any protobuf library.

function record(id: string, extra: Partial<InstanceRecord> = {}): InstanceRecord {
  return {
    namespace: "default",
    service: "enc",
    instanceId: id,
    owner: "anonymous",
    operatorStatus: "NONE",
    health: undefined,
    host: "10.0.0.1",
    port: 8080,
    version: "",
    zone: "",
    tags: [],
    metadata: {},
    weight: 100,
    status: "SERVING",
    registeredAt: 1_700_000_000_123,
    updatedAt: 1_700_000_000_456,
    createRevision: 1,
    modRevision: 2,
    ...extra,
  };
}

function expected(d: Discovered, registryId: string) {
  const msg = create(DiscoverResponseSchema, {
    instance: d.chosen === undefined ? undefined : instanceToPb(d.chosen),
    instances: d.all.map((r, i) => listedInstanceToPb(r, d.leases[i]!)),
    revision: BigInt(d.revision),
    registryId,
  });
  return { binary: Buffer.from(toBinary(DiscoverResponseSchema, msg)), json: toJsonString(DiscoverResponseSchema, msg) };
}

describe("encoded Discover answers", () => {
  const rich = record("rich", {
    version: "1.2.3",
    zone: "eu-1a",
    tags: ["a", "ü-tag"],
    metadata: { "k\"quote": "v\\slash", emoji: "😀", long: "x".repeat(300) },
    status: "DRAINING",
    weight: 7,
    modRevision: 2 ** 40,
  });
  it.each<[string, Discovered, string]>([
    ["a chosen instance", { chosen: record("a"), all: [], leases: [], revision: 5 }, "0123456789abcdef"],
    ["revision 0 and no registry id (both left out)", { chosen: record("a"), all: [], leases: [], revision: 0 }, ""],
    ["a revision above 2^32 and 2^49", { chosen: record("a"), all: [], leases: [], revision: 2 ** 49 + 3 }, "r"],
    [
      "every instance with its lease state (known, load only, expiry only, unknown), unicode and escapes",
      {
        chosen: rich,
        all: [record("a"), rich, record("z", { status: "NOT_SERVING" }), record("zz")],
        leases: [
          { load: 7.25, expiresAt: 1_700_000_010_500 },
          { load: 0, expiresAt: undefined },
          { load: undefined, expiresAt: 1_700_000_010_000 },
          { load: undefined, expiresAt: undefined },
        ],
        revision: 300,
      },
      "id-ü",
    ],
    [
      "include_all with nothing SERVING: no chosen instance",
      { chosen: undefined, all: [record("d", { status: "DRAINING" })], leases: [{ load: 1e-9, expiresAt: 1_700_000_000_000 }], revision: 9 },
      "r",
    ],
    ["a 128-byte length (two-byte varint)", { chosen: record("a", { metadata: { m: "y".repeat(100) } }), all: [], leases: [], revision: 127 }, "x"],
  ])("%s: byte for byte what protobuf-es writes", (_what, d, id) => {
    const want = expected(d, id);
    expect(discoverBinary(d, id).equals(want.binary)).toBe(true);
    expect(discoverJson(d, id)).toBe(want.json);
  });

  it("keeps a one-instance answer per chosen record only while the revision and registry id hold", () => {
    const chosen = record("kept");
    for (const format of ["json", "binary"] as const) {
      const bytesOf = (d: Discovered, id: string) => (format === "json" ? Buffer.from(expected(d, id).json) : expected(d, id).binary);
      const first = discoverAnswer({ chosen, all: [], leases: [], revision: 5 }, "id-1", format);
      expect(first.equals(bytesOf({ chosen, all: [], leases: [], revision: 5 }, "id-1"))).toBe(true);
      expect(discoverAnswer({ chosen, all: [], leases: [], revision: 5 }, "id-1", format)).toBe(first); // kept
      const moved = discoverAnswer({ chosen, all: [], leases: [], revision: 6 }, "id-1", format);
      expect(moved.equals(bytesOf({ chosen, all: [], leases: [], revision: 6 }, "id-1"))).toBe(true);
      const otherRegistry = discoverAnswer({ chosen, all: [], leases: [], revision: 6 }, "id-2", format);
      expect(otherRegistry.equals(bytesOf({ chosen, all: [], leases: [], revision: 6 }, "id-2"))).toBe(true);
      const all = discoverAnswer({ chosen, all: [chosen], leases: [{ load: 3, expiresAt: 1_700_000_000_000 }], revision: 6 }, "id-2", format);
      expect(all.equals(bytesOf({ chosen, all: [chosen], leases: [{ load: 3, expiresAt: 1_700_000_000_000 }], revision: 6 }, "id-2"))).toBe(true);
    }
  });
});

describe("encoded instances", () => {
  it.each<[string, InstanceRecord]>([
    ["a minimal record", record("a")],
    [
      "every field, unicode, escapes, empty tag and metadata value",
      record("rich", {
        namespace: "ns-ü",
        version: "1.2.3",
        zone: "eu-1a",
        tags: ["a", "", "ü-tag", "😀"],
        metadata: { "k\"quote": "v\\slash", empty: "", "": "no key", emoji: "😀", long: "x".repeat(300) },
        status: "DRAINING",
        weight: 7,
        port: 65535,
      }),
    ],
    ["integer-like metadata keys (JavaScript orders them first)", record("n", { metadata: { b: "1", "10": "x", "2": "y", a: "z" } })],
    ["zero weight, port and timestamps, NOT_SERVING", record("z", { weight: 0, port: 0, registeredAt: 0, updatedAt: 1000, status: "NOT_SERVING" })],
    ["revisions above 2^32 and 2^49", record("r", { createRevision: 2 ** 33, modRevision: 2 ** 49 + 1 })],
    ["a record over 128 bytes long in one field", record("l", { host: "h".repeat(200) })],
  ])("%s: byte for byte what protobuf-es writes", (_what, r) => {
    const want = Buffer.from(toBinary(InstanceSchema, instanceToPb(r)));
    expect(encodeInstance(r).toString("hex")).toBe(want.toString("hex"));
  });
});

describe("encoded Register answers", () => {
  it.each<[string, Registered, string]>([
    ["a 10-s lease", { instance: record("a"), ttlMs: 10_000, expiresAt: 1_700_000_010_123, revision: 42 }, "0123456789abcdef"],
    ["a 1.5-s lease, revision 0 and no registry id (left out)", { instance: record("b"), ttlMs: 1500, expiresAt: 1_700_000_001_500, revision: 0 }, ""],
    ["an instance with a check: no lease", { instance: record("h"), ttlMs: undefined, expiresAt: undefined, revision: 3 }, "id"],
    ["an hour's lease and a revision above 2^32", { instance: record("c", { tags: ["x"] }), ttlMs: 3_600_000, expiresAt: 1_700_003_600_000, revision: 2 ** 40 }, "id-ü"],
  ])("%s: byte for byte what protobuf-es writes", (_what, r, id) => {
    const msg = create(RegisterResponseSchema, {
      instance: instanceToPb(r.instance),
      leaseTtl: r.ttlMs === undefined ? undefined : durationFromMs(r.ttlMs),
      leaseExpiresAt: r.expiresAt === undefined ? undefined : timestampFromMs(r.expiresAt),
      revision: BigInt(r.revision),
      registryId: id,
    });
    expect(registerBinary(r, id).toString("hex")).toBe(Buffer.from(toBinary(RegisterResponseSchema, msg)).toString("hex"));
  });
});

describe("encoded watch events", () => {
  const event = (over: Partial<WatchEventItem>): WatchEventItem => ({ kind: "event", type: "ADDED", instance: record("w"), revision: 7, removalReason: undefined, ...over });
  it.each<[string, WatchEventItem]>([
    ["ADDED", event({})],
    ["UPDATED at a revision above 2^32", event({ type: "UPDATED", revision: 2 ** 40 + 3 })],
    ["REMOVED, lease expired", event({ type: "REMOVED", removalReason: "LEASE_EXPIRED" })],
    ["REMOVED, filtered", event({ type: "REMOVED", removalReason: "FILTERED", revision: 1 })],
    ["an instance over 128 bytes (two-byte lengths)", event({ instance: record("x", { host: "h".repeat(300) }) })],
  ])("%s: one gRPC frame, byte for byte what protobuf-es writes", (_what, item) => {
    const want = Buffer.from(toBinary(WatchServicesResponseSchema, watchItemToPb(item)));
    const frame = watchEventFrame(item);
    expect(frame[0]).toBe(0);
    expect(frame.readUInt32BE(1)).toBe(want.length);
    expect(frame.subarray(5).toString("hex")).toBe(want.toString("hex"));
  });
});
