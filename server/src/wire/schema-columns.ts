import { fromBinary, ScalarType, type DescField, type DescMessage, type Message } from "@bufbuild/protobuf";
import type { GenEnum, GenMessage } from "@bufbuild/protobuf/codegenv2";
import { DurationSchema, FeatureSet_FieldPresence, TimestampSchema, type Duration, type Timestamp } from "@bufbuild/protobuf/wkt";
import { bigVarintSize, intSize, tagBytes, varintSize, WIRE_BIT64, WIRE_LENGTH_DELIMITED, WIRE_VARINT, writeBigVarint, writeInt, writeTag, writeVarint } from "./proto-write.js";
import { MessageWriter, misfit, type Column, type Sizes, type Step } from "./schema-writer.js";

// The kinds of column a MessageWriter's table is made of, one per kind of
// field the server writes. Each checks at load that its field has that kind
// (scalar type, enum or message type, implicit presence) and precomputes the
// field's tag; a field of a kind not here (bytes, float, an optional other
// than double, a oneof member) fails at load with its name until a column
// is added. perAnswer (schema-writer.ts) marks a field written after a
// record's cached bytes, per answer.

function implicitScalar(field: DescField, scalar: ScalarType, writes: string): Uint8Array {
  if (field.fieldKind !== "scalar" || field.scalar !== scalar || field.presence !== FeatureSet_FieldPresence.IMPLICIT) throw misfit(field, writes);
  return tagBytes(field.number, scalar === ScalarType.STRING ? WIRE_LENGTH_DELIMITED : WIRE_VARINT);
}

// Short ASCII strings (names, hosts, ids: most of what the server writes)
// are measured and copied in JavaScript; a call into Buffer's UTF-8 code
// costs more than the loop. Anything else goes to Buffer, which encodes as
// protobuf-es's TextEncoder does (a lone surrogate becomes U+FFFD).
const SHORT = 64;

function utf8Length(v: string): number {
  if (v.length > SHORT) return Buffer.byteLength(v, "utf8");
  for (let i = 0; i < v.length; i++) if (v.charCodeAt(i) > 0x7f) return Buffer.byteLength(v, "utf8");
  return v.length;
}

function stringLength(v: string): number {
  const n = utf8Length(v);
  return varintSize(n) + n;
}

function putString(out: Buffer, at: number, v: string): number {
  const n = utf8Length(v);
  at = writeVarint(out, at, n);
  if (n !== v.length || n > SHORT) return at + out.write(v, at, "utf8"); // the same length in bytes as in UTF-16 units only for ASCII
  for (let i = 0; i < n; i++) out[at++] = v.charCodeAt(i);
  return at;
}

/** string is a proto3 string field ("" left out). */
export function string<S>(get: (s: S) => string): Column<S, string> {
  return {
    compile(field) {
      const tag = implicitScalar(field, ScalarType.STRING, "a string");
      return {
        size: (s) => {
          const v = get(s);
          return v.length === 0 ? 0 : tag.length + stringLength(v);
        },
        write: (out, at, s) => {
          const v = get(s);
          return v.length === 0 ? at : putString(out, writeTag(out, at, tag), v);
        },
        init: get,
        json: (s) => {
          const v = get(s);
          return v.length === 0 ? undefined : JSON.stringify(v);
        },
      };
    },
  };
}

/** varint is a proto3 varint field of a non-negative or (int32, int64, enum) negative safe integer (0 left out). */
function varint<S, T>(scalar: ScalarType, writes: string, get: (s: S) => number, init: (n: number) => unknown, json: (n: number) => string): Column<S, T> {
  return {
    compile(field) {
      const tag = implicitScalar(field, scalar, writes);
      return intStep(tag, get, init, json);
    },
  };
}

/** intStep writes a non-zero integer; json is its JSON text (a number, a quoted 64-bit decimal, an enum's name). */
function intStep<S>(tag: Uint8Array, get: (s: S) => number, init: (n: number) => unknown, json: (n: number) => string): Step<S> {
  return {
    size: (s) => {
      const v = get(s);
      return v === 0 ? 0 : tag.length + intSize(v);
    },
    write: (out, at, s) => {
      const v = get(s);
      return v === 0 ? at : writeInt(out, writeTag(out, at, tag), v);
    },
    init: (s) => init(get(s)),
    json: (s) => {
      const v = get(s);
      return v === 0 ? undefined : json(v);
    },
  };
}

