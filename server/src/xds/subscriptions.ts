import type { Access } from "../domain/access.js";
import { Reason, RegistryError } from "../domain/errors.js";
import type { Logger } from "../domain/logger.js";
import type { Limits } from "../registry/validate.js";
import type { XdsCache, XdsSubscriber, XdsView } from "./cache.js";
import { parseXdsName } from "./names.js";
import type { Packed, XdsType } from "./resources.js";

/** XdsStreamLimits bound what one xDS stream may hold; each is a server setting. */
export interface XdsStreamLimits {
  /** maxResources bounds the names one stream subscribes to, over the four types (MAXINE_XDS_MAX_RESOURCES_PER_STREAM). */
  readonly maxResources: number;
  /** names holds the limits a name's filter is checked against (MAXINE_MAX_TAGS, MAXINE_MAX_TAG_LENGTH). */
  readonly names: Limits;
}

/** StreamCount is the names one stream holds over its four types, against its limit. */
export class StreamCount {
  used = 0;
  constructor(readonly max: number) {}
}

/**
 * TypeSubscriptions is what one stream subscribes to for one resource type,
 * for SotW and Delta alike: named resources (each a shared view of the
 * cache, or undefined for a name it cannot serve: malformed, or in a
 * namespace the caller may not read: both are absent, and logged), and for
 * LDS and CDS the wildcard (every service with instances the caller may
 * read, unfiltered names only).
 */
export class TypeSubscriptions {
  wildcard = false;
  readonly named = new Map<string, XdsView | undefined>();
  private readonly wild = new Map<string, XdsView>();
  // a bad name was logged at warn; the next ones go to debug
  private warnedBadName = false;

  constructor(
    readonly type: XdsType,
    private readonly cache: XdsCache,
    /** holder is the stream: the cache tells it of changes to what this subscription holds. */
    private readonly holder: XdsSubscriber,
    private readonly access: Access,
    private readonly limits: XdsStreamLimits,
    private readonly count: StreamCount,
    private readonly log: Logger,
  ) {}

  /** add subscribes to names and returns how many were new; field names the request's field in errors and logs. RESOURCE_EXHAUSTED past the stream's limit. */
  add(names: Iterable<string>, field: string): number {
    let i = 0;
    let added = 0;
    for (const name of names) {
      const at = `${field}[${i++}]`;
      if (name === "*" || this.named.has(name)) continue;
      if (this.count.used >= this.count.max) {
        throw new RegistryError(
          Reason.RESOURCE_EXHAUSTED,
          `${field}: a stream may subscribe to at most ${this.count.max} resources over its four types (MAXINE_XDS_MAX_RESOURCES_PER_STREAM)`,
        );
      }
      this.count.used++;
      added++;
      this.named.set(name, this.viewOf(at, name));
    }
    return added;
  }

  /** remove unsubscribes from names and returns how many it held. */
  remove(names: Iterable<string>): number {
    let removed = 0;
    for (const name of names) {
      if (!this.named.has(name)) continue;
      removed++;
      const v = this.named.get(name);
      this.named.delete(name);
      this.count.used--;
      if (v !== undefined) this.cache.release(v, this.holder);
    }
    return removed;
  }

  /** replace makes names the whole named subscription (SotW) and reports whether it changed. */
  replace(names: readonly string[], field: string): boolean {
    let gone: string[] | undefined;
    if (this.named.size > 0) {
      const wanted = new Set(names);
      for (const n of this.named.keys()) if (!wanted.has(n)) (gone ??= []).push(n);
    }
    const removed = gone === undefined ? 0 : this.remove(gone);
    return this.add(names, field) + removed > 0;
  }

  /** setWildcard turns the wildcard subscription on or off and reports whether it changed. */
  setWildcard(on: boolean): boolean {
    if (on === this.wildcard) return false;
    this.wildcard = on;
    this.cache.wildcard(this.holder, on);
    if (!on) this.dropWild();
    return true;
  }

  /** current lists every resource the subscription gets now, by name, for a client in zone. */
  current(zone: string): Map<string, Packed> {
    const out = new Map<string, Packed>();
    if (this.wildcard) {
      const names = this.cache.wildcardNames(this.access);
      const now = new Set<string>();
      for (const n of names) {
        if (this.named.has(n.name)) continue;
        now.add(n.name);
        let v = this.wild.get(n.name);
        if (v === undefined) this.wild.set(n.name, (v = this.cache.acquire(n, this.holder)));
        out.set(n.name, v.resource(this.type, zone));
      }
      for (const [name, v] of this.wild) {
        if (now.has(name)) continue;
        this.wild.delete(name);
        this.cache.release(v, this.holder);
      }
    }
    for (const [name, v] of this.named) if (v !== undefined) out.set(name, v.resource(this.type, zone));
    return out;
  }

  /** close releases every view held. */
  close(): void {
    this.remove([...this.named.keys()]);
    this.setWildcard(false);
  }

  private dropWild(): void {
    for (const v of this.wild.values()) this.cache.release(v, this.holder);
    this.wild.clear();
  }

  private viewOf(at: string, name: string): XdsView | undefined {
    let parsed;
    try {
      parsed = parseXdsName(at, name, this.limits.names);
    } catch (err) {
      // warn once per stream and type: a client naming thousands of bad names must not flood the log at warn
      const level = this.warnedBadName ? "debug" : "warn";
      this.warnedBadName = true;
      this.log[level]({ type: this.type, err: (err as Error).message }, "xds: a subscribed resource name is not a Maxine service name; it does not exist");
      return undefined;
    }
    if (!this.access.allows("read", parsed.namespace, parsed.service)) {
      this.log.debug({ type: this.type, name, principal: this.access.principal }, "xds: the caller may not read this resource's namespace; it does not exist for it");
      return undefined;
    }
    return this.cache.acquire(parsed, this.holder);
  }
}
