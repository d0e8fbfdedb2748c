import { deltaResponse } from "../wire/xds-wire.js";
import type { DeltaDiscoveryRequest } from "../xds/gen/envoy/service/discovery/v3/discovery_pb.js";
import { TYPE_URLS, type Packed, type XdsType } from "../xds/resources.js";
import { AdsStreamCall, type TypeState } from "./ads-call.js";

/** DeltaState is what a Delta stream keeps per type beyond TypeState. */
interface DeltaState {
  /** known are the versions the client said it holds when it (re)connected (initial_resource_versions), until compared. */
  readonly known: Map<string, string>;
  /** absentTold are the subscribed names the client was told do not exist (removed_resources), so it is told once. */
  readonly absentTold: Set<string>;
}

/**
 * DeltaAdsCall is one DeltaAggregatedResources stream (incremental xDS):
 * requests subscribe to and unsubscribe from names ("*" is the wildcard,
 * as is the first LDS or CDS request that names nothing); responses carry
 * only the resources that are new or changed for the client, each with its
 * own version (a digest of its content), and removed_resources for those
 * that went (a service that lost its last instance, under the wildcard) or
 * do not exist (a name that is no Maxine service, or one the caller may not
 * read). A client that reconnects with initial_resource_versions is sent
 * only what differs from what it holds.
 */
export class DeltaAdsCall extends AdsStreamCall<DeltaDiscoveryRequest> {
  private readonly delta = new Map<XdsType, DeltaState>();

  protected apply(req: DeltaDiscoveryRequest, type: XdsType, t: TypeState, first: boolean): boolean {
    let d = this.delta.get(type);
    if (d === undefined) this.delta.set(type, (d = { known: new Map(), absentTold: new Set() }));
    t.held ??= new Map();
    if (first) for (const [name, version] of Object.entries(req.initialResourceVersions)) d.known.set(name, version);
    const wildcardable = type === "listener" || type === "cluster";
    const subscribe = req.resourceNamesSubscribe;
    const unsubscribe = req.resourceNamesUnsubscribe;
    if (wildcardable && (subscribe.includes("*") || (first && subscribe.length === 0))) t.subs.setWildcard(true);
    if (unsubscribe.includes("*")) t.subs.setWildcard(false);
    t.subs.remove(unsubscribe);
    for (const name of unsubscribe) {
      t.held.delete(name);
      d.known.delete(name);
      d.absentTold.delete(name);
    }
    t.subs.add(subscribe, "resource_names_subscribe");
    // a name subscribed again is sent again
    for (const name of subscribe) {
      if (name === "*") continue;
      if (!first) t.held.delete(name);
      d.absentTold.delete(name);
    }
    return subscribe.length > 0 || unsubscribe.length > 0;
  }

  protected respond(type: XdsType, t: TypeState): boolean {
    const d = this.delta.get(type)!;
    const held = (t.held ??= new Map());
    const now = t.subs.current(this.zone);
    const resources: Packed[] = [];
    const removed: string[] = [];
    for (const [name, p] of now) {
      if (held.get(name) === p) continue;
      held.set(name, p);
      const known = d.known.get(name);
      d.known.delete(name);
      if (known === p.version) continue;
      resources.push(p);
    }
    for (const name of held.keys()) {
      if (now.has(name)) continue;
      held.delete(name);
      removed.push(name);
    }
    for (const name of d.known.keys()) if (!now.has(name)) removed.push(name);
    d.known.clear();
    for (const [name, view] of t.subs.named) {
      if (view !== undefined || d.absentTold.has(name) || removed.includes(name)) continue;
      d.absentTold.add(name);
      removed.push(name);
    }
    if (resources.length === 0 && removed.length === 0) return false;
    t.nonce = this.deps.cache.nonce();
    t.nacked = false;
    t.version = String(this.deps.cache.revision());
    this.out.push(deltaResponse({ systemVersionInfo: t.version, resources, removed, typeUrl: TYPE_URLS[type], nonce: t.nonce }));
    return true;
  }
}
