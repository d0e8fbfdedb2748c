import { invalid } from "../domain/errors.js";
import { DEFAULT_NAMESPACE, DEFAULT_WEIGHT, type InstanceKey, type InstanceSpec, type Status } from "../domain/instance.js";
import type { FilterSpec } from "../domain/filter.js";
import type { Holdings } from "../watch/items.js";
import type { CheckInput } from "./check-rules.js";

/** Limits bounds what one client may store; every field is a server setting. */
export interface Limits {
  /** maxTags is the most tags an instance (or a filter) may carry. */
  readonly maxTags: number;
  /** maxTagLength is the longest tag, in characters. */
  readonly maxTagLength: number;
  /** maxMetadataEntries is the most metadata entries an instance may carry. */
  readonly maxMetadataEntries: number;
  /** maxMetadataBytes bounds the UTF-8 size of all metadata keys and values together. */
  readonly maxMetadataBytes: number;
  /** maxInstancesPerService is the most instances one service may hold. */
  readonly maxInstancesPerService: number;
  /** maxWatchServices is the most services one watch may name. */
  readonly maxWatchServices: number;
  /** maxWatchHeld is the most instances a resuming watch may say it holds (WatchServicesRequest.held). */
  readonly maxWatchHeld: number;
}

/** DEFAULT_LIMITS are the limits of a server started with no settings. */
export const DEFAULT_LIMITS: Limits = {
  maxTags: 32,
  maxTagLength: 128,
  maxMetadataEntries: 64,
  maxMetadataBytes: 4096,
  maxInstancesPerService: 10_000,
  maxWatchServices: 1_000,
  maxWatchHeld: 100_000,
};

/** InstanceInput is an instance as a client sent it, before validation. */
export interface InstanceInput {
  readonly namespace: string;
  readonly service: string;
  readonly instanceId: string;
  readonly host: string;
  readonly port: number;
  readonly version: string;
  readonly zone: string;
  readonly tags: readonly string[];
  readonly metadata: Readonly<Record<string, string>>;
  readonly weight: number;
  /** status; undefined means SERVING. */
  readonly status: Status | undefined;
  /** healthCheck is the active check to run against the instance, if any (validated by the registry: check-rules.ts). */
  readonly healthCheck?: CheckInput | undefined;
}

const NAME = /^[A-Za-z0-9._-]{1,128}$/;
const INSTANCE_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const HOST = /^[^\s/]{1,253}$/;
const HOST_MAX = 253;
const LABEL_MAX = 128;
const MAX_WEIGHT = 10_000;
/** CONTROL matches C0 controls, DEL and C1 controls: never part of a name, tag or value a person reads. */
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
/** LONE_SURROGATE matches half a UTF-16 pair: it has no UTF-8 form, so it cannot be stored or sent back as sent. */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

function checkName(field: string, value: string): string {
  if (!NAME.test(value)) {
    throw invalid(field, `must be 1..128 characters of [A-Za-z0-9._-], got ${quote(value)}`);
  }
  return value;
}

/** namespaceOf validates a namespace, mapping empty to "default". */
export function namespaceOf(field: string, value: string): string {
  return value === "" ? DEFAULT_NAMESPACE : checkName(field, value);
}

/** serviceOf validates a service name. */
export function serviceOf(field: string, value: string): string {
  if (value === "") throw invalid(field, "is required");
  return checkName(field, value);
}

/** instanceIdOf validates a client-chosen instance id. */
export function instanceIdOf(field: string, value: string): string {
  if (value === "") throw invalid(field, "is required");
  if (!INSTANCE_ID.test(value)) {
    throw invalid(field, `must be 1..128 characters of [A-Za-z0-9._:-], got ${quote(value)}`);
  }
  return value;
}

/** keyOf validates an instance key; prefix names the field in errors ("key"). */
export function keyOf(prefix: string, k: InstanceKey | undefined): InstanceKey {
  if (k === undefined) throw invalid(prefix, "is required");
  return {
    namespace: namespaceOf(`${prefix}.namespace`, k.namespace),
    service: serviceOf(`${prefix}.service`, k.service),
    instanceId: instanceIdOf(`${prefix}.instance_id`, k.instanceId),
  };
}

