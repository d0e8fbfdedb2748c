import {
  DiscoverResponseSchema,
  EventTypeSchema,
  InstanceKeySchema,
  InstanceSchema,
  RegisterResponseSchema,
  RemovalReasonSchema,
  SnapshotChunkSchema,
  WatchEventSchema,
  WatchServicesResponseSchema,
  type DiscoverResponse,
  type InstanceKey as InstanceKeyPb,
  type RegisterResponse,
  type SnapshotChunk,
  type WatchEvent,
} from "@maxine/sdk/gen/maxine/registry/v1/registry_pb";
import type { InstanceKey, InstanceRecord, LeaseState } from "../domain/instance.js";
import type { Discovered, Registered } from "../registry/registry.js";
import type { Store } from "../store/store.js";
import type { WatchEventItem } from "../watch/items.js";
import { eventTypeToPb, removalToPb } from "./convert.js";
import { instanceTailWriter, instanceWriter, leaseWriter } from "./instance-fields.js";
import { durationMs, encoded, encodedList, enumOf, messages, splicedBytes, splicedList, string, timestampMs, uint64, bytesOf, type EncodedBytes, type Spliced } from "./schema-columns.js";
import { fieldNamed, MessageWriter, oneofFrame, Sizes } from "./schema-writer.js";

// Encoded instances. Records are immutable (a change makes a new one), so a
// record's Instance is encoded once, as protobuf and as JSON, and every
// answer, snapshot and event that carries it reuses the bytes. The messages
// around them are written by MessageWriters compiled from the generated
// schema (schema-writer.ts): tags, wire types and field order come from the
// descriptors, each table names every field of its message, and the cached
// Instance bytes are spliced in. test/encoded.test.ts and
// test/wire-properties.test.ts check every writer byte for byte against
// protobuf-es; docs/decisions/0001-fast-encoding.md says why they exist.

const jsonOf = new WeakMap<InstanceRecord, string>();

/**
 * instanceBytes returns r's Instance as protobuf, encoded once per record
 * and kept with it as a latin1 string (EncodedBytes): on the V8 heap in
 * one object, where a buffer per record cost two objects and memory
 * outside the heap, and a slice of Node's shared pool kept a whole 8 KB
 * chunk alive (bench/instance-heap.mjs).
 */
export function instanceBytes(r: InstanceRecord): EncodedBytes {
  return (r.encoded ??= encodeInstance(r).toString("latin1"));
}

/**
 * encodeInstance writes r as protobuf-es writes its Instance (instanceFields
 * in instance-fields.ts): fields in number order, zero values left out, map
 * entries in the record's key order with key and value always written.
 */
export function encodeInstance(r: InstanceRecord): Buffer {
  return instanceWriter.encode(r);
}

/** instanceJson returns r's Instance in the JSON mapping, encoded once per record. */
export function instanceJson(r: InstanceRecord): string {
  let j = jsonOf.get(r);
  if (j === undefined) jsonOf.set(r, (j = instanceWriter.json(r)));
  return j;
}

const known = (l: LeaseState): boolean => l.load !== undefined || l.expiresAt !== undefined;

/**
 * listedInstanceBytes is r's Instance with its live lease state (reported
 * load, lease expiry): the record's cached bytes followed by leaseWriter's
 * few bytes for this answer, which is what protobuf-es writes for the whole
 * Instance (the per-answer fields have the highest numbers). Discover
 * answers write the same bytes straight into their buffer (splicedList).
 */
export function listedInstanceBytes(r: InstanceRecord, lease: LeaseState): Uint8Array {
  return known(lease) ? splicedBytes(leaseWriter, listed(r, lease)) : bytesOf(instanceBytes(r));
}

/**
 * listed is r's cached Instance bytes spliced with its lease state: the
 * lease's fields go before the check's (numbered above them), which only
 * an instance with a check has, so its tail is measured only then.
 */
function listed(r: InstanceRecord, lease: LeaseState): Spliced<LeaseState> {
  return { cached: instanceBytes(r), suffix: lease, tail: r.health === undefined ? 0 : instanceTailWriter.size(r, new Sizes()) };
}

