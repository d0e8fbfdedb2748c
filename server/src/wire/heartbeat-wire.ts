import { isUtf8 } from "node:buffer";
import { fromBinary, ScalarType, type DescField, type DescMessage } from "@bufbuild/protobuf";
import type { Duration } from "@bufbuild/protobuf/wkt";
import {
  BeatAckSchema,
  BeatResultSchema,
  BeatSchema,
  HeartbeatRequestSchema,
  HeartbeatResponseSchema,
  InstanceKeySchema,
  BeatResult,
  type BeatAck,
  type HeartbeatResponse,
  type Instance,
  type InstanceKey as InstanceKeyPb,
} from "@maxine/sdk/gen/maxine/registry/v1/registry_pb";
import type { InstanceKey } from "../domain/instance.js";
import type { BeatOutcome } from "../registry/registry.js";
import { tagValue, WIRE_BIT64, WIRE_LENGTH_DELIMITED, WIRE_VARINT } from "./proto-write.js";
import { enumOf, message, messages, string, timestampMs, uint64 } from "./schema-columns.js";
import { fieldNamed, MessageWriter } from "./schema-writer.js";

// Heartbeat messages on the wire, without protobuf-es's reflection.
// HeartbeatRequest and HeartbeatResponse are what a server holding tens of
// thousands of heartbeat streams reads and writes most often (one each per
// beat), and protobuf-es (reflection, a message object per field, a
// TextEncoder per string) cost more than the rest of the beat.
// heartbeatFrame writes the answer's gRPC frame in one buffer with writers
// compiled from the schema (schema-writer.ts), exactly as toBinary writes
// the message; decodeHeartbeatRequest reads the request as clients write it,
// with tags taken from the schema, and hands anything else (unknown or
// repeated fields, invalid UTF-8) to fromBinary.
// test/heartbeat-wire.test.ts and test/wire-properties.test.ts check both
// against protobuf-es.

const resultToPb: Record<BeatOutcome["result"], BeatResult> = {
  RENEWED: BeatResult.RENEWED,
  UNKNOWN: BeatResult.UNKNOWN,
  INVALID: BeatResult.INVALID,
  REGISTERED: BeatResult.REGISTERED,
  PERMISSION_DENIED: BeatResult.PERMISSION_DENIED,
};

const keyWriter = new MessageWriter<InstanceKeyPb, InstanceKey>(InstanceKeySchema, {
  namespace: string((k) => k.namespace),
  service: string((k) => k.service),
  instanceId: string((k) => k.instanceId),
});

const ackWriter = new MessageWriter<BeatAck, BeatOutcome>(BeatAckSchema, {
  key: message(keyWriter, (o) => o.key),
  result: enumOf(BeatResultSchema, (o) => resultToPb[o.result]),
  leaseExpiresAt: timestampMs((o) => ("expiresAt" in o ? o.expiresAt : undefined)),
  message: string((o) => ("expiresAt" in o ? "" : o.message)),
});

const responseWriter = new MessageWriter<HeartbeatResponse, { readonly sequence: bigint; readonly outcomes: readonly BeatOutcome[] }>(HeartbeatResponseSchema, {
  sequence: uint64((r) => r.sequence),
  acks: messages(ackWriter, (r) => r.outcomes),
});

/** heartbeatFrame encodes a HeartbeatResponse (sequence, one ack per outcome) as one gRPC message frame. */
export function heartbeatFrame(sequence: bigint, outcomes: readonly BeatOutcome[]): Buffer {
  return responseWriter.frame({ sequence, outcomes });
}

/** BeatsRequest is what answering a HeartbeatRequest reads: a decoded message, or decodeHeartbeatRequest's plain object. */
export interface BeatsRequest {
  readonly sequence: bigint;
  readonly beats: ReadonlyArray<{
    readonly key?: { readonly namespace: string; readonly service: string; readonly instanceId: string } | undefined;
    readonly status: number;
    readonly load?: number | undefined;
    /** instance and leaseTtl (a stream's first beat) come only from fromBinary: the fast reader declines them. */
    readonly instance?: Instance | undefined;
    readonly leaseTtl?: Duration | undefined;
  }>;
}

/**
 * decodeHeartbeatRequest decodes a HeartbeatRequest as fromBinary does. The
 * fast reader takes each field at most once per message, in any order; any
 * other input (unknown fields, a field twice, invalid UTF-8, a truncated
 * message) is decoded by fromBinary, which also throws for invalid bytes.
 */
export function decodeHeartbeatRequest(bytes: Uint8Array): BeatsRequest {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  return readRequest(buf) ?? fromBinary(HeartbeatRequestSchema, bytes);
}

type Beat = BeatsRequest["beats"][number];
type Key = NonNullable<Beat["key"]>;