const same = (n: number): number => n;
const decimal = (n: number): string => String(n);
const quoted = (n: number | bigint): string => `"${n}"`; // 64-bit integers are JSON strings

/** uint32 is a proto3 uint32 field. */
export function uint32<S>(get: (s: S) => number): Column<S, number> {
  return varint(ScalarType.UINT32, "a uint32", get, same, decimal);
}

/** int32 is a proto3 int32 field (negative values take ten bytes, as protobuf-es writes them). */
export function int32<S>(get: (s: S) => number): Column<S, number> {
  return varint(ScalarType.INT32, "an int32", get, same, decimal);
}

/** int64 is a proto3 int64 field from a safe integer. */
export function int64<S>(get: (s: S) => number): Column<S, bigint> {
  return varint(ScalarType.INT64, "an int64", get, BigInt, quoted);
}

/** uint64 is a proto3 uint64 field from a safe integer or a bigint (up to 2^64-1). */
export function uint64<S>(get: (s: S) => number | bigint): Column<S, bigint> {
  return {
    compile(field) {
      const tag = implicitScalar(field, ScalarType.UINT64, "a uint64");
      return {
        size: (s) => {
          const v = get(s);
          if (typeof v === "number") return v === 0 ? 0 : tag.length + varintSize(v);
          return v === 0n ? 0 : tag.length + bigVarintSize(v);
        },
        write: (out, at, s) => {
          const v = get(s);
          if (typeof v === "number") return v === 0 ? at : writeVarint(out, writeTag(out, at, tag), v);
          return v === 0n ? at : writeBigVarint(out, writeTag(out, at, tag), v);
        },
        init: (s) => BigInt(get(s)),
        json: (s) => {
          const v = get(s);
          return v === 0 || v === 0n ? undefined : quoted(v);
        },
      };
    },
  };
}

/** optionalDouble is a proto3 `optional double` field: undefined left out, any number (0 too) written, 8 bytes little-endian. */
export function optionalDouble<S>(get: (s: S) => number | undefined): Column<S, number | undefined> {
  return {
    compile(field) {
      if (field.fieldKind !== "scalar" || field.scalar !== ScalarType.DOUBLE || field.presence !== FeatureSet_FieldPresence.EXPLICIT) {
        throw misfit(field, "an optional double");
      }
      const tag = tagBytes(field.number, WIRE_BIT64);
      return {
        size: (s) => (get(s) === undefined ? 0 : tag.length + 8),
        write: (out, at, s) => {
          const v = get(s);
          return v === undefined ? at : out.writeDoubleLE(v, writeTag(out, at, tag));
        },
        init: get,
        json: (s) => {
          const v = get(s);
          if (v === undefined) return undefined;
          return Number.isFinite(v) ? JSON.stringify(v) : `"${v}"`; // "NaN", "Infinity", "-Infinity"
        },
      };
    },
  };
}

/** bool is a proto3 bool field (false left out). */
export function bool<S>(get: (s: S) => boolean): Column<S, boolean> {
  return varint(ScalarType.BOOL, "a bool", (s) => (get(s) ? 1 : 0), (n) => n === 1, () => "true");
}

/** enumOf is a proto3 enum field of schema's enum (its zero value left out). */
export function enumOf<S, E extends number>(schema: GenEnum<E>, get: (s: S) => E): Column<S, E> {
  return {
    compile(field) {
      if (field.fieldKind !== "enum" || field.enum.typeName !== schema.typeName || field.presence !== FeatureSet_FieldPresence.IMPLICIT) {
        throw misfit(field, `enum ${schema.typeName}`);
      }
      const names = new Map(schema.values.map((v) => [v.number, `"${v.name}"`]));
      return intStep(tagBytes(field.number, WIRE_VARINT), get, same, (n) => names.get(n) ?? String(n)); // an unknown value as its number, as protobuf-es writes it
    },
  };
}

/** strings is a repeated string field: every element written, "" too. */
export function strings<S>(get: (s: S) => readonly string[]): Column<S, string[]> {
  return {
    compile(field) {
      if (field.fieldKind !== "list" || field.listKind !== "scalar" || field.scalar !== ScalarType.STRING) throw misfit(field, "repeated string");
      const tag = tagBytes(field.number, WIRE_LENGTH_DELIMITED);
      return {
        size: (s) => {
          const list = get(s);
          let n = list.length * tag.length;
          for (let i = 0; i < list.length; i++) n += stringLength(list[i]!);
          return n;
        },
        write: (out, at, s) => {
          const list = get(s);
          for (let i = 0; i < list.length; i++) at = putString(out, writeTag(out, at, tag), list[i]!);
          return at;
        },
        init: (s) => [...get(s)],
        json: (s) => {
          const list = get(s);
          return list.length === 0 ? undefined : JSON.stringify(list);
        },
      };
    },
  };
}

