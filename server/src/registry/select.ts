import { HashRing, pickLeastLoaded, pickWeighted, rendezvous, type Random } from "@maxine/sdk/balancer";
import { invalid } from "../domain/errors.js";
import type { InstanceRecord } from "../domain/instance.js";

/** Strategy is how Discover chooses among candidates. */
export type Strategy = "ROUND_ROBIN" | "RANDOM" | "WEIGHTED" | "LEAST_LOADED" | "CONSISTENT_HASH" | "RENDEZVOUS";

const RING_CACHE_MAX = 256;

/**
 * Selector chooses one instance among candidates (sorted by instance id).
 * It keeps round-robin counters per service and caches hash rings per
 * candidate set, so repeated Discovers on an unchanged service build nothing.
 */
export class Selector {
  // Keyed by the service's view (an object the store keeps while the
  // service has instances): no key string built per call, and a service's
  // counter goes with its view.
  private readonly counters = new WeakMap<object, { n: number }>();
  private readonly rings = new Map<string, HashRing>();

  constructor(private readonly random: Random = Math.random) {}

  /** select picks among candidates; scope is the service's view, whose round-robin counter ROUND_ROBIN advances. */
  select(
    scope: object,
    candidates: readonly InstanceRecord[],
    strategy: Strategy,
    hashKey: string,
    loadOf: (r: InstanceRecord) => number,
  ): InstanceRecord {
    const n = candidates.length;
    switch (strategy) {
      case "ROUND_ROBIN": {
        let counter = this.counters.get(scope);
        if (counter === undefined) this.counters.set(scope, (counter = { n: 0 }));
        const c = counter.n;
        counter.n = (c + 1) % 1_000_000_007;
        return candidates[c % n]!;
      }
      case "RANDOM":
        return candidates[Math.floor(this.random() * n)]!;
      case "WEIGHTED":
        return candidates[pickWeighted(candidates, this.random)]!;
      case "LEAST_LOADED":
        return candidates[pickLeastLoaded(n, (i) => loadOf(candidates[i]!), this.random)]!;
      case "CONSISTENT_HASH":
        requireKey(strategy, hashKey);
        return candidates[this.ring(candidates).lookup(hashKey)]!;
      case "RENDEZVOUS":
        requireKey(strategy, hashKey);
        return candidates[rendezvous(candidates.map((c) => c.instanceId), hashKey)]!;
    }
  }

  private ring(candidates: readonly InstanceRecord[]): HashRing {
    const ids = candidates.map((c) => c.instanceId);
    const cacheKey = ids.join("\n");
    let ring = this.rings.get(cacheKey);
    if (ring === undefined) {
      if (this.rings.size >= RING_CACHE_MAX) this.rings.clear();
      ring = new HashRing(ids);
      this.rings.set(cacheKey, ring);
    }
    return ring;
  }
}

function requireKey(strategy: Strategy, hashKey: string): void {
  if (hashKey === "") throw invalid("hash_key", `is required for STRATEGY_${strategy}`);
}
