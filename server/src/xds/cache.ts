import type { Access } from "../domain/access.js";
import { matches } from "../domain/filter.js";
import type { InstanceRecord } from "../domain/instance.js";
import type { Logger } from "../domain/logger.js";
import type { Change, Store } from "../store/store.js";
import { xdsNameOf, type XdsName } from "./names.js";
import { policyOfMetadata } from "./policy.js";
import {
  ROUND_ROBIN_POLICY,
  clusterOf,
  listenerOf,
  loadAssignmentOf,
  packed,
  routeOf,
  sameLbPolicy,
  type LbPolicy,
  type Packed,
  type XdsType,
} from "./resources.js";

/** XdsSubscriber is an open xDS stream as the cache tells it of changes. */
export interface XdsSubscriber {
  /** changed: the instances or the policy of namespace/service changed, and the stream holds one of its views (or has a wildcard subscription). */
  changed(namespace: string, service: string): void;
  /** reset: the registry replaced its state (a store reset): everything may have changed. */
  reset(): void;
}

/**
 * XdsView is one subscribed resource name's four resources, shared by every
 * stream subscribed to it: each resource is built and encoded once per
 * change that alters it (the ClusterLoadAssignment once per client zone),
 * then handed to every stream as the same Packed object. A rebuilt resource
 * whose bytes equal the previous one keeps the previous object (and
 * version), so streams compare identities to know what changed.
 */
export class XdsView {
  /** holders counts, per stream, its subscriptions that hold the view: a change of the view's service tells them; the cache drops the view when none is left. */
  readonly holders = new Map<XdsSubscriber, number>();
  private stale = true;
  private lb: LbPolicy = ROUND_ROBIN_POLICY;
  private listener: Packed | undefined;
  private route: Packed | undefined;
  private cluster: Packed | undefined;
  private instances: readonly InstanceRecord[] = [];
  private zones: ReadonlySet<string> = new Set();
  private loads = new Map<string, Packed>();
  private previousLoads: Map<string, Packed> | undefined;

  constructor(
    readonly name: XdsName,
    private readonly cache: XdsCache,
  ) {}

  /** invalidate marks the view's resources for a rebuild on next read. */
  invalidate(): void {
    this.stale = true;
  }

  /** resource is the view's resource of type for a client in zone ("" unknown). */
  resource(type: XdsType, zone: string): Packed {
    if (this.stale) this.refresh();
    switch (type) {
      case "listener":
        return (this.listener ??= packed(this.name.name, listenerOf(this.name.name)));
      case "route":
        return (this.route ??= packed(this.name.name, routeOf(this.name.name, this.lb)));
      case "cluster":
        return (this.cluster ??= packed(this.name.name, clusterOf(this.name.name, this.lb)));
      case "endpoints": {
        // a zone none of the view's instances is in gets the same CLA as no zone: one copy for all of them
        if (!this.zones.has(zone)) zone = "";
        let p = this.loads.get(zone);
        if (p === undefined) {
          const any = loadAssignmentOf(this.name.name, this.instances, zone);
          const before = this.previousLoads?.get(zone);
          p = before !== undefined && sameBytes(before.any.value, any.value) ? before : packed(this.name.name, any);
          this.loads.set(zone, p);
        }
        return p;
      }
    }
  }

