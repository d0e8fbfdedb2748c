import { create, fromBinary, toBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { HeartbeatRequestSchema, HeartbeatResponseSchema, type ServingStatus } from "@maxine/sdk/gen/maxine/registry/v1/registry_pb";
import { describe, expect, it } from "vitest";
import type { BeatOutcome } from "../src/registry/registry.js";
import { decodeHeartbeatRequest, heartbeatFrame, type BeatsRequest } from "../src/wire/heartbeat-wire.js";
import { beatAckOf } from "../src/wire/convert.js";

// The hand-written HeartbeatResponse encoder must produce exactly
// protobuf-es's bytes (clients decode them with any protobuf library), and
// the hand-written HeartbeatRequest decoder must read what fromBinary reads.

const key = { namespace: "default", service: "payments", instanceId: "i-1" };

describe("encoded heartbeat answers", () => {
  it.each<[string, bigint, BeatOutcome[]]>([
    ["one renewed beat", 7n, [{ key, result: "RENEWED", expiresAt: 1_700_000_000_123 }]],
    ["sequence 0 (left out) and no beats", 0n, []],
    ["a deadline on a whole second (nanos left out)", 1n, [{ key, result: "RENEWED", expiresAt: 1_700_000_000_000 }]],
    ["unknown and invalid beats with messages", 300n, [
      { key, result: "UNKNOWN", message: "instance i-1 of service default/payments is not registered" },
      { key: undefined, result: "INVALID", message: "beats[1].key: required" },
      { key: { namespace: "", service: "", instanceId: "" }, result: "INVALID", message: "" },
    ]],
    ["unicode keys and a long message (two-byte lengths)", 2n ** 40n, [
      { key: { namespace: "nß", service: "süd-😀", instanceId: "x".repeat(200) }, result: "UNKNOWN", message: "ü".repeat(150) },
      { key, result: "RENEWED", expiresAt: 1 },
    ]],
    ["a sequence above 2^53 and at 2^64-1", 2n ** 64n - 1n, [{ key, result: "RENEWED", expiresAt: 1_700_000_000_999 }]],
    ["a sequence of 2^56 (eight-byte varint)", 2n ** 56n - 1n, []],
    ["a beat that registered its instance, beside a renewed one", 4n, [
      { key, result: "REGISTERED", expiresAt: 1_700_000_000_456 },
      { key: { ...key, instanceId: "i-2" }, result: "RENEWED", expiresAt: 1_700_000_000_457 },
    ]],
  ])("%s: byte for byte what protobuf-es writes", (_what, sequence, outcomes) => {
    const want = toBinary(HeartbeatResponseSchema, create(HeartbeatResponseSchema, { sequence, acks: outcomes.map(beatAckOf) }));
    const frame = heartbeatFrame(sequence, outcomes);
    expect(frame[0]).toBe(0);
    expect(frame.readUInt32BE(1)).toBe(want.length);
    expect(Buffer.from(frame.subarray(5)).toString("hex")).toBe(Buffer.from(want).toString("hex"));
    expect(fromBinary(HeartbeatResponseSchema, frame.subarray(5)).sequence).toBe(sequence);
  });

  it("many acks in one answer", () => {
    const outcomes: BeatOutcome[] = Array.from({ length: 100 }, (_, i) => ({ key: { ...key, instanceId: `i-${i}` }, result: "RENEWED", expiresAt: 1_700_000_000_000 + i }));
    const want = toBinary(HeartbeatResponseSchema, create(HeartbeatResponseSchema, { sequence: 9n, acks: outcomes.map(beatAckOf) }));
    expect(Buffer.from(heartbeatFrame(9n, outcomes).subarray(5)).equals(Buffer.from(want))).toBe(true);
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
    })),
  };
}