// A map entry's key and value are its fields 1 and 2 (the protobuf spec; protobuf-es writes them so).
const ENTRY_KEY = tagBytes(1, WIRE_LENGTH_DELIMITED);
const ENTRY_VALUE = tagBytes(2, WIRE_LENGTH_DELIMITED);

function entrySize(k: string, v: string): number {
  return ENTRY_KEY.length + stringLength(k) + ENTRY_VALUE.length + stringLength(v);
}

/** stringMap is a map<string, string> field, entries in the object's key order (as protobuf-es iterates it). */
export function stringMap<S>(get: (s: S) => Readonly<Record<string, string>>): Column<S, { [key: string]: string }> {
  return {
    compile(field) {
      if (field.fieldKind !== "map" || field.mapKey !== ScalarType.STRING || field.mapKind !== "scalar" || field.scalar !== ScalarType.STRING) {
        throw misfit(field, "map<string, string>");
      }
      const tag = tagBytes(field.number, WIRE_LENGTH_DELIMITED);
      return {
        size: (s) => {
          const m = get(s);
          let n = 0;
          for (const k of Object.keys(m)) {
            const e = entrySize(k, m[k]!);
            n += tag.length + varintSize(e) + e;
          }
          return n;
        },
        write: (out, at, s) => {
          const m = get(s);
          for (const k of Object.keys(m)) {
            const v = m[k]!;
            at = writeVarint(out, writeTag(out, at, tag), entrySize(k, v));
            at = putString(out, writeTag(out, at, ENTRY_KEY), k);
            at = putString(out, writeTag(out, at, ENTRY_VALUE), v);
          }
          return at;
        },
        init: (s) => ({ ...get(s) }),
        json: (s) => {
          const m = get(s);
          for (const _ in m) return JSON.stringify(m); // an object in the same key order as protobuf-es builds
          return undefined;
        },
      };
    },
  };
}

function messageTag(field: DescField, schema: DescMessage, list: boolean): Uint8Array {
  const ok = list
    ? field.fieldKind === "list" && field.listKind === "message" && field.message.typeName === schema.typeName && !field.delimitedEncoding
    : field.fieldKind === "message" && field.message.typeName === schema.typeName && !field.delimitedEncoding && field.oneof === undefined;
  if (!ok) throw misfit(field, `${list ? "repeated " : ""}${schema.typeName}`);
  return tagBytes(field.number, WIRE_LENGTH_DELIMITED);
}

/** message is a message field written by body from the source get returns (undefined: left out). */
export function message<S, M extends Message, B>(body: MessageWriter<M, B>, get: (s: S) => B | undefined): Column<S, M | undefined> {
  return {
    compile(field) {
      const tag = messageTag(field, body.schema, false);
      return {
        size: (s, sizes) => {
          const v = get(s);
          return v === undefined ? 0 : tag.length + nestedSize(body, v, sizes);
        },
        write: (out, at, s, sizes) => {
          const v = get(s);
          return v === undefined ? at : nestedWrite(body, out, writeTag(out, at, tag), v, sizes);
        },
        init: (s) => {
          const v = get(s);
          return v === undefined ? undefined : body.init(v);
        },
        json: (s) => {
          const v = get(s);
          return v === undefined ? undefined : body.json(v);
        },
        nests: true,
      };
    },
  };
}

/** messages is a repeated message field, each element written by body. */
export function messages<S, M extends Message, B>(body: MessageWriter<M, B>, get: (s: S) => readonly B[]): Column<S, M[]> {
  return {
    compile(field) {
      const tag = messageTag(field, body.schema, true);
      return {
        size: (s, sizes) => {
          const list = get(s);
          let n = list.length * tag.length;
          for (let i = 0; i < list.length; i++) n += nestedSize(body, list[i]!, sizes);
          return n;
        },
        write: (out, at, s, sizes) => {
          const list = get(s);
          for (let i = 0; i < list.length; i++) at = nestedWrite(body, out, writeTag(out, at, tag), list[i]!, sizes);
          return at;
        },
        init: (s) => get(s).map((v) => body.init(v)),
        json: (s) => {
          const list = get(s);
          if (list.length === 0) return undefined;
          let out = "[";
          for (let i = 0; i < list.length; i++) out += (i === 0 ? "" : ",") + body.json(list[i]!);
          return out + "]";
        },
        nests: true,
      };
    },
  };
}

