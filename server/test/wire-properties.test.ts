import { clone, create, createFileRegistry, fromBinary, isFieldSet, ScalarType, toBinary, toJsonString, type DescField, type DescMessage, type Message } from "@bufbuild/protobuf";
import { BinaryReader } from "@bufbuild/protobuf/wire";
import type { GenMessage } from "@bufbuild/protobuf/codegenv2";
import {
  durationFromMs,
  FieldDescriptorProto_Label,
  FieldDescriptorProto_Type,
  FileDescriptorProtoSchema,
  timestampFromMs,
} from "@bufbuild/protobuf/wkt";
import {
  DiscoverRequestSchema,
  DiscoverResponseSchema,
  HealthCheckSchema,
  HeartbeatRequestSchema,
  HeartbeatResponseSchema,
  InstanceSchema,
  OperatorStatus as OperatorStatusPb,
  RegisterResponseSchema,
  ServingStatus,
  WatchServicesResponseSchema,
  type Instance,
} from "@maxine/sdk/gen/maxine/registry/v1/registry_pb";
import { Code, ConnectError } from "@connectrpc/connect";
import { errorToJson } from "@connectrpc/connect/protocol-connect";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { InstanceRecord, LeaseState, OperatorStatus, Status } from "../src/domain/instance.js";
import type { CheckKind, CheckStatus, Health } from "../src/domain/health.js";
import type { BeatOutcome, Discovered, Registered } from "../src/registry/registry.js";
import type { WatchEventItem } from "../src/watch/items.js";
import { beatAckOf, instanceInputOf, instanceToPb, listedInstanceToPb, operatorStatusOf, watchItemToPb } from "../src/wire/convert.js";
import { discoverBinary, discoverJson, encodeInstance, instanceJson, listedInstanceBytes, listedInstanceJson, registerBinary, registerJson, snapshotFrame, watchEventFrame } from "../src/wire/encoded.js";
import { decodeHeartbeatRequest, heartbeatFrame, type BeatsRequest } from "../src/wire/heartbeat-wire.js";
import { encoded, string, strings, uint64 } from "../src/wire/schema-columns.js";
import { instanceFields } from "../src/wire/instance-fields.js";
import { MessageWriter, perAnswer, Sizes, suffixWriter, tailWriter, type Table } from "../src/wire/schema-writer.js";
import { splicedBytes } from "../src/wire/schema-columns.js";
import { errorJson } from "../src/transport/protocols.js";

// Every message the server writes without protobuf-es, for random values,
// must be byte for byte what protobuf-es writes for the same message built
// with create() and the conversions in convert.ts; the heartbeat reader
// must read what fromBinary reads, and fail where it fails.

const runs = { numRuns: 300 };

const text = fc.oneof(
  fc.string(),
  fc.constant(""),
  fc.string({ unit: "grapheme", maxLength: 20 }),
  fc.string({ unit: "binary", maxLength: 20 }),
  fc.string({ unit: fc.constantFrom("a", "ü", "😀", "\uD800", "\uDC00", "\u0000", '"'), maxLength: 20 }), // lone surrogates too
  fc.string({ minLength: 60, maxLength: 200 }), // past the short-string path, two-byte lengths
);
const safe = fc.oneof(fc.nat({ max: 300 }), fc.integer({ min: 0, max: 2 ** 32 }), fc.maxSafeNat());
const ms = fc.oneof(fc.integer({ min: 0, max: 2 ** 42 }), fc.integer({ min: -(2 ** 40), max: 0 }), fc.constantFrom(0, 1000, 1_700_000_000_000));
const status = fc.constantFrom<Status>("SERVING", "NOT_SERVING", "DRAINING");

