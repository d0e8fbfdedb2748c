import { Reason, RegistryError } from "./errors.js";

/**
 * ConfigEntry is one version of one configuration key (ConfigEntry in
 * config.proto). Entries are immutable: a write makes a new one.
 */
export interface ConfigEntry {
  readonly namespace: string;
  readonly service: string;
  readonly key: string;
  readonly value: Uint8Array;
  readonly contentType: string;
  /** version counts the key's writes (Put, Delete, Rollback) from 1; it never goes back, not even across a delete. */
  readonly version: number;
  /** revision is the configuration revision of the write that made this version. */
  readonly revision: number;
  /** updatedAt is when the write was committed, in ms since the epoch. */
  readonly updatedAt: number;
  readonly principal: string;
  /** deleted marks the version a Delete made (no value). */
  readonly deleted: boolean;
}

/** ConfigChange is one committed configuration write: its revision is one more than the change before it. */
export interface ConfigChange {
  readonly revision: number;
  readonly type: "PUT" | "DELETED";
  readonly entry: ConfigEntry;
}

/** ConfigWrite is a validated write, as the core hands it to the store. */
export interface ConfigWrite {
  readonly namespace: string;
  readonly service: string;
  readonly key: string;
  /** op: put writes value; delete writes a deleted marker; rollback writes again the content of version toVersion. */
  readonly op: "put" | "delete" | "rollback";
  readonly value?: Uint8Array;
  readonly contentType?: string;
  readonly toVersion?: number;
  /** expectedVersion, when set, is compare-and-set: the key's current version must equal it (0: the key must not exist). */
  readonly expectedVersion?: number;
  readonly principal: string;
  readonly now: number;
}

/** ConfigLimits bound what the store keeps; each is a server setting. */
export interface ConfigLimits {
  /** maxKeysPerService bounds the keys that exist at once in one service (MAXINE_CONFIG_MAX_KEYS_PER_SERVICE). */
  readonly maxKeysPerService: number;
  /** historyDepth is how many versions of a key are kept, the latest included (MAXINE_CONFIG_HISTORY_DEPTH). */
  readonly historyDepth: number;
}

/** ConfigState is what planning a write reads: a key's kept versions and a service's live key count, as of the writes planned before it. */
export interface ConfigState {
  /** versions lists the key's kept versions, newest first (empty: never written, or forgotten). */
  versions(namespace: string, service: string, key: string): readonly ConfigEntry[];
  /** liveKeys counts the keys of the service that exist (not deleted). */
  liveKeys(namespace: string, service: string): number;
}

/** configKey is the one string that names a key in maps and stores: its parts joined by NUL, which no name contains. */
export function configKey(namespace: string, service: string, key: string): string {
  return `${namespace}\u0000${service}\u0000${key}`;
}

/**
 * planWrite decides a write against state: the compare-and-set, the
 * rollback's content, the keys-per-service limit, and the new version. It
 * is the one place these rules live; every store calls it with the writes
 * before it already applied, so a store only has to make the planned entry
 * durable and visible. It throws RegistryError (FAILED_PRECONDITION for a
 * compare-and-set that does not hold, NOT_FOUND, RESOURCE_EXHAUSTED) and
 * changes nothing.
 */
export function planWrite(w: ConfigWrite, state: ConfigState, limits: ConfigLimits, revision: number): ConfigChange {
  const versions = state.versions(w.namespace, w.service, w.key);
  const latest = versions[0];
  const exists = latest !== undefined && !latest.deleted;
  const current = exists ? latest.version : 0;
  const where = `${w.namespace}/${w.service}/${w.key}`;
  if (w.expectedVersion !== undefined && w.expectedVersion !== current) {
    const is = exists ? `is at version ${current}` : latest === undefined ? "does not exist" : `was deleted (version ${latest.version})`;
    throw new RegistryError(
      Reason.FAILED_PRECONDITION,
      `expected_version: key ${where} ${is}, expected ${w.expectedVersion === 0 ? "0 (must not exist)" : w.expectedVersion}; read it again and retry`,
    );
  }
  const base = { namespace: w.namespace, service: w.service, key: w.key, version: (latest?.version ?? 0) + 1, revision, updatedAt: w.now, principal: w.principal };
  if (w.op === "delete") {
    if (!exists) throw new RegistryError(Reason.NOT_FOUND, `key: ${where} does not exist`);
    return { revision, type: "DELETED", entry: { ...base, value: EMPTY, contentType: "", deleted: true } };
  }
  let value = w.value ?? EMPTY;
  let contentType = w.contentType ?? "";
  if (w.op === "rollback") {
    const to = versions.find((e) => e.version === w.toVersion);
    if (to === undefined) {
      const kept = versions.length === 0 ? "none" : `${versions[versions.length - 1]!.version}..${latest!.version}`;
      throw new RegistryError(Reason.NOT_FOUND, `to_version: version ${w.toVersion} of ${where} is not kept (kept: ${kept}; MAXINE_CONFIG_HISTORY_DEPTH)`);
    }
    if (to.deleted) throw new RegistryError(Reason.INVALID_ARGUMENT, `to_version: version ${w.toVersion} of ${where} is a delete; roll back to a version that holds a value`);
    value = to.value;
    contentType = to.contentType;
  }
  if (!exists && state.liveKeys(w.namespace, w.service) >= limits.maxKeysPerService) {
    throw new RegistryError(
      Reason.RESOURCE_EXHAUSTED,
      `key: service ${w.namespace}/${w.service} holds the maximum of ${limits.maxKeysPerService} keys (MAXINE_CONFIG_MAX_KEYS_PER_SERVICE)`,
    );
  }
  return { revision, type: "PUT", entry: { ...base, value, contentType, deleted: false } };
}

const EMPTY = new Uint8Array(0);
