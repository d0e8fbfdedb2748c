import { isUtf8 } from "node:buffer";
import type { DescField, DescMessage } from "@bufbuild/protobuf";
import { tagValue } from "./proto-write.js";
import { fieldNamed } from "./schema-writer.js";

// What the fast readers of hot request messages share (heartbeat-wire.ts,
// xds-wire.ts): tags taken from the schema and checked at load, and a
// reader of varints, lengths and strings that declines (undefined, -1)
// whatever the fast path does not take, for fromBinary to decode.

/** readTag is the tag of schema's field name as a fast reader reads it: it throws at load unless the field fits what the reader reads (named by reader). */
export function readTag(schema: DescMessage, name: string, wireType: number, fits: (f: DescField) => boolean, reader: string): number {
  const field = fieldNamed(schema, name);
  if (field.oneof !== undefined || !fits(field)) throw new Error(`${schema.typeName}.${field.name}: not what the fast ${reader} reader reads`);
  return tagValue(field.number, wireType);
}

/** Reader reads varints and lengths from buf; every method returns undefined (or -1) for input the fast path does not take. */
export class Reader {
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