// an active check and its result, or none (most instances): every kind, any values the writer must carry
const duration = fc.oneof(fc.integer({ min: 1, max: 3_600_000 }), fc.constantFrom(100, 1000, 2500));
const health: fc.Arbitrary<Health | undefined> = fc.option(
  fc.record({
    check: fc.record({
      kind: fc.constantFrom<CheckKind>("HTTP", "TCP", "GRPC"),
      port: fc.integer({ min: 0, max: 65535 }),
      intervalMs: duration,
      timeoutMs: duration,
      healthyThreshold: fc.integer({ min: 1, max: 100 }),
      unhealthyThreshold: fc.integer({ min: 1, max: 100 }),
      deregisterAfterMs: fc.oneof(fc.constant(0), duration),
      httpPath: text,
      httpMethod: text,
      statusMin: fc.integer({ min: 0, max: 599 }),
      statusMax: fc.integer({ min: 0, max: 599 }),
      grpcService: text,
    }),
    result: fc.record({ status: fc.constantFrom<CheckStatus>("PENDING", "PASSING", "FAILING"), message: text, changedAt: ms }),
  }),
  { nil: undefined },
);

const record: fc.Arbitrary<InstanceRecord> = fc.record({
  health,
  owner: text,
  namespace: text,
  service: text,
  instanceId: text,
  host: text,
  port: fc.integer({ min: 0, max: 65535 }),
  version: text,
  zone: text,
  tags: fc.array(text, { maxLength: 5 }),
  metadata: fc.dictionary(text.filter((k) => k !== "__proto__"), text, { maxKeys: 5 }),
  weight: fc.oneof(fc.integer({ min: 0, max: 1000 }), fc.integer({ min: 0, max: 2 ** 32 - 1 })),
  status,
  operatorStatus: fc.constantFrom<OperatorStatus>("NONE", "DRAINING", "DISABLED"),
  registeredAt: ms,
  updatedAt: ms,
  createRevision: safe,
  modRevision: safe,
});

// a lease's state as Discover include_all writes it: any double (NaN, -0, infinities too: the writer must not care), any time, or unknown
const lease: fc.Arbitrary<LeaseState> = fc.record({
  load: fc.option(fc.oneof(fc.double(), fc.constantFrom(0, -0, 7.2, 1e-9, Number.MAX_VALUE)), { nil: undefined }),
  expiresAt: fc.option(ms, { nil: undefined }),
});

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