// The fast reader's tags, from the schema: each field is checked to have
// the kind the reader expects, so a changed field fails at load rather than
// being misread; a field added to any of these messages is not known to
// the fast reader, which then hands the request to fromBinary.
const REQUEST_SEQUENCE = readTag(HeartbeatRequestSchema, "sequence", WIRE_VARINT, (f) => f.fieldKind === "scalar" && f.scalar === ScalarType.UINT64);
const REQUEST_BEATS = readTag(HeartbeatRequestSchema, "beats", WIRE_LENGTH_DELIMITED, (f) => f.fieldKind === "list" && f.listKind === "message" && f.message.typeName === BeatSchema.typeName);
const BEAT_KEY = readTag(BeatSchema, "key", WIRE_LENGTH_DELIMITED, (f) => f.fieldKind === "message" && f.message.typeName === InstanceKeySchema.typeName);
const BEAT_STATUS = readTag(BeatSchema, "status", WIRE_VARINT, (f) => f.fieldKind === "enum");
const BEAT_LOAD = readTag(BeatSchema, "load", WIRE_BIT64, (f) => f.fieldKind === "scalar" && f.scalar === ScalarType.DOUBLE);
const isString = (f: DescField): boolean => f.fieldKind === "scalar" && f.scalar === ScalarType.STRING;
const KEY_NAMESPACE = readTag(InstanceKeySchema, "namespace", WIRE_LENGTH_DELIMITED, isString);
const KEY_SERVICE = readTag(InstanceKeySchema, "service", WIRE_LENGTH_DELIMITED, isString);
const KEY_INSTANCE_ID = readTag(InstanceKeySchema, "instanceId", WIRE_LENGTH_DELIMITED, isString);

function readTag(schema: DescMessage, name: string, wireType: number, fits: (f: DescField) => boolean): number {
  const field = fieldNamed(schema, name);
  if (field.oneof !== undefined || !fits(field)) throw new Error(`${schema.typeName}.${field.name}: not what the fast heartbeat reader reads`);
  return tagValue(field.number, wireType);
}

/** Reader reads varints and lengths from buf; every method returns undefined (or -1) for input the fast path does not take. */
class Reader {
  at = 0;
  constructor(readonly buf: Buffer) {}

  /** varint reads a varint of at most 7 bytes (below 2^49), or -1. */
  varint(end: number): number {
    let n = 0;
    let scale = 1;
    for (let i = 0; i < 7 && this.at < end; i++) {
      const b = this.buf[this.at++]!;
      n += (b & 0x7f) * scale;
      if (b < 0x80) return n;
      scale *= 0x80;
    }
    return -1;
  }

  /** tag reads a tag: one byte for fields below 16, as a varint above. */
  tag(end: number): number {
    const b = this.buf[this.at]!;
    if (b < 0x80) {
      this.at++;
      return b;
    }
    return this.varint(end);
  }

  /** length reads a length prefix and returns the end of the field, or -1 when it does not fit before end. */
  length(end: number): number {
    const n = this.varint(end);
    return n < 0 || this.at + n > end ? -1 : this.at + n;
  }

  string(end: number): string | undefined {
    const stop = this.length(end);
    if (stop < 0) return undefined;
    const bytes = this.buf.subarray(this.at, stop);
    this.at = stop;
    return isUtf8(bytes) ? bytes.toString("utf8") : undefined;
  }
}

function readRequest(buf: Buffer): BeatsRequest | undefined {
  const r = new Reader(buf);
  const end = buf.length;
  let sequence: bigint | undefined;
  const beats: Beat[] = [];
  while (r.at < end) {
    const tag = r.tag(end);
    if (tag === REQUEST_SEQUENCE && sequence === undefined) {
      const n = r.varint(end);
      if (n < 0) return undefined;
      sequence = BigInt(n);
    } else if (tag === REQUEST_BEATS) {
      const stop = r.length(end);
      const beat = stop < 0 ? undefined : readBeat(r, stop);
      if (beat === undefined) return undefined;
      beats.push(beat);
    } else {
      return undefined;
    }
  }
  return { sequence: sequence ?? 0n, beats };
}

function readBeat(r: Reader, end: number): Beat | undefined {
  let key: Key | undefined;
  let status: number | undefined;
  let load: number | undefined;
  while (r.at < end) {
    const tag = r.tag(end);
    if (tag === BEAT_KEY && key === undefined) {
      const stop = r.length(end);
      key = stop < 0 ? undefined : readKey(r, stop);
      if (key === undefined) return undefined;
    } else if (tag === BEAT_STATUS && status === undefined) {
      status = r.varint(end);
      if (status < 0 || status > 0x7fffffff) return undefined; // negative enum values are ten-byte varints
    } else if (tag === BEAT_LOAD && load === undefined) {
      if (r.at + 8 > end) return undefined;
      load = r.buf.readDoubleLE(r.at);
      r.at += 8;
    } else {
      return undefined;
    }
  }
  return { key, status: status ?? 0, load };
}

function readKey(r: Reader, end: number): Key | undefined {
  let namespace: string | undefined;
  let service: string | undefined;
  let instanceId: string | undefined;
  while (r.at < end) {
    const tag = r.tag(end);
    if (tag === KEY_NAMESPACE && namespace === undefined) {
      namespace = r.string(end);
      if (namespace === undefined) return undefined;
    } else if (tag === KEY_SERVICE && service === undefined) {
      service = r.string(end);
      if (service === undefined) return undefined;
    } else if (tag === KEY_INSTANCE_ID && instanceId === undefined) {
      instanceId = r.string(end);
      if (instanceId === undefined) return undefined;
    } else {
      return undefined; // an unknown field, or a field twice
    }
  }
  return { namespace: namespace ?? "", service: service ?? "", instanceId: instanceId ?? "" };
}
