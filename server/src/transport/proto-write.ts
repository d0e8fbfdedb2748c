// Protobuf encoding by hand, for the messages the server writes most
// (heartbeat answers, instances): sizes are computed first, then fields are
// written straight into one buffer. Each writer built on these is checked
// byte for byte against protobuf-es (test/heartbeat-wire.test.ts,
// test/encoded.test.ts). Field numbers passed here are below 16 (one-byte
// tags).

/** timestampOf splits epoch milliseconds as timestampFromMs does. */
export function timestampOf(ms: number): { seconds: number; nanos: number } {
  const seconds = Math.floor(ms / 1000);
  return { seconds, nanos: (ms - seconds * 1000) * 1_000_000 };
}

/** timestampSize is the size of a Timestamp's fields for epoch milliseconds ms (its message body, without tag or length). */
export function timestampSize(ms: number): number {
  const { seconds, nanos } = timestampOf(ms);
  return (seconds === 0 ? 0 : 1 + varintSize(seconds)) + (nanos === 0 ? 0 : 1 + varintSize(nanos));
}

/** stringSize is the encoded size of a string field (numbers below 16), 0 for "" (left out). */
export function stringSize(s: string): number {
  if (s.length === 0) return 0;
  const n = Buffer.byteLength(s, "utf8");
  return 1 + varintSize(n) + n;
}

/** writeString writes a string field at at and returns the offset after it; "" is left out. */
export function writeString(out: Buffer, at: number, field: number, s: string): number {
  if (s.length === 0) return at;
  out[at++] = (field << 3) | 2;
  at = writeVarint(out, at, Buffer.byteLength(s, "utf8"));
  return at + out.write(s, at, "utf8");
}

/** varintSize is the size of n (a non-negative safe integer) as a varint. */
export function varintSize(n: number): number {
  let size = 1;
  while (n > 0x7f) {
    n = Math.floor(n / 0x80);
    size++;
  }
  return size;
}

/** writeVarint writes n (a non-negative safe integer) as a varint at at and returns the offset after it. */
export function writeVarint(out: Buffer, at: number, n: number): number {
  while (n > 0x7f) {
    out[at++] = (n % 0x80) | 0x80;
    n = Math.floor(n / 0x80);
  }
  out[at++] = n;
  return at;
}

/** bigVarintSize is the size of a uint64 as a varint. */
export function bigVarintSize(n: bigint): number {
  return n <= BigInt(Number.MAX_SAFE_INTEGER) ? varintSize(Number(n)) : Math.ceil(BigInt.asUintN(64, n).toString(2).length / 7);
}

/** writeBigVarint writes a uint64 as a varint at at and returns the offset after it. */
export function writeBigVarint(out: Buffer, at: number, n: bigint): number {
  if (n <= BigInt(Number.MAX_SAFE_INTEGER)) return writeVarint(out, at, Number(n));
  let v = BigInt.asUintN(64, n);
  while (v > 0x7fn) {
    out[at++] = Number(v & 0x7fn) | 0x80;
    v >>= 7n;
  }
  out[at++] = Number(v);
  return at;
}

/** lengthSize is the size of a length-delimited payload of n bytes with its length prefix. */
export function lengthSize(n: number): number {
  return varintSize(n) + n;
}

/** writeBytes writes a length-delimited field (bytes, or an encoded message) at at and returns the offset after it. */
export function writeBytes(out: Buffer, at: number, field: number, bytes: Uint8Array): number {
  out[at++] = (field << 3) | 2;
  at = writeVarint(out, at, bytes.length);
  out.set(bytes, at);
  return at + bytes.length;
}

/** uintSize is the size of a varint field, 0 for 0 (left out). */
export function uintSize(n: number): number {
  return n === 0 ? 0 : 1 + varintSize(n);
}

/** writeUint writes a varint field at at and returns the offset after it; 0 is left out. */
export function writeUint(out: Buffer, at: number, field: number, n: number): number {
  if (n === 0) return at;
  out[at++] = field << 3;
  return writeVarint(out, at, n);
}

/** writeTimestamp writes a google.protobuf.Timestamp's fields (epoch milliseconds), zero fields left out. */
export function writeTimestamp(out: Buffer, at: number, ms: number): number {
  const { seconds, nanos } = timestampOf(ms);
  if (seconds !== 0) {
    out[at++] = (1 << 3) | 0;
    at = writeVarint(out, at, seconds);
  }
  if (nanos !== 0) {
    out[at++] = (2 << 3) | 0;
    at = writeVarint(out, at, nanos);
  }
  return at;
}