describe("wire properties: what the server writes is what protobuf-es writes", () => {
  it("Instance, as protobuf and as JSON", () => {
    fc.assert(
      fc.property(record, (r) => {
        expect(hex(encodeInstance(r))).toBe(hex(toBinary(InstanceSchema, instanceToPb(r))));
        expect(instanceJson(r)).toBe(toJsonString(InstanceSchema, instanceToPb(r)));
      }),
      runs,
    );
  });

  it("an Instance with its live lease state (Discover include_all), as protobuf and as JSON", () => {
    fc.assert(
      fc.property(record, lease, (r, l) => {
        expect(hex(listedInstanceBytes(r, l))).toBe(hex(toBinary(InstanceSchema, listedInstanceToPb(r, l))));
        expect(listedInstanceJson(r, l)).toBe(toJsonString(InstanceSchema, listedInstanceToPb(r, l)));
      }),
      runs,
    );
  });

  it("DiscoverResponse, as protobuf and as JSON", () => {
    const discovered = fc
      .record({ chosen: fc.option(record, { nil: undefined }), listed: fc.array(fc.tuple(record, lease), { maxLength: 4 }), revision: safe })
      .map(({ chosen, listed, revision }): Discovered => ({ chosen, all: listed.map(([r]) => r), leases: listed.map(([, l]) => l), revision }));
    fc.assert(
      fc.property(discovered, text, (d: Discovered, registryId) => {
        const msg = create(DiscoverResponseSchema, {
          instance: d.chosen === undefined ? undefined : instanceToPb(d.chosen),
          instances: d.all.map((r, i) => listedInstanceToPb(r, d.leases[i]!)),
          revision: BigInt(d.revision),
          registryId,
        });
        expect(hex(discoverBinary(d, registryId))).toBe(hex(toBinary(DiscoverResponseSchema, msg)));
        expect(discoverJson(d, registryId)).toBe(toJsonString(DiscoverResponseSchema, msg));
      }),
      runs,
    );
  });

  it("RegisterResponse, as protobuf and as JSON", () => {
    const registered = fc.record({
      instance: record,
      ttlMs: fc.option(fc.oneof(fc.integer({ min: 0, max: 10 * 86_400_000 }), fc.integer({ min: -(2 ** 40), max: 2 ** 40 }), fc.constantFrom(0, 1, 999, 1000, 1500, -1, -999, -1000, -1500)), { nil: undefined }),
      expiresAt: fc.option(ms, { nil: undefined }),
      revision: safe,
    });
    fc.assert(
      fc.property(registered, text, (r: Registered, registryId) => {
        const msg = create(RegisterResponseSchema, {
          instance: instanceToPb(r.instance),
          leaseTtl: r.ttlMs === undefined ? undefined : durationFromMs(r.ttlMs),
          leaseExpiresAt: r.expiresAt === undefined ? undefined : timestampFromMs(r.expiresAt),
          revision: BigInt(r.revision),
          registryId,
        });
        expect(hex(registerBinary(r, registryId))).toBe(hex(toBinary(RegisterResponseSchema, msg)));
        expect(registerJson(r, registryId)).toBe(toJsonString(RegisterResponseSchema, msg));
      }),
      runs,
    );
  });

  const payload = (frame: Buffer) => {
    expect(frame[0]).toBe(0);
    expect(frame.readUInt32BE(1)).toBe(frame.length - 5);
    return hex(frame.subarray(5));
  };

  it("WatchServicesResponse frames: an event", () => {
    const event = fc.record({
      kind: fc.constant("event" as const),
      type: fc.constantFrom("ADDED" as const, "UPDATED" as const, "REMOVED" as const),
      instance: record,
      revision: safe,
      removalReason: fc.constantFrom(undefined, "DEREGISTERED" as const, "LEASE_EXPIRED" as const, "STREAM_CLOSED" as const, "FILTERED" as const),
    });
    fc.assert(
      fc.property(event, (item: WatchEventItem) => {
        expect(payload(watchEventFrame(item))).toBe(hex(toBinary(WatchServicesResponseSchema, watchItemToPb(item))));
      }),
      runs,
    );
  });

  it("WatchServicesResponse frames: a snapshot chunk", () => {
    fc.assert(
      fc.property(fc.array(record, { maxLength: 6 }), (instances) => {
        const want = toBinary(WatchServicesResponseSchema, watchItemToPb({ kind: "snapshot", instances }));
        expect(payload(snapshotFrame(instances))).toBe(hex(want));
      }),
      runs,
    );
  });

  it("WatchServicesResponse frames: a differential snapshot chunk with removals", () => {
    const name = fc.string({ unit: fc.constantFrom(..."abcxyz-._:0é"), maxLength: 12 });
    const key = fc.record({ namespace: name, service: name, instanceId: name });
    fc.assert(
      fc.property(fc.array(record, { maxLength: 4 }), fc.array(key, { maxLength: 6 }), (instances, removed) => {
        const want = toBinary(WatchServicesResponseSchema, watchItemToPb({ kind: "snapshot", instances, removed }));
        expect(payload(snapshotFrame(instances, removed))).toBe(hex(want));
      }),
      runs,
    );
  });

  it("HeartbeatResponse frames", () => {
    const key = fc.record({ namespace: text, service: text, instanceId: text });
    const outcome: fc.Arbitrary<BeatOutcome> = fc.oneof(
      fc.record({ key, result: fc.constantFrom("RENEWED" as const, "REGISTERED" as const), expiresAt: ms }),
      fc.record({ key, result: fc.constant("UNKNOWN" as const), message: text }),
      fc.record({ key: fc.option(key, { nil: undefined }), result: fc.constant("INVALID" as const), message: text }),
    );
    const sequence = fc.oneof(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.bigInt({ min: 0n, max: 300n }));
    fc.assert(
      fc.property(sequence, fc.array(outcome, { maxLength: 6 }), (seq, outcomes) => {
        const want = toBinary(HeartbeatResponseSchema, create(HeartbeatResponseSchema, { sequence: seq, acks: outcomes.map(beatAckOf) }));
        expect(payload(heartbeatFrame(seq, outcomes))).toBe(hex(want));
      }),
      runs,
    );
  });
});