function nestedSize<M extends Message, B>(body: MessageWriter<M, B>, v: B, sizes: Sizes): number {
  const slot = sizes.list.length;
  sizes.list.push(0);
  const n = body.size(v, sizes);
  sizes.list[slot] = n;
  return varintSize(n) + n;
}

function nestedWrite<M extends Message, B>(body: MessageWriter<M, B>, out: Buffer, at: number, v: B, sizes: Sizes): number {
  return body.write(out, writeVarint(out, at, sizes.list[sizes.next++]!), v, sizes);
}

/**
 * EncodedBytes is an already encoded message: a Uint8Array, or a string of
 * one byte per character (latin1). Long-lived cached encodings (a record's
 * Instance) are kept as strings: the V8 heap holds them in one small object
 * each, where a buffer costs a typed array, an ArrayBuffer and memory
 * outside the heap.
 */
export type EncodedBytes = Uint8Array | string;

/** put copies b into out at at. */
function put(out: Buffer, b: EncodedBytes, at: number): void {
  if (typeof b === "string") out.write(b, at, "latin1");
  else out.set(b, at);
}

/** bytesOf is b as a Uint8Array. */
export function bytesOf(b: EncodedBytes): Uint8Array {
  return typeof b === "string" ? Buffer.from(b, "latin1") : b;
}

/**
 * encoded is a message field whose message is already encoded (a cached
 * Instance): the bytes are spliced in; json, when given, writes the same
 * message in the JSON mapping (undefined: left out).
 */
export function encoded<S, M extends Message>(schema: GenMessage<M>, get: (s: S) => EncodedBytes | undefined, json?: (s: S) => string | undefined): Column<S, M | undefined> {
  return {
    compile(field) {
      const tag = messageTag(field, schema, false);
      return {
        size: (s) => {
          const b = get(s);
          return b === undefined ? 0 : tag.length + varintSize(b.length) + b.length;
        },
        write: (out, at, s) => {
          const b = get(s);
          if (b === undefined) return at;
          at = writeVarint(out, writeTag(out, at, tag), b.length);
          put(out, b, at);
          return at + b.length;
        },
        init: (s) => {
          const b = get(s);
          return b === undefined ? undefined : fromBinary(schema, bytesOf(b));
        },
        ...(json !== undefined ? { json } : {}),
      };
    },
  };
}

/** encodedList is a repeated message field of already encoded messages. */
export function encodedList<S, M extends Message>(schema: GenMessage<M>, get: (s: S) => readonly EncodedBytes[]): Column<S, M[]> {
  return {
    compile(field) {
      const tag = messageTag(field, schema, true);
      return {
        size: (s) => {
          const list = get(s);
          let n = list.length * tag.length;
          for (let i = 0; i < list.length; i++) n += varintSize(list[i]!.length) + list[i]!.length;
          return n;
        },
        write: (out, at, s) => {
          const list = get(s);
          for (let i = 0; i < list.length; i++) {
            const b = list[i]!;
            at = writeVarint(out, writeTag(out, at, tag), b.length);
            put(out, b, at);
            at += b.length;
          }
          return at;
        },
        init: (s) => get(s).map((b) => fromBinary(schema, bytesOf(b))),
      };
    },
  };
}

/**
 * Spliced is one message written as its cached bytes with a suffix
 * writer's fields from suffix (suffixWriter in schema-writer.ts) inserted
 * before the last tail bytes of cached (the fields numbered above the
 * suffix's; tailWriter's output, usually none).
 */
export interface Spliced<L> {
  readonly cached: EncodedBytes;
  readonly suffix: L;
  /** tail is how many of cached's last bytes go after the suffix (0: the suffix is appended). */
  readonly tail: number;
}

/** putRange copies b[from..to) into out at at. */
function putRange(out: Buffer, b: EncodedBytes, from: number, to: number, at: number): void {
  if (typeof b === "string") out.write(b.slice(from, to), at, "latin1");
  else out.set(b.subarray(from, to), at);
}