describe("decoded heartbeat requests", () => {
  const encode = (init: MessageInitShape<typeof HeartbeatRequestSchema>) => toBinary(HeartbeatRequestSchema, create(HeartbeatRequestSchema, init));
  it.each<[string, Uint8Array]>([
    ["one beat, as the SDKs send it", encode({ sequence: 12n, beats: [{ key }] })],
    ["an empty request", encode({})],
    ["status and load on every beat, several beats", encode({ sequence: 3n, beats: [{ key, status: 2, load: 0.75 }, { key: { ...key, instanceId: "i-2" }, status: 1, load: 0 }] })],
    ["a beat without a key, a key with empty fields", encode({ beats: [{}, { key: { namespace: "", service: "s", instanceId: "" } }] })],
    ["unicode strings", encode({ beats: [{ key: { namespace: "nß", service: "süd-😀", instanceId: "ü".repeat(100) } }] })],
    ["a sequence above 2^49 (read by fromBinary)", encode({ sequence: 2n ** 60n + 5n, beats: [{ key }] })],
    ["an unknown enum value", encode({ beats: [{ key, status: 99 as ServingStatus }] })],
    ["a negative enum value (ten-byte varint, read by fromBinary)", encode({ beats: [{ key, status: -1 as ServingStatus }] })],
    [
      "an unknown field (read by fromBinary)",
      new BinaryWriter().uint32((1 << 3) | WireType.Varint).uint64(4n).uint32((9 << 3) | WireType.LengthDelimited).string("future").finish(),
    ],
    [
      "the sequence twice (the last wins, read by fromBinary)",
      new BinaryWriter().uint32((1 << 3) | WireType.Varint).uint64(4n).uint32((1 << 3) | WireType.Varint).uint64(5n).finish(),
    ],
    [
      "a key's field twice (the last wins, read by fromBinary)",
      new BinaryWriter()
        .uint32((2 << 3) | WireType.LengthDelimited)
        .fork()
        .uint32((1 << 3) | WireType.LengthDelimited)
        .fork()
        .uint32((3 << 3) | WireType.LengthDelimited)
        .string("a")
        .uint32((3 << 3) | WireType.LengthDelimited)
        .string("b")
        .join()
        .join()
        .finish(),
    ],
  ])("%s: what fromBinary reads", (_what, bytes) => {
    expect(plain(decodeHeartbeatRequest(bytes))).toEqual(plain(fromBinary(HeartbeatRequestSchema, bytes)));
  });

  it("reads a stream's first beat, carrying its instance and lease TTL, with fromBinary", () => {
    const instance = { namespace: "default", service: "payments", instanceId: "i-1", host: "10.0.0.1", port: 8080, metadata: { a: "b" } };
    const decoded = decodeHeartbeatRequest(encode({ sequence: 1n, beats: [{ key, status: 1, instance, leaseTtl: { seconds: 30n } }] }));
    expect(decoded.beats[0]?.instance).toMatchObject(instance);
    expect(decoded.beats[0]?.leaseTtl?.seconds).toBe(30n);
  });

  it("reads what the SDKs send without protobuf-es (the fast path is taken)", () => {
    const decoded = decodeHeartbeatRequest(encode({ sequence: 12n, beats: [{ key, status: 1, load: 2.5 }] }));
    expect("$typeName" in decoded).toBe(false);
    expect(plain(decoded)).toEqual({ sequence: 12n, beats: [{ key, status: 1, load: 2.5 }] });
  });

  it.each<[string, Uint8Array]>([
    ["a truncated message", encode({ sequence: 1n, beats: [{ key }] }).subarray(0, 10)],
    ["invalid UTF-8 in a string", Uint8Array.from([0x12, 0x05, 0x0a, 0x03, 0x1a, 0x01, 0xff])],
    ["a length past the end", Uint8Array.from([0x12, 0x7f, 0x0a])],
  ])("%s: fails like fromBinary", (_what, bytes) => {
    expect(() => fromBinary(HeartbeatRequestSchema, bytes)).toThrow();
    expect(() => decodeHeartbeatRequest(bytes)).toThrow();
  });
});
