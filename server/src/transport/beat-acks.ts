import type { InstanceKey } from "../registry/instance.js";
import type { BeatOutcome } from "../registry/registry.js";

// Heartbeat answers, encoded by hand. A HeartbeatResponse is the message a
// server holding tens of thousands of heartbeat streams writes most often
// (one per beat), and building it with protobuf-es (a message object per ack,
// reflection, a TextEncoder per string, two buffers) cost more than the rest
// of the beat. heartbeatFrame writes the gRPC frame in one buffer, exactly as
// toBinary would write the message (test/beat-acks.test.ts checks it byte
// for byte against protobuf-es, for every kind of outcome).

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
const TIMESTAMP_SECONDS = 1;
const TIMESTAMP_NANOS = 2;

const RESULT = { RENEWED: 1, UNKNOWN: 2, INVALID: 3 } as const; // BeatResult

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
  if (o.result === "RENEWED") {
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
  if (o.result === "RENEWED") {
    out[at++] = (ACK_LEASE_EXPIRES_AT << 3) | 2;
    at = writeVarint(out, at, timestampSize(o.expiresAt));
    const { seconds, nanos } = timestampOf(o.expiresAt);
    if (seconds !== 0) {
      out[at++] = (TIMESTAMP_SECONDS << 3) | 0;
      at = writeVarint(out, at, seconds);
    }
    if (nanos !== 0) {
      out[at++] = (TIMESTAMP_NANOS << 3) | 0;
      at = writeVarint(out, at, nanos);
    }
  } else {
    at = writeString(out, at, ACK_MESSAGE, o.message);
  }
  return at;
}

function keySize(k: InstanceKey): number {
  return stringSize(k.namespace) + stringSize(k.service) + stringSize(k.instanceId);
}

/** timestampOf splits epoch milliseconds as timestampFromMs does. */
function timestampOf(ms: number): { seconds: number; nanos: number } {
  const seconds = Math.floor(ms / 1000);
  return { seconds, nanos: (ms - seconds * 1000) * 1_000_000 };
}

function timestampSize(ms: number): number {
  const { seconds, nanos } = timestampOf(ms);
  return (seconds === 0 ? 0 : 1 + varintSize(seconds)) + (nanos === 0 ? 0 : 1 + varintSize(nanos));
}

/** stringSize is the encoded size of a string field (numbers below 16), 0 for "" (left out). */
function stringSize(s: string): number {
  if (s.length === 0) return 0;
  const n = Buffer.byteLength(s, "utf8");
  return 1 + varintSize(n) + n;
}

function writeString(out: Buffer, at: number, field: number, s: string): number {
  if (s.length === 0) return at;
  out[at++] = (field << 3) | 2;
  at = writeVarint(out, at, Buffer.byteLength(s, "utf8"));
  return at + out.write(s, at, "utf8");
}

/** varintSize is the size of n (a non-negative safe integer) as a varint. */
function varintSize(n: number): number {
  let size = 1;
  while (n > 0x7f) {
    n = Math.floor(n / 0x80);
    size++;
  }
  return size;
}

function writeVarint(out: Buffer, at: number, n: number): number {
  while (n > 0x7f) {
    out[at++] = (n % 0x80) | 0x80;
    n = Math.floor(n / 0x80);
  }
  out[at++] = n;
  return at;
}

function bigVarintSize(n: bigint): number {
  return n <= BigInt(Number.MAX_SAFE_INTEGER) ? varintSize(Number(n)) : Math.ceil(BigInt.asUintN(64, n).toString(2).length / 7);
}

function writeBigVarint(out: Buffer, at: number, n: bigint): number {
  if (n <= BigInt(Number.MAX_SAFE_INTEGER)) return writeVarint(out, at, Number(n));
  let v = BigInt.asUintN(64, n);
  while (v > 0x7fn) {
    out[at++] = Number(v & 0x7fn) | 0x80;
    v >>= 7n;
  }
  out[at++] = Number(v);
  return at;
}
