import { timestampMs } from "@bufbuild/protobuf/wkt";
import {
  EventType,
  RemovalReason,
  ServingStatus,
  type Instance,
  type SnapshotEnd,
  type WatchEvent,
} from "../../sdks/typescript/src/gen/maxine/registry/v1/registry_pb.js";

/** FADE_MS is how long a REMOVED row stays on screen, showing its reason, before it goes. */
export const FADE_MS = 5000;
/** FLASH_MS is how long a row that changed is highlighted. */
export const FLASH_MS = 1500;

/** Row is one instance as the page shows it: its last state, when the page saw it change, and its removal, if it went. */
export interface Row {
  instance: Instance;
  /** changedAt is when (Date.now()) the page last saw the instance change: added, updated or removed. */
  changedAt: number;
  /** removed says why the instance went (a REMOVED event), and when; the row fades, then is dropped. */
  removed: { readonly reason: string; readonly at: number } | undefined;
}

/** FeedEntry is one line of the live event feed. */
export interface FeedEntry {
  readonly revision: bigint;
  readonly at: number;
  readonly type: string;
  readonly service: string;
  readonly instanceId: string;
  readonly detail: string;
}

/** StatusCounts counts a service's instances by status (REMOVED rows still on screen are not counted). */
export interface StatusCounts {
  total: number;
  serving: number;
  draining: number;
  notServing: number;
}

/**
 * NamespaceView is the page's copy of one namespace, kept by one
 * namespace-wide WatchServices stream: every instance by service, the
 * revision and registry it is at. A snapshot (SnapshotEnd) replaces it;
 * each event changes one row. REMOVED rows stay, marked with their reason,
 * for FADE_MS (prune drops them after). It holds no DOM: the views read it.
 */
export class NamespaceView {
  readonly services = new Map<string, Map<string, Row>>();
  revision = 0n;
  registryId = "";
  /** synced is set once a snapshot ended: before it the view is empty, not "no instances". */
  synced = false;
  /** changes grows with every snapshot, event and prune: what is computed from the view is recomputed only when it moved. */
  changes = 0;
  /** generation grows whenever a service's set of rows changes (add or drop): sorted lists are cached per generation. */
  generation = 0;
  private readonly sorted = new Map<string, { generation: number; rows: Row[] }>();

  constructor(readonly namespace: string) {}

  /**
   * replace installs a whole snapshot (its instances, then its end): rows
   * whose content did not change keep their changedAt, so a reconnect to the
   * same registry flashes nothing.
   */
  replace(instances: readonly Instance[], end: SnapshotEnd, now: number): void {
    const before = this.services;
    const next = new Map<string, Map<string, Row>>();
    for (const inst of instances) {
      let rows = next.get(inst.service);
      if (rows === undefined) next.set(inst.service, (rows = new Map()));
      const old = before.get(inst.service)?.get(inst.instanceId);
      const same = old !== undefined && old.removed === undefined && old.instance.modRevision === inst.modRevision && end.registryId === this.registryId;
      rows.set(inst.instanceId, { instance: inst, changedAt: same ? old.changedAt : this.synced ? now : 0, removed: undefined });
    }
    this.services.clear();
    for (const [k, v] of next) this.services.set(k, v);
    this.revision = end.revision;
    this.registryId = end.registryId;
    this.synced = true;
    this.generation++;
    this.changes++;
  }

  /** apply changes the view by one event and returns its feed line. */
  apply(ev: WatchEvent, now: number): FeedEntry | undefined {
    const inst = ev.instance;
    if (inst === undefined) return undefined;
    this.revision = ev.revision;
    this.changes++;
    let rows = this.services.get(inst.service);
    if (rows === undefined) this.services.set(inst.service, (rows = new Map()));
    const removed = ev.type === EventType.REMOVED ? { reason: removalReasonName(ev.removalReason), at: now } : undefined;
    const row = rows.get(inst.instanceId);
    if (row === undefined) {
      rows.set(inst.instanceId, { instance: inst, changedAt: now, removed });
      this.generation++;
    } else {
      // changed in place: the sorted lists that hold the row stay valid
      row.instance = inst;
      row.changedAt = now;
      row.removed = removed;
    }
    const detail = removed?.reason ?? statusName(inst.status);
    return { revision: ev.revision, at: now, type: eventTypeName(ev.type), service: inst.service, instanceId: inst.instanceId, detail };
  }

  /** prune drops REMOVED rows older than FADE_MS (and services left empty); it reports whether it dropped any. */
  prune(now: number): boolean {
    let dropped = false;
    for (const [service, rows] of this.services) {
      for (const [id, row] of rows) {
        if (row.removed !== undefined && now - row.removed.at >= FADE_MS) {
          rows.delete(id);
          dropped = true;
        }
      }
      if (rows.size === 0) this.services.delete(service);
    }
    if (dropped) {
      this.generation++;
      this.changes++;
    }
    return dropped;
  }

  /** rowsOf lists a service's rows in instance_id order (cached until its set of rows changes). */
  rowsOf(service: string): readonly Row[] {
    const cached = this.sorted.get(service);
    if (cached !== undefined && cached.generation === this.generation) return cached.rows;
    const rows = [...(this.services.get(service)?.values() ?? [])].sort((a, b) => (a.instance.instanceId < b.instance.instanceId ? -1 : a.instance.instanceId > b.instance.instanceId ? 1 : 0));
    this.sorted.set(service, { generation: this.generation, rows });
    return rows;
  }

  /** counts counts a service's live instances by status. */
  counts(service: string): StatusCounts {
    const c: StatusCounts = { total: 0, serving: 0, draining: 0, notServing: 0 };
    for (const row of this.services.get(service)?.values() ?? []) {
      if (row.removed !== undefined) continue;
      c.total++;
      const s = row.instance.status;
      if (s === ServingStatus.SERVING || s === ServingStatus.UNSPECIFIED) c.serving++;
      else if (s === ServingStatus.DRAINING) c.draining++;
      else c.notServing++;
    }
    return c;
  }

  /** instanceCount counts the live instances of every service. */
  instanceCount(): number {
    let n = 0;
    for (const rows of this.services.values()) for (const row of rows.values()) if (row.removed === undefined) n++;
    return n;
  }
}

/** statusName is a ServingStatus as the page writes it: SERVING, DRAINING, NOT_SERVING. */
export function statusName(s: ServingStatus): string {
  return s === ServingStatus.UNSPECIFIED ? "SERVING" : (ServingStatus[s] ?? String(s));
}

/** removalReasonName writes a RemovalReason for people: "stream closed", "lease expired"... */
export function removalReasonName(r: RemovalReason): string {
  return (RemovalReason[r] ?? "unspecified").toLowerCase().replaceAll("_", " ");
}

/** eventTypeName is ADDED, UPDATED or REMOVED. */
export function eventTypeName(t: EventType): string {
  return EventType[t] ?? String(t);
}

/** ageText writes how long ago a moment was: "3s", "4m", "2h". */
export function ageText(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  return `${Math.floor(s / 3600)}h`;
}

/** updatedAtMs is when the registry last changed an instance (updated_at), or 0. */
export function updatedAtMs(inst: Instance): number {
  return inst.updatedAt === undefined ? 0 : timestampMs(inst.updatedAt);
}