/**
 * watchServicesOf validates the services a watch names (none: every service
 * of the namespace) and drops repeats. The count is checked before any name,
 * so a request naming a million services costs one pass.
 */
export function watchServicesOf(field: string, services: readonly string[], limits: Pick<Limits, "maxWatchServices">): string[] {
  const unique = [...new Set(services)];
  if (unique.length > limits.maxWatchServices) {
    throw invalid(field, `at most ${limits.maxWatchServices} services (MAXINE_MAX_WATCH_SERVICES), got ${unique.length}`);
  }
  unique.forEach((s, i) => serviceOf(`${field}[${i}]`, s));
  return unique;
}

/** HeldInput is a watch's holdings as the client sent them (WatchServicesRequest.held), before validation. */
export interface HeldInput {
  readonly services: readonly { readonly service: string; readonly instances: readonly { readonly instanceId: string; readonly digest: bigint }[] }[];
}

/**
 * watchHeldOf validates what a resuming watch says it holds: at most
 * maxWatchHeld instances in all (counted before anything else is read),
 * each service and instance id valid and named once. Undefined or empty:
 * none (the snapshot is whole).
 */
export function watchHeldOf(field: string, held: HeldInput | undefined, limits: Limits): Holdings | undefined {
  if (held === undefined || held.services.length === 0) return undefined;
  let count = 0;
  for (const s of held.services) count += s.instances.length;
  if (count > limits.maxWatchHeld) {
    throw invalid(`${field}.services`, `at most ${limits.maxWatchHeld} held instances in all (MAXINE_WATCH_MAX_HELD), got ${count}`);
  }
  const out = new Map<string, Map<string, bigint>>();
  held.services.forEach((s, i) => {
    const at = `${field}.services[${i}]`;
    const service = serviceOf(`${at}.service`, s.service);
    if (out.has(service)) throw invalid(`${at}.service`, `must name each service once, ${quote(service)} is repeated`);
    const ids = new Map<string, bigint>();
    s.instances.forEach((h, j) => {
      const id = instanceIdOf(`${at}.instances[${j}].instance_id`, h.instanceId);
      if (ids.has(id)) throw invalid(`${at}.instances[${j}].instance_id`, `must name each instance once, ${quote(id)} is repeated`);
      ids.set(id, h.digest);
    });
    out.set(service, ids);
  });
  return out;
}

/**
 * hashKeyOf checks that a hash strategy has its key. Discover calls it
 * before any lookup, so the answer does not depend on the service existing.
 */
export function hashKeyOf(strategy: string, hashKey: string): string {
  if (hashKey === "" && (strategy === "CONSISTENT_HASH" || strategy === "RENDEZVOUS")) {
    throw invalid("hash_key", `is required for STRATEGY_${strategy}`);
  }
  return hashKey;
}

/**
 * textOf rejects what a string field must never carry: control characters
 * (U+0000..U+001F, U+007F..U+009F), which would corrupt logs, terminals and
 * line-based tools, and lone surrogates, which have no UTF-8 form.
 */
export function textOf(field: string, value: string): string {
  const rule = textRule(value);
  if (rule !== undefined) throw invalid(field, rule);
  return value;
}

function textRule(value: string): string | undefined {
  const control = CONTROL.exec(value);
  if (control !== null) return `must not contain control characters (${codePoint(control[0])} at ${control.index})`;
  const lone = LONE_SURROGATE.exec(value);
  if (lone !== null) return `must be well-formed Unicode (lone surrogate ${codePoint(lone[0])} at ${lone.index})`;
  return undefined;
}

function codePoint(ch: string): string {
  return `U+${ch.charCodeAt(0).toString(16).toUpperCase().padStart(4, "0")}`;
}

function label(field: string, value: string): string {
  if (value.length > LABEL_MAX) throw invalid(field, `must be at most ${LABEL_MAX} characters, got ${value.length}`);
  return textOf(field, value);
}

