import type { InstanceSpec } from "./instance.js";

/** FilterSpec narrows a service's instances; empty fields match everything. */
export interface FilterSpec {
  readonly tags: readonly string[];
  readonly version: string;
  readonly zone: string;
  readonly metadata: Readonly<Record<string, string>>;
}

/** isEmptyFilter reports whether f matches every instance. */
export function isEmptyFilter(f: FilterSpec): boolean {
  return f.tags.length === 0 && f.version === "" && f.zone === "" && Object.keys(f.metadata).length === 0;
}

/**
 * matches reports whether an instance passes a filter: it carries every
 * tag, equals version and zone when they are set, and holds every metadata
 * entry with an equal value. Instance tags are sorted, so each tag is a
 * binary search.
 */
export function matches(f: FilterSpec, i: InstanceSpec): boolean {
  if (f.version !== "" && f.version !== i.version) return false;
  if (f.zone !== "" && f.zone !== i.zone) return false;
  for (const t of f.tags) if (!hasSorted(i.tags, t)) return false;
  for (const k in f.metadata) if (i.metadata[k] !== f.metadata[k]) return false;
  return true;
}

function hasSorted(sorted: readonly string[], t: string): boolean {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const v = sorted[mid]!;
    if (v === t) return true;
    if (v < t) lo = mid + 1;
    else hi = mid;
  }
  return false;
}
