import { ScalarType, type DescField, type DescMessage, type Message, type MessageInitShape } from "@bufbuild/protobuf";
import type { GenMessage } from "@bufbuild/protobuf/codegenv2";
import { tagBytes, varintSize, WIRE_LENGTH_DELIMITED, writeTag, writeVarint } from "./proto-write.js";

// Protobuf writers compiled from the generated schema. A MessageWriter is
// built once per message at module load from a table that says, for every
// field of the generated message type, where its value comes from in a
// server-side source object (a record, an outcome). The table's type
// requires a column for each field of the message and the column's value
// type must be the field's generated type; at load, each column is checked
// against the field's descriptor (kind, scalar type, message type) and
// compiled into a step with its tag bytes precomputed. Encoding then makes
// two passes with no reflection: sizes, then bytes into one buffer, exactly
// as protobuf-es's toBinary writes (fields in number order, implicit-presence
// zero values left out, map entries with key and value always written).
// The column kinds (string, uint64, a nested message, ...) are in
// schema-columns.ts. The same table writes the JSON mapping (json): each
// field's value as protobuf-es's toJsonString writes it, under its JSON
// name, fields in number order (protobuf-es's order too), zero values of
// implicit-presence fields left out.

/** FieldName is the name of a generated message's field as its TypeScript property (localName). */
export type FieldName<M extends Message> = Exclude<keyof M, "$typeName" | "$unknown">;

/** Table says where each field of M comes from in a source S: one column per field, typed against M's generated type. */
export type Table<M extends Message, S> = { readonly [K in FieldName<M>]-?: Column<S, M[K]> };

/**
 * Sizes carries nested messages' sizes from the sizing pass to the writing
 * pass; both visit the nested messages in the same (pre-)order.
 */
export class Sizes {
  readonly list: number[] = [];
  next = 0;
}

/** NO_SIZES stands in for Sizes where a message nests none: nothing reads or writes it. */
const NO_SIZES: Sizes = Object.freeze(new Sizes());

/** Step is one field compiled against its descriptor (schema-columns.ts builds them). */
export interface Step<S> {
  size(s: S, sizes: Sizes): number;
  write(out: Buffer, at: number, s: S, sizes: Sizes): number;
  /** init is the field's value as protobuf-es's create() takes it. */
  init(s: S): unknown;
  /** nests is true for steps that keep nested messages' sizes in Sizes. */
  readonly nests?: boolean;
  /** json is the field's value in the JSON mapping, undefined when toJsonString leaves the field out; absent for a column that writes only protobuf (cached bytes). */
  json?(s: S): string | undefined;
}

/** Column reads a field whose generated type is T from a source S; build one with the functions below. */
export interface Column<S, T> {
  /** compile checks the column against field (it throws when they do not fit) and returns the field's step. */
  readonly compile: (field: DescField) => Step<S>;
  /** valueType only carries T, so that a table's column must match its field's generated type. */
  readonly valueType?: (t: T) => T;
}

/** MessageWriter writes messages of M from sources S; see the file comment. */
export class MessageWriter<M extends Message, S> {
  private readonly steps: Step<S>[];
  private readonly names: string[];
  /** keys are the fields' JSON names as JSON object keys with their colon; missingJson names a field without a JSON step. */
  private readonly keys: string[];
  private readonly missingJson: string | undefined;
  private readonly wktJson: ((s: S) => string) | undefined;
  /** nests is true when the message has message fields written from tables (whose sizes Sizes carries). */
  readonly nests: boolean;

  /** json, for a well-known type whose JSON mapping is not an object (Timestamp, Duration), writes the whole value. */
  constructor(readonly schema: GenMessage<M>, table: Table<M, S>, { json }: { json?: (s: S) => string } = {}) {
    const columns = table as unknown as Record<string, Column<S, unknown> | undefined>;
    const fields = [...schema.fields].sort((a, b) => a.number - b.number); // toBinary's order
    for (const name of Object.keys(columns)) {
      if ((schema as DescMessage).field[name] === undefined) throw new Error(`${schema.typeName}: the table has ${name}, the schema has no such field`);
    }
    this.names = fields.map((f) => f.localName);
    this.steps = fields.map((f) => {
      const column = columns[f.localName];
      if (column === undefined) throw new Error(`${schema.typeName}.${f.name}: no column in the table (regenerated code and an old table?)`);
      if (f.oneof !== undefined) throw new Error(`${schema.typeName}.${f.name}: oneof members are written with oneofFrame, not a table`);
      return column.compile(f);
    });
    this.nests = this.steps.some((step) => step.nests === true);
    this.keys = fields.map((f) => `${JSON.stringify(f.jsonName)}:`);
    const noJson = fields.find((_, i) => this.steps[i]!.json === undefined);
    this.missingJson = noJson === undefined ? undefined : `${schema.typeName}.${noJson.name}: its column writes protobuf only, no JSON`;
    this.wktJson = json;
    ({ size: this.size, write: this.write } = unrolled(this.steps));
  }