/** plain keeps what answering a request reads, from either decoder. */
function plain(r: BeatsRequest) {
  return {
    sequence: r.sequence,
    beats: r.beats.map((b) => ({
      key: b.key === undefined ? undefined : { namespace: b.key.namespace, service: b.key.service, instanceId: b.key.instanceId },
      status: b.status,
      load: b.load,
      instance: b.instance === undefined ? undefined : toJsonString(InstanceSchema, b.instance),
      leaseTtl: b.leaseTtl === undefined ? undefined : `${b.leaseTtl.seconds}s${b.leaseTtl.nanos}`,
    })),
  };
}

/** outcomeOf decodes bytes with decode, as a value or the fact that it threw. */
function outcomeOf(decode: () => BeatsRequest): { threw: true } | { threw: false; value: ReturnType<typeof plain> } {
  try {
    return { threw: false, value: plain(decode()) };
  } catch {
    return { threw: true };
  }
}

describe("wire properties: the heartbeat reader reads what fromBinary reads", () => {
  const request = fc
    .record({
      sequence: fc.oneof(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.bigInt({ min: 0n, max: 2n ** 49n })),
      beats: fc.array(
        fc.record(
          {
            key: fc.record({ namespace: text, service: text, instanceId: text }),
            status: fc.oneof(fc.integer({ min: 0, max: 4 }), fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 })),
            load: fc.double(),
            instance: record.map(instanceToPb),
            leaseTtl: fc.integer({ min: 0, max: 86_400_000 }).map(durationFromMs),
          },
          { requiredKeys: [] },
        ),
        { maxLength: 4 },
      ),
    })
    .map(({ sequence, beats }) =>
      toBinary(HeartbeatRequestSchema, create(HeartbeatRequestSchema, { sequence, beats: beats.map((b) => ({ ...b, status: b.status as ServingStatus })) })),
    );

  it("random requests encoded by protobuf-es", () => {
    fc.assert(
      fc.property(request, (bytes) => {
        expect(plain(decodeHeartbeatRequest(bytes))).toEqual(plain(fromBinary(HeartbeatRequestSchema, bytes)));
      }),
      runs,
    );
  });

  it("random bytes, and requests with a byte changed or cut short: the same message, or both throw", () => {
    const damaged = fc.tuple(request, fc.nat(), fc.integer({ min: 0, max: 255 }), fc.boolean()).map(([bytes, at, byte, cut]) => {
      if (bytes.length === 0) return bytes;
      const copy = Uint8Array.from(bytes);
      if (cut) return copy.subarray(0, at % bytes.length);
      copy[at % copy.length] = byte;
      return copy;
    });
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 64 }), damaged), (bytes) => {
        expect(outcomeOf(() => decodeHeartbeatRequest(bytes))).toEqual(outcomeOf(() => fromBinary(HeartbeatRequestSchema, bytes)));
      }),
      { numRuns: 500 },
    );
  });
});

// A fully populated Instance built from the schema itself: a field added to
// the proto is covered here with no change to this test.

