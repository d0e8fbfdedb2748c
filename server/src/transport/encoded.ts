import { toJsonString } from "@bufbuild/protobuf";
import { InstanceSchema } from "@maxine/sdk/gen/maxine/registry/v1/registry_pb";
import type { InstanceRecord } from "../domain/instance.js";
import type { Discovered, Registered } from "../registry/registry.js";
import type { Store } from "../store/store.js";
import type { WatchEventItem } from "../watch/items.js";
import { eventTypeToPb, instanceToPb, removalToPb, statusToPb } from "./convert.js";
import { lengthSize, stringSize, timestampSize, uintSize, writeBytes, writeString, writeTimestamp, writeUint, writeVarint } from "./proto-write.js";

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
  if (b === undefined) binaryOf.set(r, (b = encodeInstance(r)));
  return b;
}

// Instance field numbers (registry.proto).
const I_NAMESPACE = 1;
const I_SERVICE = 2;
const I_INSTANCE_ID = 3;
const I_HOST = 4;
const I_PORT = 5;
const I_VERSION = 6;
const I_ZONE = 7;
const I_TAGS = 8;
const I_METADATA = 9;
const I_WEIGHT = 10;
const I_STATUS = 11;
const I_REGISTERED_AT = 12;
const I_UPDATED_AT = 13;
const I_CREATE_REVISION = 14;
const I_MOD_REVISION = 15;

/**
 * encodeInstance writes r as protobuf-es writes instanceToPb(r): fields in
 * number order, zero values left out, map entries in the record's key order
 * with key and value always written.
 */
export function encodeInstance(r: InstanceRecord): Buffer {
  const entries = Object.entries(r.metadata);
  let size = stringSize(r.namespace) + stringSize(r.service) + stringSize(r.instanceId) + stringSize(r.host);
  size += uintSize(r.port) + stringSize(r.version) + stringSize(r.zone);
  for (const t of r.tags) size += 1 + lengthSize(Buffer.byteLength(t, "utf8"));
  for (const [k, v] of entries) size += 1 + lengthSize(entrySize(k, v));
  const status = statusToPb[r.status];
  size += uintSize(r.weight) + uintSize(status);
  size += 1 + lengthSize(timestampSize(r.registeredAt)) + 1 + lengthSize(timestampSize(r.updatedAt));
  size += uintSize(r.createRevision) + uintSize(r.modRevision);
  const out = Buffer.allocUnsafe(size);
  let at = writeString(out, 0, I_NAMESPACE, r.namespace);
  at = writeString(out, at, I_SERVICE, r.service);
  at = writeString(out, at, I_INSTANCE_ID, r.instanceId);
  at = writeString(out, at, I_HOST, r.host);
  at = writeUint(out, at, I_PORT, r.port);
  at = writeString(out, at, I_VERSION, r.version);
  at = writeString(out, at, I_ZONE, r.zone);
  for (const t of r.tags) {
    out[at++] = (I_TAGS << 3) | 2;
    at = writeVarint(out, at, Buffer.byteLength(t, "utf8"));
    at += out.write(t, at, "utf8");
  }
  for (const [k, v] of entries) {
    out[at++] = (I_METADATA << 3) | 2;
    at = writeVarint(out, at, entrySize(k, v));
    at = writeEntryPart(out, at, 1, k);
    at = writeEntryPart(out, at, 2, v);
  }
  at = writeUint(out, at, I_WEIGHT, r.weight);
  at = writeUint(out, at, I_STATUS, status);
  out[at++] = (I_REGISTERED_AT << 3) | 2;
  at = writeVarint(out, at, timestampSize(r.registeredAt));
  at = writeTimestamp(out, at, r.registeredAt);
  out[at++] = (I_UPDATED_AT << 3) | 2;
  at = writeVarint(out, at, timestampSize(r.updatedAt));
  at = writeTimestamp(out, at, r.updatedAt);
  at = writeUint(out, at, I_CREATE_REVISION, r.createRevision);
  at = writeUint(out, at, I_MOD_REVISION, r.modRevision);
  if (at !== size) throw new Error(`encodeInstance: wrote ${at} bytes, expected ${size}`);
  return out;
}

function entrySize(k: string, v: string): number {
  return 1 + lengthSize(Buffer.byteLength(k, "utf8")) + 1 + lengthSize(Buffer.byteLength(v, "utf8"));
}

/** writeEntryPart writes a map entry's key (1) or value (2): written even when empty. */
function writeEntryPart(out: Buffer, at: number, field: number, s: string): number {
  out[at++] = (field << 3) | 2;
  at = writeVarint(out, at, Buffer.byteLength(s, "utf8"));
  return at + out.write(s, at, "utf8");
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
  const chosen = instanceBytes(d.chosen);
  const all = d.all.map(instanceBytes);
  let size = 1 + lengthSize(chosen.length) + uintSize(d.revision) + stringSize(registryId);
  for (const b of all) size += 1 + lengthSize(b.length);
  const out = Buffer.allocUnsafe(size);
  let at = writeBytes(out, 0, DISCOVER_INSTANCE, chosen);
  for (const b of all) at = writeBytes(out, at, DISCOVER_INSTANCES, b);
  at = writeUint(out, at, DISCOVER_REVISION, d.revision);
  writeString(out, at, DISCOVER_REGISTRY_ID, registryId);
  return out;
}