  /** size is the size of s's message body (no tag or length). */
  readonly size: (s: S, sizes: Sizes) => number;

  /** write writes s's message body at at (after size filled sizes) and returns the offset after it. */
  readonly write: (out: Buffer, at: number, s: S, sizes: Sizes) => number;

  /** encode returns s's message as protobuf-es's toBinary writes it. */
  encode(s: S): Buffer {
    const sizes = this.nests ? new Sizes() : NO_SIZES;
    const n = this.size(s, sizes);
    const out = Buffer.allocUnsafe(n);
    finished(this.schema, this.write(out, 0, s, sizes), n);
    return out;
  }

  /** frame returns s's message as one gRPC message frame (5-byte envelope, uncompressed). */
  frame(s: S): Buffer {
    const sizes = this.nests ? new Sizes() : NO_SIZES;
    const n = this.size(s, sizes);
    const out = Buffer.allocUnsafe(5 + n);
    out[0] = 0; // not compressed
    out.writeUInt32BE(n, 1);
    finished(this.schema, this.write(out, 5, s, sizes), 5 + n);
    return out;
  }

  /** json returns s's message as protobuf-es's toJsonString writes it (no options). */
  json(s: S): string {
    if (this.wktJson !== undefined) return this.wktJson(s);
    if (this.missingJson !== undefined) throw new Error(this.missingJson);
    let out = "{";
    for (let i = 0; i < this.steps.length; i++) {
      const v = this.steps[i]!.json!(s);
      if (v === undefined) continue;
      out += out.length === 1 ? this.keys[i]! + v : "," + this.keys[i]! + v;
    }
    return out + "}";
  }

  /** init is s as protobuf-es's create() takes it, for the JSON mapping (toJsonString) and for tests. */
  init(s: S): MessageInitShape<GenMessage<M>> {
    const o: Record<string, unknown> = {};
    for (let i = 0; i < this.steps.length; i++) o[this.names[i]!] = this.steps[i]!.init(s);
    return o as MessageInitShape<GenMessage<M>>;
  }
}

/**
 * unrolled calls each step from a call site of its own, built for this
 * message: a loop over the steps would be one call site seeing every
 * step (megamorphic), and V8 could inline none of them. The source is
 * fixed text; only the step count varies.
 */
function unrolled<S>(steps: readonly Step<S>[]): Pick<MessageWriter<Message, S>, "size" | "write"> {
  const names = steps.map((_, i) => `s${i}`);
  const source = `const [${names.join(", ")}] = steps;
return {
  size: (s, sizes) => 0${names.map((n) => ` + ${n}.size(s, sizes)`).join("")},
  write: (out, at, s, sizes) => {${names.map((n) => ` at = ${n}.write(out, at, s, sizes);`).join("")} return at; },
};`;
  // eslint-disable-next-line @typescript-eslint/no-implied-eval
  return new Function("steps", source)(steps) as Pick<MessageWriter<Message, S>, "size" | "write">;
}

/**
 * oneofFrame returns a writer of whole gRPC message frames (5-byte envelope,
 * uncompressed) of schema's message holding only its oneof member named
 * member, whose body writer writes: the answer to streams whose every
 * message is a oneof.
 */
export function oneofFrame<M extends Message, C extends Message, S>(schema: GenMessage<M>, member: string, body: MessageWriter<C, S>): (s: S) => Buffer {
  const field = fieldNamed(schema, member);
  if (field.oneof === undefined || field.fieldKind !== "message" || field.message.typeName !== body.schema.typeName || field.delimitedEncoding) {
    throw misfit(field, `a oneof member of type ${body.schema.typeName}`);
  }
  const tag = tagBytes(field.number, WIRE_LENGTH_DELIMITED);
  return (s) => {
    const sizes = body.nests ? new Sizes() : NO_SIZES;
    const inner = body.size(s, sizes);
    const size = tag.length + varintSize(inner) + inner;
    const out = Buffer.allocUnsafe(5 + size);
    out[0] = 0; // not compressed
    out.writeUInt32BE(size, 1);
    const at = writeVarint(out, writeTag(out, 5, tag), inner);
    finished(schema, body.write(out, at, s, sizes), 5 + size);
    return out;
  };
}

/** PerAnswerColumn is a column marked by perAnswer. */
type PerAnswerColumn<S, T> = Column<S, T> & { readonly perAnswer: true };