function valueFor(field: DescField): unknown {
  const n = field.number;
  switch (field.fieldKind) {
    case "scalar":
      return scalarFor(field.scalar, n);
    case "enum":
      return field.enum.values.find((v) => v.number !== 0)!.number;
    case "list":
      return field.listKind === "scalar" ? [scalarFor(field.scalar, n), scalarFor(field.scalar, n + 1)] : field.listKind === "enum" ? [1] : [populated(field.message)];
    case "map":
      return { [String(scalarFor(field.mapKey, n))]: field.mapKind === "scalar" ? scalarFor(field.scalar, n) : field.mapKind === "enum" ? 1 : populated(field.message) };
    case "message":
      return populated(field.message);
  }
}

function scalarFor(t: ScalarType, n: number): unknown {
  switch (t) {
    case ScalarType.STRING:
      return `v${n}-ü`;
    case ScalarType.BYTES:
      return Uint8Array.of(n);
    case ScalarType.BOOL:
      return true;
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return n + 0.5;
    case ScalarType.INT64:
    case ScalarType.UINT64:
    case ScalarType.SINT64:
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
      return BigInt(1000 + n);
    case ScalarType.INT32:
      return n * 1_000_000; // Timestamp.nanos: a whole millisecond, as records keep time
    default:
      return 1000 + n;
  }
}

function populated<M extends Message>(schema: DescMessage): M {
  const init: Record<string, unknown> = {};
  for (const f of schema.fields) init[f.localName] = valueFor(f);
  return create(schema, init) as M;
}

/** recordOf is the stored record whose Instance is i: the spec as a client sends it, and what the server sets. */
function recordOf(i: Instance): InstanceRecord {
  const { healthCheck: _, ...spec } = instanceInputOf(i)!;
  const ms = (t: typeof i.registeredAt) => Number(t!.seconds) * 1000 + t!.nanos / 1_000_000;
  const c = i.healthCheck!;
  const d = (t: typeof c.interval) => Number(t!.seconds) * 1000 + t!.nanos / 1_000_000;
  return {
    ...spec,
    health: {
      check: {
        kind: "HTTP",
        port: c.port,
        intervalMs: d(c.interval),
        timeoutMs: d(c.timeout),
        healthyThreshold: c.healthyThreshold,
        unhealthyThreshold: c.unhealthyThreshold,
        deregisterAfterMs: d(c.deregisterAfter),
        httpPath: c.http!.path,
        httpMethod: c.http!.method,
        statusMin: c.http!.expectedStatusMin,
        statusMax: c.http!.expectedStatusMax,
        grpcService: "",
      },
      result: { status: "FAILING", message: i.checkResult!.message, changedAt: ms(i.checkResult!.changedAt) },
    },
    status: spec.status!,
    tags: [...spec.tags],
    metadata: { ...spec.metadata },
    owner: i.owner,
    operatorStatus: operatorStatusOf(i.operatorStatus)!,
    registeredAt: ms(i.registeredAt),
    updatedAt: ms(i.updatedAt),
    createRevision: Number(i.createRevision),
    modRevision: Number(i.modRevision),
  };
}

/** leaseOf is the lease state whose per-answer fields are i's. */
function leaseOf(i: Instance): LeaseState {
  const t = i.leaseExpiresAt;
  return { load: i.reportedLoad, expiresAt: t === undefined ? undefined : Number(t.seconds) * 1000 + t.nanos / 1_000_000 };
}

/** fieldNumbers lists the field numbers at the top level of an encoded message. */
function fieldNumbers(bytes: Uint8Array): Set<number> {
  const r = new BinaryReader(bytes);
  const seen = new Set<number>();
  while (r.pos < r.len) {
    const [no, wireType] = r.tag();
    seen.add(no);
    r.skip(wireType, no);
  }
  return seen;
}

