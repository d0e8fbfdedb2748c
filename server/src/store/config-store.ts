import { configKey, type ConfigChange, type ConfigEntry, type ConfigLimits, type ConfigState, type ConfigWrite } from "../domain/config-entry.js";
import type { StoreResetReason } from "./store.js";

/**
 * ConfigStore is where service configuration lives. Like the registry's
 * Store, reads are synchronous and come from a local view that has applied
 * every change the store reported, so a watch snapshot and the change feed
 * never disagree; writes are asynchronous and resolve once the change is
 * committed where the store keeps it (on disk, in Redis), after every
 * subscriber saw it.
 *
 * write plans the change with planWrite (config-entry.ts) against the
 * state as of every earlier write, so compare-and-set holds however many
 * writers race: of writes that expect the same version, one wins. Each
 * committed change has the next revision: the feed has no gaps.
 */
export interface ConfigStore {
  /** registryId names this store's state: it survives restarts of a durable store and changes when the state is lost. */
  readonly registryId: string;
  /** revision is the revision of the latest committed change (0: none yet). */
  revision(): number;
  /** versions lists a key's kept versions, newest first; empty when it was never written. */
  versions(namespace: string, service: string, key: string): readonly ConfigEntry[];
  /** keys lists the latest versions of a service's keys that exist (not deleted), in key order. */
  keys(namespace: string, service: string): readonly ConfigEntry[];
  /** services lists the services of a namespace that hold a key that exists, in name order. */
  services(namespace: string): readonly string[];
  write(w: ConfigWrite): Promise<ConfigChange>;
  subscribe(listener: (change: ConfigChange) => void): () => void;
  /** recentChanges are the latest committed changes, oldest first, with no gaps: what a watch resumed after a restart replays. */
  recentChanges(): readonly ConfigChange[];
  subscribeResets?(listener: (reason: StoreResetReason) => void): () => void;
  /** entries lists every kept version of every key, for a mirror's snapshot (the workers' stores, cluster/primary-config-store.ts). */
  entries?(): Iterable<ConfigEntry>;
  close(): Promise<void>;
}

/**
 * ConfigView is a store's local state: each key's kept versions (the
 * history depth), each service's keys, and the changes they came from. The
 * stores apply committed changes to it in revision order; planWrite reads
 * it (through planning, below) before a write commits.
 */
export class ConfigView implements ConfigState {
  private readonly byKey = new Map<string, ConfigEntry[]>();
  // namespace -> service -> key -> latest live entry
  private readonly live = new Map<string, Map<string, Map<string, ConfigEntry>>>();
  private rev = 0;

  constructor(readonly limits: ConfigLimits) {}

  revision(): number {
    return this.rev;
  }

  versions(namespace: string, service: string, key: string): readonly ConfigEntry[] {
    return this.byKey.get(configKey(namespace, service, key)) ?? NONE;
  }

  liveKeys(namespace: string, service: string): number {
    return this.live.get(namespace)?.get(service)?.size ?? 0;
  }