function tagsOf(field: string, tags: readonly string[], limits: Limits): string[] {
  // Count before checking or sorting: a client sending a million tags pays
  // for one pass, not a sort. Errors name a tag by its index in the request.
  const first = new Map<string, number>();
  tags.forEach((t, i) => {
    if (!first.has(t)) first.set(t, i);
  });
  if (first.size > limits.maxTags) {
    throw invalid(field, `at most ${limits.maxTags} tags (MAXINE_MAX_TAGS), got ${first.size}`);
  }
  for (const [t, i] of first) {
    if (t === "") throw invalid(`${field}[${i}]`, "must not be empty");
    if (t.length > limits.maxTagLength) {
      throw invalid(`${field}[${i}]`, `at most ${limits.maxTagLength} characters (MAXINE_MAX_TAG_LENGTH), got ${t.length}`);
    }
    textOf(`${field}[${i}]`, t);
  }
  return [...first.keys()].sort();
}

function metadataOf(field: string, metadata: Readonly<Record<string, string>>, limits: Limits): Record<string, string> {
  const unsorted = Object.keys(metadata);
  if (unsorted.length > limits.maxMetadataEntries) {
    throw invalid(field, `at most ${limits.maxMetadataEntries} entries (MAXINE_MAX_METADATA_ENTRIES), got ${unsorted.length}`);
  }
  const keys = unsorted.sort();
  let bytes = 0;
  const out: Record<string, string> = {};
  for (const k of keys) {
    if (k === "") throw invalid(field, "keys must not be empty");
    const keyRule = textRule(k);
    if (keyRule !== undefined) throw invalid(field, `keys ${keyRule}, got ${quote(k)}`);
    const v = metadata[k]!;
    textOf(`${field}[${quote(k)}]`, v);
    bytes += Buffer.byteLength(k) + Buffer.byteLength(v);
    out[k] = v;
  }
  if (bytes > limits.maxMetadataBytes) {
    throw invalid(field, `at most ${limits.maxMetadataBytes} bytes of keys and values (MAXINE_MAX_METADATA_BYTES), got ${bytes}`);
  }
  return out;
}

/**
 * specOf validates an instance from a client and normalises it (default
 * namespace, weight and status; sorted unique tags). An empty instanceId is
 * kept empty: the registry assigns one.
 */
export function specOf(input: InstanceInput | undefined, limits: Limits, owner: string): InstanceSpec {
  if (input === undefined) throw invalid("instance", "is required");
  const port = input.port;
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw invalid("instance.port", `must be 1..65535, got ${port}`);
  }
  if (input.host === "") throw invalid("instance.host", "is required");
  if (input.host.length > HOST_MAX) throw invalid("instance.host", `must be at most ${HOST_MAX} characters, got ${input.host.length}`);
  textOf("instance.host", input.host);
  if (!HOST.test(input.host)) {
    throw invalid("instance.host", `must be 1..253 characters with no whitespace or '/', got ${quote(input.host)}`);
  }
  if (!(Number.isInteger(input.weight) && input.weight >= 0 && input.weight <= MAX_WEIGHT)) {
    throw invalid("instance.weight", `must be 0..${MAX_WEIGHT} (0 means ${DEFAULT_WEIGHT}), got ${input.weight}`);
  }
  return {
    namespace: namespaceOf("instance.namespace", input.namespace),
    service: serviceOf("instance.service", input.service),
    instanceId: input.instanceId === "" ? "" : instanceIdOf("instance.instance_id", input.instanceId),
    host: input.host,
    port,
    version: label("instance.version", input.version),
    zone: label("instance.zone", input.zone),
    tags: tagsOf("instance.tags", input.tags, limits),
    metadata: metadataOf("instance.metadata", input.metadata, limits),
    weight: input.weight === 0 ? DEFAULT_WEIGHT : input.weight,
    status: input.status ?? "SERVING",
    owner,
  };
}

/** filterOf validates a filter; undefined is the filter that matches everything. */
export function filterOf(field: string, f: FilterSpec | undefined, limits: Limits): FilterSpec {
  if (f === undefined) return { tags: [], version: "", zone: "", metadata: {} };
  return {
    tags: tagsOf(`${field}.tags`, f.tags, limits),
    version: label(`${field}.version`, f.version),
    zone: label(`${field}.zone`, f.zone),
    metadata: metadataOf(`${field}.metadata`, f.metadata, limits),
  };
}

function quote(s: string): string {
  return JSON.stringify(s.length > 64 ? `${s.slice(0, 64)}...` : s);
}
