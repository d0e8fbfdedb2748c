// Protobuf wire primitives: varints and tags, written straight into a
// buffer whose size was computed first. Field numbers and wire types come
// from the generated schema (schema-writer.ts builds every field's tag with
// tagBytes); nothing here knows a message.

/** WIRE_VARINT, WIRE_BIT64 and WIRE_LENGTH_DELIMITED are the protobuf wire types the server writes and reads. */
export const WIRE_VARINT = 0;
export const WIRE_BIT64 = 1;
export const WIRE_LENGTH_DELIMITED = 2;

/** tagValue is a field's tag as a varint value: number and wire type (any field number up to 2^29-1). */
export function tagValue(fieldNumber: number, wireType: number): number {
  return fieldNumber * 8 + wireType; // not <<: numbers from 2^28 up would overflow 32 bits
}

/** tagBytes is a field's tag as written on the wire: one byte below field 16, up to five above. */
export function tagBytes(fieldNumber: number, wireType: number): Uint8Array {
  const tag = tagValue(fieldNumber, wireType);
  const out = Buffer.alloc(varintSize(tag));
  writeVarint(out, 0, tag);
  return new Uint8Array(out);
}

/** writeTag copies a tag from tagBytes at at and returns the offset after it. */
export function writeTag(out: Buffer, at: number, tag: Uint8Array): number {
  for (let i = 0; i < tag.length; i++) out[at++] = tag[i]!;
  return at;
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

/** bigVarintSize is the size of a 64-bit integer as a varint (a negative one is ten bytes, two's complement). */
export function bigVarintSize(n: bigint): number {
  if (n >= 0n && n <= BigInt(Number.MAX_SAFE_INTEGER)) return varintSize(Number(n));
  const v = BigInt.asUintN(64, n);
  return v === 0n ? 1 : Math.ceil(v.toString(2).length / 7);
}

/** writeBigVarint writes a 64-bit integer as a varint at at and returns the offset after it. */
export function writeBigVarint(out: Buffer, at: number, n: bigint): number {
  if (n >= 0n && n <= BigInt(Number.MAX_SAFE_INTEGER)) return writeVarint(out, at, Number(n));
  let v = BigInt.asUintN(64, n);
  while (v > 0x7fn) {
    out[at++] = Number(v & 0x7fn) | 0x80;
    v >>= 7n;
  }
  out[at++] = Number(v);
  return at;
}

/** intSize is the size of an integer field's value: safe integers below 0 (int32, int64) take ten bytes. */
export function intSize(n: number): number {
  return n < 0 ? 10 : varintSize(n);
}

/** writeInt writes an integer (negative ones sign-extended to 64 bits) as a varint and returns the offset after it. */
export function writeInt(out: Buffer, at: number, n: number): number {
  return n < 0 ? writeBigVarint(out, at, BigInt(n)) : writeVarint(out, at, n);
}
