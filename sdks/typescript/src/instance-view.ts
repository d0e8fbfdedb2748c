import { equals, type MessageInitShape } from "@bufbuild/protobuf";
import { compareIds } from "./balancer.js";
import { instanceDigest } from "./instance-digest.js";
import {
  EventType,
  InstanceSchema,
  RemovalReason,
  ResetReason,
  type Instance,
  type InstanceKey,
  type WatchEvent,
  type WatchHoldingsSchema,
  type WatchServicesResponse,
} from "./gen/maxine/registry/v1/registry_pb.js";

/** ChangeType is how one instance of a watched view changed. */
export type ChangeType = "added" | "updated" | "removed";

/** WatchChange is one change of a Watcher's view, from an event or from a snapshot that replaced the view. */
export interface WatchChange {
  readonly type: ChangeType;
  /** instance after the change; for "removed", its last state. */
  readonly instance: Instance;
  /** previous is what the view held before ("updated" and "removed"), else undefined. */
  readonly previous: Instance | undefined;
  /** revision is the event's revision, or the snapshot's for changes found by a snapshot. */
  readonly revision: bigint;
  /** removalReason says why a "removed" instance went; UNSPECIFIED when a snapshot no longer held it. */
  readonly removalReason: RemovalReason;
}

/** SyncInfo describes a snapshot that the view now equals. */
export interface SyncInfo {
  readonly revision: bigint;
  readonly registryId: string;
  /** reset is set when the server replaced state the view may have held (see ResetReason). */
  readonly reset: boolean;
  readonly reason: ResetReason;
}

/** ApplyResult is what one WatchServicesResponse did to the view. */
export interface ApplyResult {
  readonly changes: readonly WatchChange[];
  /** synced is set when the message ended a snapshot. */
  readonly synced?: SyncInfo;
}

const byId = (a: Instance, b: Instance): number => compareIds(a.instanceId, b.instanceId);

/**
 * MAX_HELD_INSTANCES and MAX_HELD_BYTES bound the holdings a view names on
 * a resume (WatchServicesRequest.held): the server's default limit
 * (MAXINE_WATCH_MAX_HELD) and well under its default message size (4 MiB).
 * A view holding more names nothing and gets a whole snapshot.
 */
export const MAX_HELD_INSTANCES = 100_000;
export const MAX_HELD_BYTES = 3 * 1024 * 1024;

// An instance's content digest, computed once per received message.
const digests = new WeakMap<Instance, bigint>();
function digestOf(i: Instance): bigint {
  let d = digests.get(i);
  if (d === undefined) digests.set(i, (d = instanceDigest(i)));
  return d;
}

/** Holdings is WatchServicesRequest.held as a view names it. */
export type Holdings = MessageInitShape<typeof WatchHoldingsSchema>;

/**
 * InstanceView is the state machine behind a Watcher, with no I/O: it
 * collects snapshot chunks and at snapshot_end replaces its content with them,
 * reporting the differences as changes so that listeners stay consistent
 * across resets; it applies events in revision order; and it tracks the
 * revision and registry_id to resume from.
 */
export class InstanceView {
  private readonly services = new Map<string, Map<string, Instance>>();
  private readonly sortedCache = new Map<string, readonly Instance[]>();
  private readonly versions = new Map<string, number>();
  private pending: Instance[] | undefined;
  private pendingRemoved: InstanceKey[] | undefined;
  private rev = 0n;
  private registry = "";
  private hasSynced = false;

  /** revision is the last revision the view is known to be up to date at. */
  get revision(): bigint {
    return this.rev;
  }

  /** registryId names the registry revision comes from ("" before the first snapshot). */
  get registryId(): string {
    return this.registry;
  }

  /** synced is true once a snapshot was applied: from then on the view can resume. */
  get synced(): boolean {
    return this.hasSynced;
  }

  /** size counts the instances in the view. */
  get size(): number {
    let n = 0;
    for (const m of this.services.values()) n += m.size;
    return n;
  }

  /** serviceNames lists the services that hold instances, in name order. */
  serviceNames(): string[] {
    return [...this.services.keys()].sort();
  }

  /** sorted returns one service's instances in instance_id order; cached until the service changes. */
  sorted(service: string): readonly Instance[] {
    let list = this.sortedCache.get(service);
    if (list === undefined) {
      list = [...(this.services.get(service)?.values() ?? [])].sort(byId);
      this.sortedCache.set(service, list);
    }
    return list;
  }

  /** version counts the changes of one service, so that derived caches know when to rebuild. */
  version(service: string): number {
    return this.versions.get(service) ?? 0;
  }

  /** get returns one instance, or undefined. */
  get(service: string, instanceId: string): Instance | undefined {
    return this.services.get(service)?.get(instanceId);
  }

  /** abandonSnapshot drops a partly received snapshot (its stream failed before snapshot_end). */
  abandonSnapshot(): void {
    this.pending = undefined;
    this.pendingRemoved = undefined;
  }

