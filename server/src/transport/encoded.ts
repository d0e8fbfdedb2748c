import { toBinary, toJsonString } from "@bufbuild/protobuf";
import { InstanceSchema } from "@maxine/sdk/gen/maxine/registry/v1/registry_pb";
import type { InstanceRecord } from "../registry/instance.js";
import type { Discovered } from "../registry/registry.js";
import type { Store } from "../store/store.js";
import { instanceToPb } from "./convert.js";

// Encoded instances. Records are immutable (a change makes a new one), so a
// record's Instance is encoded once, as protobuf and as JSON, and every
// answer, snapshot and event that carries it reuses the bytes. Messages
// around them are written by hand: only the fields that wrap cached
// instances, and each writer is checked byte for byte against protobuf-es
// (test/encoded.test.ts).

const binaryOf = new WeakMap<InstanceRecord, Uint8Array>();
const jsonOf = new WeakMap<InstanceRecord, string>();

/** instanceBytes returns r's Instance as protobuf, encoded once per record. */
export function instanceBytes(r: InstanceRecord): Uint8Array {
  let b = binaryOf.get(r);
  if (b === undefined) binaryOf.set(r, (b = toBinary(InstanceSchema, instanceToPb(r))));
  return b;
}

/** instanceJson returns r's Instance in the JSON mapping, encoded once per record. */
export function instanceJson(r: InstanceRecord): string {
  let j = jsonOf.get(r);
  if (j === undefined) jsonOf.set(r, (j = toJsonString(InstanceSchema, instanceToPb(r))));
  return j;
}

/**
 * encodeStoredRecords encodes each record as the store commits it, so that
 * the first watcher after a bulk registration does not pay for encoding a
 * whole service in its snapshot (about 10 µs per write, off the read path).
 * It returns the unsubscribe.
 */
export function encodeStoredRecords(store: Store): () => void {
  return store.subscribe((c) => {
    if (c.type !== "REMOVED") instanceBytes(c.instance);
  });
}

// DiscoverResponse field numbers (registry.proto).
const DISCOVER_INSTANCE = 1;
const DISCOVER_INSTANCES = 2;
const DISCOVER_REVISION = 3;
const DISCOVER_REGISTRY_ID = 4;

/** discoverBinary encodes a DiscoverResponse as protobuf-es's toBinary would. */
export function discoverBinary(d: Discovered, registryId: string): Buffer {
  const parts: Uint8Array[] = [lengthDelimited(DISCOVER_INSTANCE, instanceBytes(d.chosen))];
  for (const r of d.all) parts.push(lengthDelimited(DISCOVER_INSTANCES, instanceBytes(r)));
  if (d.revision !== 0) {
    const head: number[] = [];
    varint(head, (DISCOVER_REVISION << 3) | 0);
    varint(head, d.revision);
    parts.push(Uint8Array.from(head));
  }
  if (registryId !== "") parts.push(lengthDelimited(DISCOVER_REGISTRY_ID, Buffer.from(registryId, "utf8")));
  return Buffer.concat(parts);
}

/** discoverJson encodes a DiscoverResponse as protobuf-es's toJsonString would (fields in number order, zero values left out). */
export function discoverJson(d: Discovered, registryId: string): string {
  let out = `{"instance":${instanceJson(d.chosen)}`;
  if (d.all.length > 0) out += `,"instances":[${d.all.map(instanceJson).join(",")}]`;
  if (d.revision !== 0) out += `,"revision":"${d.revision}"`;
  if (registryId !== "") out += `,"registryId":${JSON.stringify(registryId)}`;
  return `${out}}`;
}

/** lengthDelimited writes one length-delimited field: tag, length, bytes. */
export function lengthDelimited(field: number, bytes: Uint8Array): Buffer {
  const head: number[] = [];
  varint(head, (field << 3) | 2);
  varint(head, bytes.length);
  const out = Buffer.allocUnsafe(head.length + bytes.length);
  out.set(head, 0);
  out.set(bytes, head.length);
  return out;
}

/** varint appends n (a non-negative safe integer) as a protobuf varint. */
function varint(out: number[], n: number): void {
  while (n > 0x7f) {
    out.push((n % 0x80) | 0x80);
    n = Math.floor(n / 0x80);
  }
  out.push(n);
}