// RegisterResponse field numbers (registry.proto).
const REGISTER_INSTANCE = 1;
const REGISTER_LEASE_TTL = 2;
const REGISTER_LEASE_EXPIRES_AT = 3;
const REGISTER_REVISION = 4;
const REGISTER_REGISTRY_ID = 5;

/** registerBinary encodes a RegisterResponse as protobuf-es's toBinary would. */
export function registerBinary(r: Registered, registryId: string): Buffer {
  const instance = instanceBytes(r.instance);
  const ttl = timestampSize(r.ttlMs); // a Duration of positive milliseconds has a Timestamp's layout
  const expires = timestampSize(r.expiresAt);
  const size =
    1 + lengthSize(instance.length) + 1 + lengthSize(ttl) + 1 + lengthSize(expires) + uintSize(r.revision) + stringSize(registryId);
  const out = Buffer.allocUnsafe(size);
  let at = writeBytes(out, 0, REGISTER_INSTANCE, instance);
  out[at++] = (REGISTER_LEASE_TTL << 3) | 2;
  at = writeVarint(out, at, ttl);
  at = writeTimestamp(out, at, r.ttlMs);
  out[at++] = (REGISTER_LEASE_EXPIRES_AT << 3) | 2;
  at = writeVarint(out, at, expires);
  at = writeTimestamp(out, at, r.expiresAt);
  at = writeUint(out, at, REGISTER_REVISION, r.revision);
  writeString(out, at, REGISTER_REGISTRY_ID, registryId);
  return out;
}

/**
 * discoverAnswer is a Discover answer in format (discoverBinary, or
 * discoverJson as UTF-8). An answer of one chosen instance (no
 * include_all) is kept on the chosen record while the registry's revision
 * and id hold: callers repeat the same lookup, and a strategy rotates over
 * a few records, so most answers are written from a kept buffer.
 */
export function discoverAnswer(d: Discovered, registryId: string, format: "binary" | "json"): Buffer {
  const encode = (): Buffer => (format === "json" ? Buffer.from(discoverJson(d, registryId)) : discoverBinary(d, registryId));
  if (d.all.length > 0) return encode();
  const kept = (format === "json" ? keptJson : keptBinary).get(d.chosen);
  if (kept !== undefined && kept.revision === d.revision && kept.registryId === registryId) return kept.bytes;
  const bytes = encode();
  (format === "json" ? keptJson : keptBinary).set(d.chosen, { revision: d.revision, registryId, bytes });
  return bytes;
}

const keptJson = new WeakMap<InstanceRecord, { revision: number; registryId: string; bytes: Buffer }>();
const keptBinary = new WeakMap<InstanceRecord, { revision: number; registryId: string; bytes: Buffer }>();

/** discoverJson encodes a DiscoverResponse as protobuf-es's toJsonString would (fields in number order, zero values left out). */
export function discoverJson(d: Discovered, registryId: string): string {
  let out = `{"instance":${instanceJson(d.chosen)}`;
  if (d.all.length > 0) out += `,"instances":[${d.all.map(instanceJson).join(",")}]`;
  if (d.revision !== 0) out += `,"revision":"${d.revision}"`;
  if (registryId !== "") out += `,"registryId":${JSON.stringify(registryId)}`;
  return `${out}}`;
}

// WatchServicesResponse.event and WatchEvent field numbers (registry.proto).
const R_EVENT = 3;
const E_TYPE = 1;
const E_INSTANCE = 2;
const E_REVISION = 3;
const E_REMOVAL_REASON = 4;

/**
 * watchEventFrame writes a WatchServicesResponse holding one event as one
 * gRPC message frame, as protobuf-es writes watchItemToPb(item): the event's
 * fields in number order around the record's cached Instance bytes. A change
 * is encoded once and the frame written to every watcher that sees it.
 */
export function watchEventFrame(item: WatchEventItem): Buffer {
  const instance = instanceBytes(item.instance);
  const type = eventTypeToPb[item.type];
  const reason = item.removalReason === undefined ? 0 : removalToPb[item.removalReason];
  const event = uintSize(type) + 1 + lengthSize(instance.length) + uintSize(item.revision) + uintSize(reason);
  const size = 1 + lengthSize(event);
  const out = Buffer.allocUnsafe(5 + size);
  out[0] = 0; // not compressed
  out.writeUInt32BE(size, 1);
  out[5] = (R_EVENT << 3) | 2;
  let at = writeVarint(out, 6, event);
  at = writeUint(out, at, E_TYPE, type);
  at = writeBytes(out, at, E_INSTANCE, instance);
  at = writeUint(out, at, E_REVISION, item.revision);
  writeUint(out, at, E_REMOVAL_REASON, reason);
  return out;
}

/** lengthDelimited encodes one length-delimited field (numbers below 16): tag, length, bytes. */
export function lengthDelimited(field: number, bytes: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(1 + lengthSize(bytes.length));
  writeBytes(out, 0, field, bytes);
  return out;
}
