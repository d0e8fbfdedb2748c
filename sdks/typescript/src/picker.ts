import { HashRing, pickWeighted, rendezvous, type Random } from "./balancer.js";
import { ServingStatus, Strategy, type Instance } from "./gen/maxine/registry/v1/registry_pb.js";
import type { InstanceView } from "./instance-view.js";
import { OutlierEjector, type EjectionCounters, type EjectionEvent, type EjectionOptions } from "./outlier-ejector.js";

/** PickerEjection turns on outlier ejection in a Picker: options, the clock, and where events go. */
export interface PickerEjection {
  readonly options: EjectionOptions;
  readonly now: () => number;
  readonly onEvent?: (service: string, event: EjectionEvent) => void;
}

interface Candidates {
  readonly version: number;
  readonly list: readonly Instance[];
  readonly ids: readonly string[];
  ring: HashRing | undefined;
  /** these candidates as ejection narrowed them at a generation of the service's ejector. */
  narrow?: { readonly gen: number; readonly candidates: Candidates };
}

/**
 * Picker chooses one SERVING instance of a service from an InstanceView,
 * with no network call, using the same algorithms and the same instance_id
 * order as the server's Discover (balancer.ts), so CONSISTENT_HASH and
 * RENDEZVOUS pick what Discover would pick for the same key and instances.
 * Candidate lists and hash rings are cached per service until the set of
 * SERVING instances changes. With ejection on, each service has an
 * OutlierEjector fed by report(): a pick skips the instances it ejected
 * (and every one on a taken trial), unless that leaves none.
 */
export class Picker {
  private readonly cache = new Map<string, Candidates>();
  private readonly counters = new Map<string, number>();
  private readonly ejectors = new Map<string, OutlierEjector>();

  constructor(
    private readonly view: InstanceView,
    private readonly random: Random = Math.random,
    private readonly ejection?: PickerEjection,
  ) {}

  /**
   * report records the outcome of a call to an instance of service (success:
   * it answered; failure: it could not serve). It does nothing without
   * ejection, or for an instance that is not a SERVING one of the view.
   */
  report(service: string, instanceId: string, success: boolean): void {
    this.entry(service);
    this.ejectors.get(service)?.report(instanceId, success);
  }

  /** ejectionCounters sums the counters of one service's ejector, or of every service's. */
  ejectionCounters(service?: string): EjectionCounters {
    const list = service !== undefined ? [this.ejectors.get(service)] : [...this.ejectors.values()];
    let ejectedTotal = 0, restoredTotal = 0, ejected = 0;
    for (const e of list) {
      if (e === undefined) continue;
      const c = e.counters();
      ejectedTotal += c.ejectedTotal;
      restoredTotal += c.restoredTotal;
      ejected += c.ejected;
    }
    return { ejectedTotal, restoredTotal, ejected };
  }

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
    const ejector = this.ejectors.get(service);
    const gen = ejector?.generation();
    if (ejector === undefined || gen === undefined) return this.choose(c, service, strategy, hashKey);
    const chosen = this.choose(this.narrowed(c, ejector, gen), service, strategy, hashKey);
    if (chosen !== undefined) ejector.picked(chosen.instanceId);
    return chosen;
  }

  /** narrowed is c without the instances ejection excludes now, kept (with its hash ring) while the ejector's generation holds. */
  private narrowed(c: Candidates, ejector: OutlierEjector, gen: number): Candidates {
    if (c.narrow?.gen === gen) return c.narrow.candidates;
    const allowed = new Set(ejector.allowed(c.ids));
    const list = allowed.size === c.ids.length ? c.list : c.list.filter((i) => allowed.has(i.instanceId));
    const candidates: Candidates = { version: c.version, list, ids: list.map((i) => i.instanceId), ring: undefined };
    c.narrow = { gen, candidates };
    return candidates;
  }

  private choose(c: Candidates, service: string, strategy: Strategy, hashKey: string): Instance | undefined {
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
    if (this.ejection !== undefined) {
      let ejector = this.ejectors.get(service);
      if (ejector === undefined) {
        const { options, now, onEvent } = this.ejection;
        ejector = new OutlierEjector(options, now, (e) => onEvent?.(service, e));
        this.ejectors.set(service, ejector);
        ejector.retain(next.ids);
      } else if (!same) {
        ejector.retain(next.ids);
      }
    }
    return next;
  }
}
