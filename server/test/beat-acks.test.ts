import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { HeartbeatResponseSchema } from "@maxine/sdk/gen/maxine/registry/v1/registry_pb";
import { describe, expect, it } from "vitest";
import type { BeatOutcome } from "../src/registry/registry.js";
import { heartbeatFrame } from "../src/transport/beat-acks.js";
import { beatAckOf } from "../src/transport/convert.js";

// The hand-written HeartbeatResponse encoder must produce exactly
// protobuf-es's bytes: clients decode them with any protobuf library.

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