  /**
   * holdings names every instance of the view with its content digest, for
   * a resume (WatchServicesRequest.held): a server that cannot replay then
   * sends only the differences. Undefined when the view is empty or holds
   * more than MAX_HELD_INSTANCES or MAX_HELD_BYTES (a whole snapshot then).
   */
  holdings(): Holdings | undefined {
    if (this.size === 0 || this.size > MAX_HELD_INSTANCES) return undefined;
    let bytes = 0;
    const services = [];
    for (const [service, m] of this.services) {
      bytes += service.length + 4;
      const instances = [];
      for (const i of m.values()) {
        bytes += i.instanceId.length + 13;
        instances.push({ instanceId: i.instanceId, digest: digestOf(i) });
      }
      services.push({ service, instances });
    }
    return bytes > MAX_HELD_BYTES ? undefined : { services };
  }

  /** apply folds one message of a watch stream into the view. */
  apply(msg: WatchServicesResponse): ApplyResult {
    switch (msg.message.case) {
      case "snapshot":
        (this.pending ??= []).push(...msg.message.value.instances);
        if (msg.message.value.removed.length > 0) (this.pendingRemoved ??= []).push(...msg.message.value.removed);
        return { changes: [] };
      case "snapshotEnd": {
        const end = msg.message.value;
        const changes = end.differential
          ? this.patch(this.pending ?? [], this.pendingRemoved ?? [], end.revision)
          : this.replace(this.pending ?? [], end.revision);
        this.pending = undefined;
        this.pendingRemoved = undefined;
        this.rev = end.revision;
        this.registry = end.registryId;
        this.hasSynced = true;
        return { changes, synced: { revision: end.revision, registryId: end.registryId, reset: end.reset, reason: end.reason } };
      }
      case "event":
        return { changes: this.event(msg.message.value) };
      case "progress": {
        const p = msg.message.value;
        if (p.revision > this.rev) this.rev = p.revision;
        if (p.registryId !== "") this.registry = p.registryId;
        return { changes: [] };
      }
      default:
        return { changes: [] }; // a message kind newer than this SDK
    }
  }

  private event(e: WatchEvent): WatchChange[] {
    if (e.instance === undefined || (this.hasSynced && e.revision <= this.rev)) return [];
    this.rev = e.revision;
    const inst = e.instance;
    const previous = this.get(inst.service, inst.instanceId);
    if (e.type === EventType.REMOVED) {
      if (previous === undefined) return [];
      this.delete(inst);
      return [{ type: "removed", instance: inst, previous, revision: e.revision, removalReason: e.removalReason }];
    }
    if (e.type !== EventType.ADDED && e.type !== EventType.UPDATED) return [];
    this.set(inst);
    const type = previous === undefined ? "added" : "updated";
    return [{ type, instance: inst, previous, revision: e.revision, removalReason: RemovalReason.UNSPECIFIED }];
  }

  private replace(next: readonly Instance[], revision: bigint): WatchChange[] {
    const changes: WatchChange[] = [];
    const seen = new Set<string>();
    const none = RemovalReason.UNSPECIFIED;
    for (const inst of next) {
      seen.add(`${inst.service}/${inst.instanceId}`);
      const previous = this.get(inst.service, inst.instanceId);
      if (previous !== undefined && equals(InstanceSchema, previous, inst)) continue;
      this.set(inst);
      changes.push({ type: previous === undefined ? "added" : "updated", instance: inst, previous, revision, removalReason: none });
    }
    for (const [service, m] of [...this.services]) {
      for (const previous of [...m.values()]) {
        if (seen.has(`${service}/${previous.instanceId}`)) continue;
        this.delete(previous);
        changes.push({ type: "removed", instance: previous, previous, revision, removalReason: none });
      }
    }
    return changes;
  }

  /**
   * patch applies a differential snapshot: the view named its holdings when
   * the stream opened and has not changed since, so it drops the removed
   * instances and takes the sent ones (added, or replacing their copies).
   */
  private patch(sent: readonly Instance[], removed: readonly InstanceKey[], revision: bigint): WatchChange[] {
    const changes: WatchChange[] = [];
    const none = RemovalReason.UNSPECIFIED;
    for (const k of removed) {
      const previous = this.get(k.service, k.instanceId);
      if (previous === undefined) continue;
      this.delete(previous);
      changes.push({ type: "removed", instance: previous, previous, revision, removalReason: none });
    }
    for (const inst of sent) {
      const previous = this.get(inst.service, inst.instanceId);
      if (previous !== undefined && equals(InstanceSchema, previous, inst)) continue;
      this.set(inst);
      changes.push({ type: previous === undefined ? "added" : "updated", instance: inst, previous, revision, removalReason: none });
    }
    return changes;
  }

  private set(inst: Instance): void {
    let m = this.services.get(inst.service);
    if (m === undefined) this.services.set(inst.service, (m = new Map()));
    m.set(inst.instanceId, inst);
    this.touch(inst.service);
  }

  private delete(inst: Instance): void {
    const m = this.services.get(inst.service);
    if (m === undefined) return;
    m.delete(inst.instanceId);
    if (m.size === 0) this.services.delete(inst.service);
    this.touch(inst.service);
  }

  private touch(service: string): void {
    this.sortedCache.delete(service);
    this.versions.set(service, this.version(service) + 1);
  }
}