/**
 * perAnswer is the column of a field that a record's cached encoding never
 * holds: its value is known only when an answer is written (a lease's
 * deadline, a reported load), so suffixWriter writes it after the cached
 * bytes. It writes nothing and its init is undefined (unset).
 */
export function perAnswer<S, T>(): PerAnswerColumn<S, T> {
  return { compile: () => NOTHING, perAnswer: true };
}

const NOTHING: Step<unknown> = { size: () => 0, write: (_out, at) => at, init: () => undefined, json: () => undefined };

/** SuffixTable names a column for each of a message's perAnswer fields (the others are written by the cached table). */
export type SuffixTable<M extends Message, S> = { readonly [K in FieldName<M>]?: Column<S, M[K]> };

/**
 * suffixWriter is a writer of the fields cached marks perAnswer, from
 * another source S: inserted into the bytes cached's writer made, before
 * the cached fields numbered above them (tailWriter writes those), they
 * are the message protobuf-es writes with every field. That holds because
 * protobuf-es writes fields in number order, so suffixWriter checks at load
 * that suffix covers exactly cached's perAnswer fields and that no cached
 * field's number lies between two of theirs.
 */
export function suffixWriter<M extends Message, R, S>(schema: GenMessage<M>, cached: Table<M, R>, suffix: SuffixTable<M, S>): MessageWriter<M, S> {
  const cachedColumns = cached as unknown as Record<string, Column<R, unknown> & { perAnswer?: true }>;
  const suffixColumns = suffix as unknown as Record<string, Column<S, unknown> | undefined>;
  const table: Record<string, Column<S, unknown>> = {};
  let lowestSuffix = Infinity;
  let highestSuffix = 0;
  for (const f of schema.fields) {
    const later = cachedColumns[f.localName]?.perAnswer === true;
    const column = suffixColumns[f.localName];
    if (later !== (column !== undefined)) {
      throw new Error(`${schema.typeName}.${f.name}: ${later ? "marked perAnswer in the cached table, no column in the suffix" : "in the suffix but not marked perAnswer in the cached table"}`);
    }
    if (column !== undefined) {
      lowestSuffix = Math.min(lowestSuffix, f.number);
      highestSuffix = Math.max(highestSuffix, f.number);
    }
    table[f.localName] = column ?? { compile: () => NOTHING as Step<S> };
  }
  for (const f of schema.fields) {
    if (cachedColumns[f.localName]?.perAnswer !== true && f.number > lowestSuffix && f.number < highestSuffix) {
      throw new Error(`${schema.typeName}: cached field ${f.number} lies between per-answer fields ${lowestSuffix} and ${highestSuffix}; spliced into the cached bytes, they would break protobuf's field order`);
    }
  }
  return new MessageWriter(schema, table as unknown as Table<M, S>);
}

/**
 * tailWriter is a writer of the cached fields numbered above every field
 * cached marks perAnswer, from the same source: the end of a cached
 * encoding, which the per-answer fields go before. A spliced message is
 * the cached bytes less this tail, the suffix, then the tail (Spliced.tail
 * is its length).
 */
export function tailWriter<M extends Message, R>(schema: GenMessage<M>, cached: Table<M, R>): MessageWriter<M, R> {
  const cachedColumns = cached as unknown as Record<string, Column<R, unknown> & { perAnswer?: true }>;
  let highestSuffix = 0;
  for (const f of schema.fields) if (cachedColumns[f.localName]?.perAnswer === true) highestSuffix = Math.max(highestSuffix, f.number);
  const table: Record<string, Column<R, unknown>> = {};
  for (const f of schema.fields) {
    const column = cachedColumns[f.localName];
    table[f.localName] = f.number > highestSuffix && column !== undefined && column.perAnswer !== true ? column : { compile: () => NOTHING as Step<R> };
  }
  return new MessageWriter(schema, table as unknown as Table<M, R>);
}

/** fieldNamed returns schema's field whose TypeScript name is localName; it throws when there is none, so a renamed field fails at load. */
export function fieldNamed(schema: DescMessage, localName: string): DescField {
  const field = schema.field[localName];
  if (field === undefined) throw new Error(`${schema.typeName}: no field ${localName}`);
  return field;
}

function finished(schema: DescMessage, at: number, size: number): void {
  if (at !== size) throw new Error(`${schema.typeName}: wrote ${at} bytes, sized ${size}`);
}

/** misfit is the load-time error for a column that does not fit its field. */
export function misfit(field: DescField, writes: string): Error {
  const kind = field.fieldKind === "scalar" ? `scalar ${ScalarType[field.scalar]}` : field.fieldKind;
  return new Error(`${field.parent.typeName}.${field.name}: the column writes ${writes}, the schema says ${kind} (field ${field.number})`);
}
