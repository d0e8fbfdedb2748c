import { HashRing, pickWeighted, rendezvous, type Random } from "./balancer.js";
import { ServingStatus, Strategy, type Instance } from "./gen/maxine/registry/v1/registry_pb.js";
import type { InstanceView } from "./instance-view.js";

interface Candidates {
  readonly version: number;
  readonly list: readonly Instance[];
  readonly ids: readonly string[];
  ring: HashRing | undefined;
}

/**
 * Picker chooses one SERVING instance of a service from an InstanceView,
 * with no network call, using the same algorithms and the same instance_id
 * order as the server's Discover (balancer.ts), so CONSISTENT_HASH and
 * RENDEZVOUS pick what Discover would pick for the same key and instances.
 * Candidate lists and hash rings are cached per service until the set of
 * SERVING instances changes.
 */
export class Picker {
  private readonly cache = new Map<string, Candidates>();
  private readonly counters = new Map<string, number>();

  constructor(
    private readonly view: InstanceView,
    private readonly random: Random = Math.random,
  ) {}

  /** candidates returns the SERVING instances of service in instance_id order. */
  candidates(service: string): readonly Instance[] {
    return this.entry(service).list;
  }

  /**
   * pick returns the chosen instance, or undefined when the service has no
   * SERVING instance. CONSISTENT_HASH and RENDEZVOUS need a non-empty
   * hashKey; LEAST_LOADED is not available locally (loads are not watched).
   */
  pick(service: string, strategy: Strategy = Strategy.ROUND_ROBIN, hashKey = ""): Instance | undefined {
    if ((strategy === Strategy.CONSISTENT_HASH || strategy === Strategy.RENDEZVOUS) && hashKey === "") {
      throw new TypeError(`pick: hashKey is required by ${Strategy[strategy]}`);
    }
    const c = this.entry(service);
    const n = c.list.length;
    if (n === 0) return undefined;
    switch (strategy) {
      case Strategy.UNSPECIFIED:
      case Strategy.ROUND_ROBIN: {
        const i = this.counters.get(service) ?? 0;
        this.counters.set(service, (i + 1) % 1_000_000_007);
        return c.list[i % n];
      }
      case Strategy.RANDOM:
        return c.list[Math.floor(this.random() * n)];
      case Strategy.WEIGHTED:
        return c.list[pickWeighted(c.list, this.random)];
      case Strategy.CONSISTENT_HASH:
        c.ring ??= new HashRing(c.ids);
        return c.list[c.ring.lookup(hashKey)];
      case Strategy.RENDEZVOUS:
        return c.list[rendezvous(c.ids, hashKey)];
      case Strategy.LEAST_LOADED:
        throw new TypeError("pick: LEAST_LOADED needs the loads only the server knows; call Discover instead");
      default:
        throw new TypeError(`pick: unknown strategy ${strategy as number}`);
    }
  }

  private entry(service: string): Candidates {
    const version = this.view.version(service);
    const cached = this.cache.get(service);
    if (cached?.version === version) return cached;
    const list = this.view.sorted(service).filter((i) => i.status === ServingStatus.SERVING);
    const ids = list.map((i) => i.instanceId);
    // A change that left the SERVING set as it was (metadata, say) keeps the ring.
    const same = cached !== undefined && cached.ids.length === ids.length && cached.ids.every((id, i) => id === ids[i]);
    const next: Candidates = { version, list, ids: same ? cached.ids : ids, ring: same ? cached.ring : undefined };
    this.cache.set(service, next);
    return next;
  }
}