  private refresh(): void {
    this.stale = false;
    const { namespace, service, filter, matchAll } = this.name;
    const all = this.cache.store.service(namespace, service)?.sorted() ?? [];
    this.instances = matchAll ? all : all.filter((r) => matches(filter, r));
    this.zones = new Set(this.instances.map((r) => r.zone));
    const lb = this.cache.policyOf(namespace, service, all);
    if (!sameLbPolicy(lb, this.lb)) {
      this.lb = lb;
      this.route = undefined;
      this.cluster = undefined;
    }
    this.previousLoads = this.loads;
    this.loads = new Map();
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** ConfigPolicies reads a service's load-balancing policy from its configuration (key `xds`), when it sets one. */
export interface ConfigPolicies {
  /** policyOf is the policy the service's configuration sets, or undefined when it sets none (or the store is not open yet). */
  policyOf(namespace: string, service: string): LbPolicy | undefined;
  /** start is called at the first stream: the configuration is read from then on. */
  start(): void;
  /** close stops following the configuration. */
  close(): void;
}

/** XdsCacheOptions are the parts the cache reads. */
export interface XdsCacheOptions {
  readonly store: Store;
  readonly logger: Logger;
  /** config, when set, reads policies from the services' configuration; it is given the cache's invalidate. */
  readonly config?: (changed: (namespace: string | undefined, service: string | undefined) => void) => ConfigPolicies;
}

/**
 * XdsCache is the xDS control plane's state: the views streams subscribe
 * to (by name, counted per stream), fed by the registry's change feed, one
 * subscription for every stream (as the watch hub is): a change marks the
 * views of its service stale and tells the streams that hold one of them
 * and the wildcard streams (no other), which rebuild nothing themselves:
 * they read the views, rebuilt once.
 */
export class XdsCache {
  readonly store: Store;
  private readonly views = new Map<string, XdsView>();
  private readonly byService = new Map<string, Set<XdsView>>();
  private readonly subscribers = new Set<XdsSubscriber>();
  // streams with a wildcard subscription, by the number of their types that have one
  private readonly wildcards = new Map<XdsSubscriber, number>();
  private readonly stop: () => void;
  private readonly log: Logger;
  private readonly config: ConfigPolicies | undefined;
  private nonces = 0;

  constructor(opts: XdsCacheOptions) {
    this.store = opts.store;
    this.log = opts.logger;
    this.config = opts.config?.((namespace, service) => (namespace === undefined || service === undefined ? this.resetAll() : this.invalidate(namespace, service)));
    const offChanges = this.store.subscribe((c: Change) => this.invalidate(c.instance.namespace, c.instance.service));
    const offResets = this.store.subscribeResets?.(() => this.resetAll());
    this.stop = () => {
      offChanges();
      offResets?.();
    };
  }

  /** nonce is a response nonce unique on the server (so unique on each stream, and a log line names one response). */
  nonce(): string {
    return (++this.nonces).toString(36);
  }

  /** revision is the registry revision the views reflect: a response's version_info. */
  revision(): number {
    return this.store.revision();
  }

  /** streams counts open subscribers (maxine_xds_streams). */
  get streams(): number {
    return this.subscribers.size;
  }

  /** subscribe registers an open stream; the result unsubscribes it. */
  subscribe(s: XdsSubscriber): () => void {
    this.subscribers.add(s);
    this.config?.start();
    return () => this.subscribers.delete(s);
  }

  /** acquire returns the shared view of name, counting holder (told of the view's changes from now on); release it when done. */
  acquire(name: XdsName, holder: XdsSubscriber): XdsView {
    let v = this.views.get(name.name);
    if (v === undefined) {
      v = new XdsView(name, this);
      this.views.set(name.name, v);
      const key = serviceKey(name.namespace, name.service);
      let set = this.byService.get(key);
      if (set === undefined) this.byService.set(key, (set = new Set()));
      set.add(v);
    }
    v.holders.set(holder, (v.holders.get(holder) ?? 0) + 1);
    return v;
  }

  /** release gives back a view acquire returned; the last holder's release drops it. */
  release(v: XdsView, holder: XdsSubscriber): void {
    const n = (v.holders.get(holder) ?? 1) - 1;
    if (n > 0) v.holders.set(holder, n);
    else v.holders.delete(holder);
    if (v.holders.size > 0) return;
    this.views.delete(v.name.name);
    const key = serviceKey(v.name.namespace, v.name.service);
    const set = this.byService.get(key);
    set?.delete(v);
    if (set?.size === 0) this.byService.delete(key);
  }

  /** wildcard counts holder's wildcard subscriptions (on: one more, off: one less): wildcard streams are told of every change. */
  wildcard(holder: XdsSubscriber, on: boolean): void {
    const n = (this.wildcards.get(holder) ?? 0) + (on ? 1 : -1);
    if (n > 0) this.wildcards.set(holder, n);
    else this.wildcards.delete(holder);
  }

  /**
   * wildcardNames lists the unfiltered names of every service with at least
   * one instance that access may read: what a wildcard LDS or CDS
   * subscription gets.
   */
  wildcardNames(access: Access): XdsName[] {
    const out: XdsName[] = [];
    for (const namespace of this.store.namespaces()) {
      if (!access.allowsAny("read", namespace)) continue;
      for (const [service, view] of this.store.services(namespace)) {
        if (view.size === 0 || !access.allows("read", namespace, service)) continue;
        out.push({ name: xdsNameOf(namespace, service), namespace, service, filter: EMPTY_FILTER, matchAll: true });
      }
    }
    return out;
  }

  /** policyOf is a service's load-balancing policy: its configuration's `xds` key wins, else its instances' metadata, else round robin. */
  policyOf(namespace: string, service: string, instances: readonly InstanceRecord[]): LbPolicy {
    return this.config?.policyOf(namespace, service) ?? policyOfMetadata(instances, this.log) ?? ROUND_ROBIN_POLICY;
  }

  /**
   * invalidate marks the views of namespace/service stale (a registry
   * change, or a change of its xds configuration) and tells the streams
   * that hold one, and the wildcard streams (a service may have appeared
   * or gone); a stream told twice schedules one flush.
   */
  invalidate(namespace: string, service: string): void {
    const set = this.byService.get(serviceKey(namespace, service));
    if (set !== undefined) {
      for (const v of set) {
        v.invalidate();
        for (const h of v.holders.keys()) h.changed(namespace, service);
      }
    }
    for (const w of this.wildcards.keys()) w.changed(namespace, service);
  }

  private resetAll(): void {
    for (const v of this.views.values()) v.invalidate();
    for (const s of this.subscribers) s.reset();
  }

  /** close stops following the registry. */
  close(): void {
    this.stop();
    this.config?.close();
  }
}

const EMPTY_FILTER = Object.freeze({ tags: [], version: "", zone: "", metadata: Object.freeze({}) });

function serviceKey(namespace: string, service: string): string {
  return `${namespace}/${service}`;
}