describe("wire properties: every Instance field", () => {
  const full = populated<Instance>(InstanceSchema);
  // status on the wire is the effective one: with an operator's override set (DRAINING, the first non-zero value), the override's
  expect(full.operatorStatus).toBe(OperatorStatusPb.DRAINING);
  full.status = ServingStatus.DRAINING;
  // a check has one kind (http here: the kinds are exclusive), and its result's status is the third value, FAILING
  full.healthCheck!.tcp = undefined;
  full.healthCheck!.grpc = undefined;
  full.checkResult!.status = 3;
  const r = recordOf(full);
  const l = leaseOf(full);

  it("a populated Instance has every field of the schema set (the test builds what it means to check)", () => {
    for (const f of InstanceSchema.fields) expect(isFieldSet(full, f), f.name).toBe(true);
  });

  it("a fully populated record with its lease state round-trips: the cached bytes and the per-answer suffix write every field, as toBinary does", () => {
    const bytes = listedInstanceBytes(r, l);
    expect(hex(bytes)).toBe(hex(toBinary(InstanceSchema, full)));
    // the cached part alone is the Instance without the per-answer fields
    const cachedOnly = clone(InstanceSchema, full);
    cachedOnly.reportedLoad = undefined;
    cachedOnly.leaseExpiresAt = undefined;
    expect(hex(encodeInstance(r))).toBe(hex(toBinary(InstanceSchema, cachedOnly)));
    const decoded = fromBinary(InstanceSchema, bytes);
    for (const f of InstanceSchema.fields) expect(isFieldSet(decoded, f), `${f.name} written`).toBe(true);
    expect(decoded).toEqual(full);
    const numbers = fieldNumbers(bytes);
    for (const f of InstanceSchema.fields) expect(numbers.has(f.number), `field ${f.number} (${f.name}) in the bytes`).toBe(true);
  });

  it("the JSON mapping of a fully populated record with its lease state names every field, as toJsonString does", () => {
    expect(listedInstanceJson(r, l)).toBe(toJsonString(InstanceSchema, full));
    const json = JSON.parse(listedInstanceJson(r, l)) as Record<string, unknown>;
    for (const f of InstanceSchema.fields) expect(json, f.jsonName).toHaveProperty([f.jsonName]);
  });
});