/** listedInstanceJson is listedInstanceBytes in the JSON mapping: the cached JSON with the lease's fields spliced in last. */
export function listedInstanceJson(r: InstanceRecord, lease: LeaseState): string {
  const cached = instanceJson(r);
  if (!known(lease)) return cached;
  const live = leaseWriter.json(lease); // {"reportedLoad":...}, never "{}"
  if (r.health !== undefined) {
    // the check's fields come after the lease's: cached is {head,tail}, the answer {head,live,tail}
    const tail = instanceTailWriter.json(r); // {"healthCheck":...}
    const head = cached.slice(0, cached.length - tail.length + 1); // "{...," or "{"
    return `${head}${live.slice(1, -1)},${tail.slice(1)}`;
  }
  return cached === "{}" ? live : `${cached.slice(0, -1)},${live.slice(1)}`;
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

/** DiscoverSource is a DiscoverResponse with its instances already encoded. */
interface DiscoverSource {
  readonly chosen: EncodedBytes | undefined;
  readonly all: readonly Spliced<LeaseState>[];
  readonly revision: number;
  readonly registryId: string;
}

const discoverWriter = new MessageWriter<DiscoverResponse, DiscoverSource>(DiscoverResponseSchema, {
  instance: encoded(InstanceSchema, (d) => d.chosen),
  instances: splicedList(leaseWriter, (d) => d.all),
  revision: uint64((d) => d.revision),
  registryId: string((d) => d.registryId),
});

/** discoverBinary encodes a DiscoverResponse as protobuf-es's toBinary would. */
export function discoverBinary(d: Discovered, registryId: string): Buffer {
  return discoverWriter.encode({
    chosen: d.chosen === undefined ? undefined : instanceBytes(d.chosen),
    all: d.all.map((r, i) => listed(r, d.leases[i]!)),
    revision: d.revision,
    registryId,
  });
}

const registerWriter = new MessageWriter<RegisterResponse, { readonly r: Registered; readonly registryId: string }>(RegisterResponseSchema, {
  // the JSON of a Register's new record is written once and not kept: Discover keeps the JSON of records it serves
  instance: encoded(InstanceSchema, (s) => instanceBytes(s.r.instance), (s) => instanceWriter.json(s.r.instance)),
  leaseTtl: durationMs((s) => s.r.ttlMs),
  leaseExpiresAt: timestampMs((s) => s.r.expiresAt),
  revision: uint64((s) => s.r.revision),
  registryId: string((s) => s.registryId),
});

/** registerBinary encodes a RegisterResponse as protobuf-es's toBinary would. */
export function registerBinary(r: Registered, registryId: string): Buffer {
  return registerWriter.encode({ r, registryId });
}

/** registerJson writes a RegisterResponse as protobuf-es's toJsonString would. */
export function registerJson(r: Registered, registryId: string): string {
  return registerWriter.json({ r, registryId });
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
  if (d.all.length > 0 || d.chosen === undefined) return encode(); // include_all: live lease state, written per answer
  const kept = (format === "json" ? keptJson : keptBinary).get(d.chosen);
  if (kept !== undefined && kept.revision === d.revision && kept.registryId === registryId) return kept.bytes;
  const bytes = encode();
  (format === "json" ? keptJson : keptBinary).set(d.chosen, { revision: d.revision, registryId, bytes });
  return bytes;
}

const keptJson = new WeakMap<InstanceRecord, { revision: number; registryId: string; bytes: Buffer }>();
const keptBinary = new WeakMap<InstanceRecord, { revision: number; registryId: string; bytes: Buffer }>();

// DiscoverResponse's JSON names, from the schema.
const DISCOVER_JSON = {
  instance: JSON.stringify(fieldNamed(DiscoverResponseSchema, "instance").jsonName),
  instances: JSON.stringify(fieldNamed(DiscoverResponseSchema, "instances").jsonName),
  revision: JSON.stringify(fieldNamed(DiscoverResponseSchema, "revision").jsonName),
  registryId: JSON.stringify(fieldNamed(DiscoverResponseSchema, "registryId").jsonName),
} satisfies Record<keyof typeof discoverWriter.schema.field, string>;

/** discoverJson encodes a DiscoverResponse as protobuf-es's toJsonString would (fields in number order, zero values left out). */
export function discoverJson(d: Discovered, registryId: string): string {
  const parts: string[] = [];
  if (d.chosen !== undefined) parts.push(`${DISCOVER_JSON.instance}:${instanceJson(d.chosen)}`);
  if (d.all.length > 0) parts.push(`${DISCOVER_JSON.instances}:[${d.all.map((r, i) => listedInstanceJson(r, d.leases[i]!)).join(",")}]`);
  if (d.revision !== 0) parts.push(`${DISCOVER_JSON.revision}:"${d.revision}"`);
  if (registryId !== "") parts.push(`${DISCOVER_JSON.registryId}:${JSON.stringify(registryId)}`);
  return `{${parts.join(",")}}`;
}

const watchEventWriter = new MessageWriter<WatchEvent, { readonly item: WatchEventItem; readonly instance: EncodedBytes }>(WatchEventSchema, {
  type: enumOf(EventTypeSchema, (e) => eventTypeToPb[e.item.type]),
  instance: encoded(InstanceSchema, (e) => e.instance),
  revision: uint64((e) => e.item.revision),
  removalReason: enumOf(RemovalReasonSchema, (e) => (e.item.removalReason === undefined ? 0 : removalToPb[e.item.removalReason])),
});
const eventFrame = oneofFrame(WatchServicesResponseSchema, "event", watchEventWriter);

/**
 * watchEventFrame writes a WatchServicesResponse holding one event as one
 * gRPC message frame, as protobuf-es writes watchItemToPb(item): the event's
 * fields in number order around the record's cached Instance bytes. A change
 * is encoded once and the frame written to every watcher that sees it.
 */
export function watchEventFrame(item: WatchEventItem): Buffer {
  return eventFrame({ item, instance: instanceBytes(item.instance) });
}

const instanceKeyWriter = new MessageWriter<InstanceKeyPb, InstanceKey>(InstanceKeySchema, {
  namespace: string((k) => k.namespace),
  service: string((k) => k.service),
  instanceId: string((k) => k.instanceId),
});

const snapshotWriter = new MessageWriter<SnapshotChunk, { readonly instances: readonly EncodedBytes[]; readonly removed: readonly InstanceKey[] }>(SnapshotChunkSchema, {
  instances: encodedList(InstanceSchema, (c) => c.instances),
  removed: messages(instanceKeyWriter, (c) => c.removed),
});
const chunkFrame = oneofFrame(WatchServicesResponseSchema, "snapshot", snapshotWriter);

/**
 * snapshotFrame writes a WatchServicesResponse holding one snapshot chunk of
 * records (and, in a differential snapshot, the held instances removed) as
 * one gRPC message frame, as protobuf-es writes watchItemToPb of the chunk,
 * from the records' cached Instance bytes.
 */
export function snapshotFrame(records: readonly InstanceRecord[], removed: readonly InstanceKey[] = []): Buffer {
  return chunkFrame({ instances: records.map(instanceBytes), removed });
}
