// Load-balancing algorithms shared by the server's Discover and the SDK's
// local pick, so both choose the same instance for the same key. The hash
// functions are specified in docs/hashing.md; testdata/hash-vectors.json
// holds vectors that every language's implementation is tested against.

/** Candidate is what the balancer needs to know about an instance. */
export interface Candidate {
  readonly instanceId: string;
  readonly weight: number;
}

/** RING_POINTS is the number of points each instance owns on a hash ring. */
export const RING_POINTS = 160;

const encoder = new TextEncoder();

/**
 * hash32 is FNV-1a (32 bit) over the UTF-8 bytes of s, finished with
 * MurmurHash3's fmix32 so that similar strings spread over the whole range.
 */
export function hash32(s: string): number {
  return fmix32(fnv1a32(s));
}

/** fnv1a32 is the 32-bit FNV-1a hash of the UTF-8 bytes of s, the first step of hash32. */
export function fnv1a32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x80) {
      h = 0x811c9dc5;
      for (const b of encoder.encode(s)) h = Math.imul(h ^ b, 0x01000193);
      return h >>> 0;
    }
    h = Math.imul(h ^ c, 0x01000193);
  }
  return h >>> 0;
}

/** fmix32 is MurmurHash3's 32-bit finaliser. */
export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * HashRing is a consistent-hash ring over instance ids: each id owns
 * RING_POINTS points at hash32(`${id}#${i}`), and a key goes to the owner of
 * the first point at or after hash32(key), wrapping around. Build it once per
 * instance set; lookups are a binary search.
 */
export class HashRing {
  private readonly points: Uint32Array;
  private readonly owners: Int32Array;

  constructor(ids: readonly string[], pointsPerId = RING_POINTS) {
    const entries: Array<{ point: number; id: string; index: number }> = [];
    ids.forEach((id, index) => {
      for (let i = 0; i < pointsPerId; i++) {
        entries.push({ point: hash32(`${id}#${i}`), id, index });
      }
    });
    entries.sort((a, b) => a.point - b.point || compareIds(a.id, b.id));
    this.points = Uint32Array.from(entries, (e) => e.point);
    this.owners = Int32Array.from(entries, (e) => e.index);
  }

  /** lookup returns the index (into the ids given) that owns key, or -1 when the ring is empty. */
  lookup(key: string): number {
    const n = this.points.length;
    if (n === 0) return -1;
    const k = hash32(key);
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.points[mid]! < k) lo = mid + 1;
      else hi = mid;
    }
    return this.owners[lo === n ? 0 : lo]!;
  }
}

/**
 * rendezvous returns the index of the id with the highest hash32(`${key}#${id}`)
 * (ties go to the greater id), or -1 for no ids.
 */
export function rendezvous(ids: readonly string[], key: string): number {
  let best = -1;
  let bestScore = -1;
  for (let i = 0; i < ids.length; i++) {
    const score = hash32(`${key}#${ids[i]}`);
    if (score > bestScore || (score === bestScore && compareIds(ids[i]!, ids[best]!) > 0)) {
      best = i;
      bestScore = score;
    }
  }
  return best;
}

/** compareIds orders ids by UTF-16 code units, which equals byte order for the ASCII ids Maxine allows. */
export function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Random returns a float in [0, 1); injectable so tests are deterministic. */
export type Random = () => number;

/** pickWeighted picks an index at random in proportion to weight (weights below 1 count as 1). */
export function pickWeighted(candidates: readonly Candidate[], random: Random = Math.random): number {
  let total = 0;
  for (const c of candidates) total += Math.max(1, c.weight);
  let r = random() * total;
  for (let i = 0; i < candidates.length; i++) {
    r -= Math.max(1, candidates[i]!.weight);
    if (r < 0) return i;
  }
  return candidates.length - 1;
}

/**
 * pickLeastLoaded draws two distinct indexes at random and returns the one
 * with the lower load (power of two choices), which avoids the herd that
 * "always the least loaded" causes when load reports lag.
 */
export function pickLeastLoaded(count: number, loadOf: (index: number) => number, random: Random = Math.random): number {
  if (count <= 1) return count - 1;
  const a = Math.floor(random() * count);
  let b = Math.floor(random() * (count - 1));
  if (b >= a) b++;
  return loadOf(b) < loadOf(a) ? b : a;
}
