/**
 * Shared copies of the values instances repeat. A registry of many
 * instances holds the same service names, zones, versions, tags and
 * metadata entries over and over: each record built by recordOf takes the
 * one shared copy of each instead of its own (with a service's tags, the
 * list itself is shared), which is most of what an instance costs beside
 * its id and host (bench/instance-heap.mjs).
 *
 * Bounded: each table holds at most MAX_ENTRIES values of at most
 * MAX_LENGTH characters and starts over when full, so unique values (a
 * build id per instance, a hostile client's random tags) cost a cleared
 * table now and then, never unbounded memory. Records keep the copies they
 * took; values are immutable strings and frozen lists, so sharing them
 * changes nothing a reader sees.
 */
const MAX_ENTRIES = 65_536;
const MAX_LENGTH = 256;

const strings = new Map<string, string>();
const tagLists = new Map<string, readonly string[]>();
const metadataObjects = new Map<string, Readonly<Record<string, string>>>();
const NO_TAGS: readonly string[] = Object.freeze([]);
const NO_METADATA: Readonly<Record<string, string>> = Object.freeze({});

/** shared returns the shared copy of s (s itself when it is long, or the first time). */
export function shared(s: string): string {
  if (s.length > MAX_LENGTH) return s;
  const had = strings.get(s);
  if (had !== undefined) return had;
  if (strings.size >= MAX_ENTRIES) strings.clear();
  strings.set(s, s);
  return s;
}

/** sharedTags returns one frozen list for equal (sorted) tag lists. */
export function sharedTags(tags: readonly string[]): readonly string[] {
  if (tags.length === 0) return NO_TAGS;
  let key = "";
  for (const t of tags) key += `${t.length}:${t}`; // length-prefixed: no two lists share a key
  if (key.length > MAX_LENGTH) return Object.freeze(tags.map(shared));
  const had = tagLists.get(key);
  if (had !== undefined) return had;
  if (tagLists.size >= MAX_ENTRIES) tagLists.clear();
  const list = Object.freeze(tags.map(shared));
  tagLists.set(key, list);
  return list;
}

/**
 * sharedMetadata returns one frozen object for equal metadata (same entries
 * in the same order: records keep them sorted by key), with its keys and
 * values shared; the one empty object when it has none.
 */
export function sharedMetadata(metadata: Readonly<Record<string, string>>): Readonly<Record<string, string>> {
  const keys = Object.keys(metadata);
  if (keys.length === 0) return NO_METADATA;
  let key = "";
  for (const k of keys) key += `${k.length}:${k}${metadata[k]!.length}:${metadata[k]!}`; // length-prefixed: no two objects share a key
  const had = key.length <= MAX_LENGTH ? metadataObjects.get(key) : undefined;
  if (had !== undefined) return had;
  const out: Record<string, string> = {};
  for (const k of keys) out[shared(k)] = shared(metadata[k]!);
  Object.freeze(out);
  if (key.length <= MAX_LENGTH) {
    if (metadataObjects.size >= MAX_ENTRIES) metadataObjects.clear();
    metadataObjects.set(key, out);
  }
  return out;
}