describe("wire properties: field numbers from 16 up (multi-byte tags)", () => {
  // A message no proto file of ours has yet: fields 16, 2047, 2048 and
  // 2^29-1, the largest number protobuf allows.
  const file = create(FileDescriptorProtoSchema, {
    name: "wide.proto",
    package: "test",
    syntax: "proto3",
    messageType: [
      {
        name: "Wide",
        field: [
          { name: "a", number: 16, type: FieldDescriptorProto_Type.STRING, label: FieldDescriptorProto_Label.OPTIONAL, jsonName: "a" },
          { name: "b", number: 2047, type: FieldDescriptorProto_Type.UINT64, label: FieldDescriptorProto_Label.OPTIONAL, jsonName: "b" },
          { name: "c", number: 2048, type: FieldDescriptorProto_Type.STRING, label: FieldDescriptorProto_Label.REPEATED, jsonName: "c" },
          { name: "d", number: 2 ** 29 - 1, type: FieldDescriptorProto_Type.STRING, label: FieldDescriptorProto_Label.OPTIONAL, jsonName: "d" },
        ],
      },
    ],
  });
  type Wide = Message<"test.Wide"> & { a: string; b: bigint; c: string[]; d: string };
  const schema = createFileRegistry(file, () => undefined).getMessage("test.Wide") as unknown as GenMessage<Wide>;
  type Source = { a: string; b: bigint; c: string[]; d: string };
  const table: Table<Wide, Source> = { a: string((s) => s.a), b: uint64((s) => s.b), c: strings((s) => s.c), d: string((s) => s.d) };
  const writer = new MessageWriter(schema, table);

  it("writes what protobuf-es writes", () => {
    const source = fc.record({ a: text, b: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), c: fc.array(text, { maxLength: 3 }), d: text });
    fc.assert(
      fc.property(source, (s) => {
        expect(hex(writer.encode(s))).toBe(hex(toBinary(schema, create(schema, s))));
        expect(writer.json(s)).toBe(toJsonString(schema, create(schema, s)));
      }),
      runs,
    );
  });

  it("a writer with a column of cached protobuf bytes and no JSON for it says so when asked for JSON", () => {
    const bytesOnly = new MessageWriter(InstanceSchema as GenMessage<Instance>, { ...instanceFields, healthCheck: encoded(HealthCheckSchema, () => undefined) } as unknown as Table<Instance, InstanceRecord>);
    expect(() => bytesOnly.json({} as InstanceRecord)).toThrow("maxine.registry.v1.Instance.health_check: its column writes protobuf only, no JSON");
  });

  it("refuses a table whose column does not fit its field", () => {
    const wrong = { ...table, b: string((s: Source) => s.a) } as unknown as Table<Wide, Source>;
    expect(() => new MessageWriter(schema, wrong)).toThrow("test.Wide.b: the column writes a string, the schema says scalar UINT64 (field 2047)");
    const { d: _, ...missing } = table;
    expect(() => new MessageWriter(schema, missing as Table<Wide, Source>)).toThrow("test.Wide.d: no column in the table");
  });

  it("splices per-answer fields into the cached bytes before the cached fields numbered above them, and only the fields marked perAnswer", () => {
    const source = fc.record({ a: text, b: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), c: fc.array(text, { maxLength: 3 }), d: text });
    // last (d): appended after the cached bytes
    const cached: Table<Wide, Source> = { ...table, d: perAnswer() };
    const suffix = suffixWriter(schema, cached, { d: string((s: Source) => s.d) });
    const head = new MessageWriter(schema, cached);
    fc.assert(
      fc.property(source, (s) => {
        expect(hex(Buffer.concat([head.encode(s), suffix.encode(s)]))).toBe(hex(toBinary(schema, create(schema, s))));
        expect(tailWriter(schema, cached).size(s, new Sizes())).toBe(0);
      }),
      runs,
    );
    // first (a, field 16): spliced before the cached 2047, 2048 and 2^29-1, which the tail writer measures
    const early: Table<Wide, Source> = { ...table, a: perAnswer() };
    const earlySuffix = suffixWriter(schema, early, { a: string((s: Source) => s.a) });
    const earlyCached = new MessageWriter(schema, early);
    const tail = tailWriter(schema, early);
    fc.assert(
      fc.property(source, (s) => {
        const spliced = splicedBytes(earlySuffix, { cached: earlyCached.encode(s), suffix: s, tail: tail.size(s, new Sizes()) });
        expect(hex(spliced)).toBe(hex(toBinary(schema, create(schema, s))));
      }),
      runs,
    );
    // per-answer fields with a cached one between them: no splice keeps the order
    expect(() => suffixWriter(schema, { ...table, a: perAnswer(), d: perAnswer() }, { a: string((s: Source) => s.a), d: string((s: Source) => s.d) })).toThrow(
      "test.Wide: cached field 2047 lies between per-answer fields 16 and 536870911;",
    );
    expect(() => suffixWriter(schema, cached, {})).toThrow("test.Wide.d: marked perAnswer in the cached table, no column in the suffix");
    expect(() => suffixWriter(schema, cached, { d: string((s: Source) => s.d), b: uint64((s: Source) => s.b) })).toThrow(
      "test.Wide.b: in the suffix but not marked perAnswer in the cached table",
    );
  });
});

describe("Connect's JSON error", () => {
  it("errorJson writes what connect-es's errorToJson writes, for every code and any message, with and without details", () => {
    const codes = Object.values(Code).filter((c): c is Code => typeof c === "number");
    fc.assert(
      fc.property(fc.constantFrom(...codes), fc.string(), fc.boolean(), (code, message, withDetail) => {
        const err = new ConnectError(message, code);
        if (withDetail) err.details.push({ desc: DiscoverRequestSchema, value: { service: message } });
        expect(JSON.stringify(errorJson(err))).toBe(JSON.stringify(errorToJson(err, undefined)));
      }),
    );
  });
});