  keys(namespace: string, service: string): readonly ConfigEntry[] {
    const keys = this.live.get(namespace)?.get(service);
    if (keys === undefined) return NONE;
    return [...keys.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  services(namespace: string): readonly string[] {
    return [...(this.live.get(namespace)?.keys() ?? [])].sort();
  }

  /** entries lists every kept version of every key. */
  *entries(): Iterable<ConfigEntry> {
    for (const versions of this.byKey.values()) yield* versions;
  }

  /**
   * apply adds a committed change, keeping limits.historyDepth versions of
   * its key, and returns the entries it dropped (a durable store deletes
   * them with the write).
   */
  apply(change: ConfigChange): readonly ConfigEntry[] {
    const e = change.entry;
    const id = configKey(e.namespace, e.service, e.key);
    const versions = [e, ...(this.byKey.get(id) ?? NONE)];
    const dropped = versions.splice(Math.max(1, this.limits.historyDepth));
    this.byKey.set(id, versions);
    let services = this.live.get(e.namespace);
    if (services === undefined) this.live.set(e.namespace, (services = new Map()));
    let keys = services.get(e.service);
    if (keys === undefined) services.set(e.service, (keys = new Map()));
    if (e.deleted) {
      keys.delete(e.key);
      if (keys.size === 0) services.delete(e.service);
      if (services.size === 0) this.live.delete(e.namespace);
    } else {
      keys.set(e.key, e);
    }
    this.rev = Math.max(this.rev, change.revision);
    return dropped;
  }
}

/**
 * planning is a state that sees, above view, the writes planned but not yet
 * committed (a batch being made durable): planned records one, so the next
 * write of the batch is planned after it.
 */
export function planning(view: ConfigView): ConfigState & { planned(change: ConfigChange): void } {
  const versions = new Map<string, ConfigEntry[]>();
  const liveDelta = new Map<string, number>();
  return {
    versions: (ns, svc, key) => versions.get(configKey(ns, svc, key)) ?? view.versions(ns, svc, key),
    liveKeys: (ns, svc) => view.liveKeys(ns, svc) + (liveDelta.get(configKey(ns, svc, "")) ?? 0),
    planned(change) {
      const e = change.entry;
      const id = configKey(e.namespace, e.service, e.key);
      const before = versions.get(id) ?? view.versions(e.namespace, e.service, e.key);
      const existed = before[0] !== undefined && !before[0].deleted;
      versions.set(id, [e, ...before].slice(0, Math.max(1, view.limits.historyDepth)));
      const d = (e.deleted ? 0 : 1) - (existed ? 1 : 0);
      if (d !== 0) {
        const s = configKey(e.namespace, e.service, "");
        liveDelta.set(s, (liveDelta.get(s) ?? 0) + d);
      }
    },
  };
}

/**
 * recentOf lists the changes behind the kept entries that form a gapless
 * run ending at revision (the versions a history depth dropped leave gaps;
 * a resume from before one gets a fresh snapshot), oldest first, at most max.
 */
export function recentOf(entries: Iterable<ConfigEntry>, revision: number, max: number): ConfigChange[] {
  const byRevision = new Map<number, ConfigEntry>();
  for (const e of entries) byRevision.set(e.revision, e);
  const out: ConfigChange[] = [];
  for (let r = revision; r > 0 && out.length < max; r--) {
    const e = byRevision.get(r);
    if (e === undefined) break;
    out.push(changeOf(e));
  }
  return out.reverse();
}

/** changeOf is the change that made entry. */
export function changeOf(entry: ConfigEntry): ConfigChange {
  return { revision: entry.revision, type: entry.deleted ? "DELETED" : "PUT", entry };
}

/** encodeConfigEntry is an entry as the durable stores keep it: JSON, its value in base64. */
export function encodeConfigEntry(e: ConfigEntry): string {
  return JSON.stringify({ ...e, value: Buffer.from(e.value.buffer, e.value.byteOffset, e.value.byteLength).toString("base64") });
}

/** decodeConfigEntry reads back what encodeConfigEntry wrote. */
export function decodeConfigEntry(text: string): ConfigEntry {
  const r = JSON.parse(text) as Omit<ConfigEntry, "value"> & { value: string };
  return { ...r, value: new Uint8Array(Buffer.from(r.value, "base64")) };
}

const NONE: readonly ConfigEntry[] = Object.freeze([]);

/**
 * ConfigViewReads serves a ConfigStore's reads from its ConfigView: a
 * durable or shared store's (batched-config-store.ts) or the copy a worker
 * keeps of the primary's (cluster/primary-config-store.ts).
 */
export abstract class ConfigViewReads {
  protected abstract view: ConfigView;

  revision(): number {
    return this.view.revision();
  }

  versions(namespace: string, service: string, key: string): readonly ConfigEntry[] {
    return this.view.versions(namespace, service, key);
  }

  keys(namespace: string, service: string): readonly ConfigEntry[] {
    return this.view.keys(namespace, service);
  }

  services(namespace: string): readonly string[] {
    return this.view.services(namespace);
  }

  /** entries lists every kept version of every key. */
  entries(): Iterable<ConfigEntry> {
    return this.view.entries();
  }

  recentChanges(): readonly ConfigChange[] {
    return recentOf(this.view.entries(), this.view.revision(), Number.MAX_SAFE_INTEGER);
  }
}
