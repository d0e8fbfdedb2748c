import { isUtf8 } from "node:buffer";
import { fromBinary } from "@bufbuild/protobuf";
import type { Duration } from "@bufbuild/protobuf/wkt";
import { HeartbeatRequestSchema, type Instance } from "@maxine/sdk/gen/maxine/registry/v1/registry_pb";
import type { InstanceKey } from "../domain/instance.js";
import type { BeatOutcome } from "../registry/registry.js";
import { bigVarintSize, stringSize, timestampSize, varintSize, writeBigVarint, writeString, writeTimestamp, writeVarint } from "./proto-write.js";

// Heartbeat messages on the wire, by hand. HeartbeatRequest and
// HeartbeatResponse are what a server holding tens of thousands of heartbeat
// streams reads and writes most often (one each per beat), and protobuf-es
// (reflection, a message object per field, a TextEncoder per string) cost
// more than the rest of the beat. heartbeatFrame writes the answer's gRPC
// frame in one buffer, exactly as toBinary writes the message;
// decodeHeartbeatRequest reads the request as clients write it and hands
// anything else (unknown or repeated fields, invalid UTF-8) to fromBinary.
// test/heartbeat-wire.test.ts checks both against protobuf-es.

// Field numbers (registry.proto).
const RESPONSE_SEQUENCE = 1;
const RESPONSE_ACKS = 2;
const ACK_KEY = 1;
const ACK_RESULT = 2;
const ACK_LEASE_EXPIRES_AT = 3;
const ACK_MESSAGE = 4;
const KEY_NAMESPACE = 1;
const KEY_SERVICE = 2;
const KEY_INSTANCE_ID = 3;

const RESULT = { RENEWED: 1, UNKNOWN: 2, INVALID: 3, REGISTERED: 4 } as const; // BeatResult

/** heartbeatFrame encodes a HeartbeatResponse (sequence, one ack per outcome) as one gRPC message frame. */
export function heartbeatFrame(sequence: bigint, outcomes: readonly BeatOutcome[]): Buffer {
  const ackSizes = outcomes.map(ackSize);
  let size = sequence === 0n ? 0 : 1 + bigVarintSize(sequence);
  for (const s of ackSizes) size += 1 + varintSize(s) + s;
  const out = Buffer.allocUnsafe(5 + size);
  out[0] = 0;
  out.writeUInt32BE(size, 1);
  let at = 5;
  if (sequence !== 0n) {
    out[at++] = (RESPONSE_SEQUENCE << 3) | 0;
    at = writeBigVarint(out, at, sequence);
  }
  outcomes.forEach((o, i) => {
    out[at++] = (RESPONSE_ACKS << 3) | 2;
    at = writeVarint(out, at, ackSizes[i]!);
    at = writeAck(out, at, o);
  });
  return out;
}

function ackSize(o: BeatOutcome): number {
  let size = 2; // result: never 0
  if (o.key !== undefined) {
    const k = keySize(o.key);
    size += 1 + varintSize(k) + k;
  }
  if ("expiresAt" in o) {
    const t = timestampSize(o.expiresAt);
    size += 1 + varintSize(t) + t;
  } else {
    size += stringSize(o.message);
  }
  return size;
}

function writeAck(out: Buffer, at: number, o: BeatOutcome): number {
  if (o.key !== undefined) {
    out[at++] = (ACK_KEY << 3) | 2;
    at = writeVarint(out, at, keySize(o.key));
    at = writeString(out, at, KEY_NAMESPACE, o.key.namespace);
    at = writeString(out, at, KEY_SERVICE, o.key.service);
    at = writeString(out, at, KEY_INSTANCE_ID, o.key.instanceId);
  }
  out[at++] = (ACK_RESULT << 3) | 0;
  out[at++] = RESULT[o.result];
  if ("expiresAt" in o) {
    out[at++] = (ACK_LEASE_EXPIRES_AT << 3) | 2;
    at = writeVarint(out, at, timestampSize(o.expiresAt));
    at = writeTimestamp(out, at, o.expiresAt);
  } else {
    at = writeString(out, at, ACK_MESSAGE, o.message);
  }
  return at;
}

function keySize(k: InstanceKey): number {
  return stringSize(k.namespace) + stringSize(k.service) + stringSize(k.instanceId);
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
    const tag = buf[r.at++]!;
    if (tag === ((REQUEST_SEQUENCE << 3) | 0) && sequence === undefined) {
      const n = r.varint(end);
      if (n < 0) return undefined;
      sequence = BigInt(n);
    } else if (tag === ((REQUEST_BEATS << 3) | 2)) {
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

// HeartbeatRequest and Beat field numbers (registry.proto).
const REQUEST_SEQUENCE = 1;
const REQUEST_BEATS = 2;
const BEAT_KEY = 1;
const BEAT_STATUS = 2;
const BEAT_LOAD = 3;

function readBeat(r: Reader, end: number): Beat | undefined {
  let key: Key | undefined;
  let status: number | undefined;
  let load: number | undefined;
  while (r.at < end) {
    const tag = r.buf[r.at++]!;
    if (tag === ((BEAT_KEY << 3) | 2) && key === undefined) {
      const stop = r.length(end);
      key = stop < 0 ? undefined : readKey(r, stop);
      if (key === undefined) return undefined;
    } else if (tag === ((BEAT_STATUS << 3) | 0) && status === undefined) {
      status = r.varint(end);
      if (status < 0 || status > 0x7fffffff) return undefined; // negative enum values are ten-byte varints
    } else if (tag === ((BEAT_LOAD << 3) | 1) && load === undefined) {
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
    const tag = r.buf[r.at++]!;
    const field = tag >> 3;
    if ((tag & 7) !== 2) return undefined;
    const taken = field === KEY_NAMESPACE ? namespace : field === KEY_SERVICE ? service : field === KEY_INSTANCE_ID ? instanceId : "";
    if (taken !== undefined) return undefined; // an unknown field, or a field twice
    const s = r.string(end);
    if (s === undefined) return undefined;
    if (field === KEY_NAMESPACE) namespace = s;
    else if (field === KEY_SERVICE) service = s;
    else instanceId = s;
  }
  return { namespace: namespace ?? "", service: service ?? "", instanceId: instanceId ?? "" };
}
