import type { ReplicaSet } from "../store/store.js";

/**
 * ownerOf is the replica that runs the check of instance id: the one with
 * the highest hash of (replica, id), rendezvous hashing, so every replica
 * computes the same owner from the same replica list, and a replica that
 * joins or leaves moves only its own share of the checks.
 */
export function ownerOf(id: string, replicas: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestScore = -1;
  for (const r of replicas) {
    const score = fnv1a(`${r}\n${id}`);
    if (score > bestScore || (score === bestScore && best !== undefined && r < best)) {
      best = r;
      bestScore = score;
    }
  }
  return best;
}

/** ownership is the checker's owns function for a replica set: this replica owns what ownerOf gives it (nothing before it has joined). */
export function ownership(set: ReplicaSet): (id: string) => boolean {
  const live = set.live();
  return (id) => ownerOf(id, live) === set.self;
}

/** fnv1a is the 32-bit FNV-1a hash of s's UTF-16 code units, with a final avalanche (murmur3's fmix32) so that near keys spread. */
function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