/** splicedBytes is e as one message's bytes (no tag or length), for tests and the rare answer outside a list. */
export function splicedBytes<M extends Message, L>(suffix: MessageWriter<M, L>, e: Spliced<L>): Uint8Array {
  const cached = bytesOf(e.cached);
  const head = cached.length - e.tail;
  return Buffer.concat([cached.subarray(0, head), suffix.encode(e.suffix), cached.subarray(head)]);
}

/**
 * splicedList is a repeated message field whose every element is cached
 * bytes and the per-answer fields suffix writes into them (Spliced), straight into
 * the answer's buffer (no per-element buffer): the element's size is kept
 * in Sizes, before the suffix's nested sizes.
 */
export function splicedList<S, M extends Message, L>(suffix: MessageWriter<M, L>, get: (s: S) => readonly Spliced<L>[]): Column<S, M[]> {
  return {
    compile(field) {
      const tag = messageTag(field, suffix.schema, true);
      return {
        size: (s, sizes) => {
          const list = get(s);
          let n = list.length * tag.length;
          for (let i = 0; i < list.length; i++) {
            const e = list[i]!;
            const slot = sizes.list.length;
            sizes.list.push(0);
            const m = e.cached.length + suffix.size(e.suffix, sizes);
            sizes.list[slot] = m;
            n += varintSize(m) + m;
          }
          return n;
        },
        write: (out, at, s, sizes) => {
          const list = get(s);
          for (let i = 0; i < list.length; i++) {
            const e = list[i]!;
            at = writeVarint(out, writeTag(out, at, tag), sizes.list[sizes.next++]!);
            if (e.tail === 0) {
              put(out, e.cached, at);
              at = suffix.write(out, at + e.cached.length, e.suffix, sizes);
            } else {
              const head = e.cached.length - e.tail;
              putRange(out, e.cached, 0, head, at);
              at = suffix.write(out, at + head, e.suffix, sizes);
              putRange(out, e.cached, head, e.cached.length, at);
              at += e.tail;
            }
          }
          return at;
        },
        init: (s) => get(s).map((e) => fromBinary(suffix.schema, splicedBytes(suffix, e))),
        nests: true,
      };
    },
  };
}

// google.protobuf.Timestamp and Duration from milliseconds, as timestampFromMs and durationFromMs build them.
// Their JSON is a string (RFC 3339; seconds with "s"), written as protobuf-es's toJson writes it for a whole
// number of milliseconds: fractional digits only when there are any, three of them.
const timestampWriter = new MessageWriter<Timestamp, number>(
  TimestampSchema,
  {
    seconds: int64((ms) => Math.floor(ms / 1000)),
    nanos: int32((ms) => (ms - Math.floor(ms / 1000) * 1000) * 1_000_000),
  },
  { json: timestampJson },
);
const durationWriter = new MessageWriter<Duration, number>(DurationSchema, {
  seconds: int64((ms) => (ms < 0 ? -Math.floor(-ms / 1000) : Math.floor(ms / 1000))),
  nanos: int32((ms) => {
    const abs = Math.abs(ms);
    const nanos = (abs - Math.floor(abs / 1000) * 1000) * 1_000_000;
    return ms < 0 && nanos !== 0 ? -nanos : nanos;
  }),
}, { json: durationJson });

/** timestampJson is epoch milliseconds as a Timestamp's JSON ("1970-01-01T00:00:00Z", ".5" written ".500"). */
function timestampJson(ms: number): string {
  const iso = new Date(ms).toISOString(); // ...T00:00:00.000Z, years 0001-9999 (a record's times)
  return ms % 1000 === 0 ? `"${iso.slice(0, -5)}Z"` : `"${iso}"`;
}

/** durationJson is milliseconds as a Duration's JSON ("10s", "1.500s", "-0.250s"). */
function durationJson(ms: number): string {
  const abs = Math.abs(ms);
  const seconds = Math.floor(abs / 1000);
  const millis = abs - seconds * 1000;
  const sign = ms < 0 ? "-" : "";
  return millis === 0 ? `"${sign}${seconds}s"` : `"${sign}${seconds}.${String(millis).padStart(3, "0")}s"`;
}

/** timestampMs is a google.protobuf.Timestamp field from epoch milliseconds (undefined: left out; 0 is an empty message). */
export function timestampMs<S>(get: (s: S) => number | undefined): Column<S, Timestamp | undefined> {
  return message(timestampWriter, get);
}

/** durationMs is a google.protobuf.Duration field from milliseconds (undefined: left out). */
export function durationMs<S>(get: (s: S) => number | undefined): Column<S, Duration | undefined> {
  return message(durationWriter, get);
}
