import { expect } from "vitest";
import { matches, type FilterSpec } from "../../src/domain/filter.js";
import type { Change } from "../../src/store/store.js";
import type { WatchRequest } from "../../src/watch/hub.js";
import type { WatchItem } from "../../src/watch/items.js";
import type { Watcher } from "../../src/watch/watcher.js";

/** Scope is what a test watcher watches in namespace "default". */
export interface Scope {
  readonly services: readonly string[];
  readonly filter: FilterSpec;
}

/** Hub is what a WatchClient opens watchers on (a WatchHub; a replica's, in Redis mode). */
export interface Hub {
  watch(req: WatchRequest): Watcher;
}

/**
 * WatchClient behaves as an SDK watcher does over a hub's watchers: it
 * keeps a local copy (service/instanceId -> modRevision), resumes from the
 * last revision it received after a disconnect or an overflow close, and
 * checks every item it reads against the log of every change made:
 * revisions never go back, and no change it should see is skipped unless a
 * snapshot replaces its copy.
 */
export class WatchClient {
  state = new Map<string, number>();
  private w: Watcher | undefined;
  private last = 0;
  private registryId = "";
  private synced = false;
  private snapshot: Map<string, number> | undefined;
  /** resets counts snapshots flagged reset. */
  resets = 0;

  constructor(
    public hub: Hub,
    readonly scope: Scope,
    private readonly log: readonly Change[],
  ) {}

  get open(): boolean {
    return this.w !== undefined;
  }

  /** read takes up to n items, connecting (or resuming) first when disconnected; a watcher ended by its overflow policy disconnects. */
  read(n: number): void {
    this.w ??= this.hub.watch({ namespace: "default", ...this.scope, resumeRevision: this.synced ? this.last : 0, registryId: this.registryId });
    for (let i = 0; i < n; i++) {
      const item = this.w.take();
      if (item === undefined) break;
      this.apply(item);
    }
    const ended = this.w.endedWith;
    if (ended !== undefined) {
      expect(ended.error).toMatchObject({ reason: "WATCH_OVERFLOW" });
      this.w = undefined;
      this.snapshot = undefined; // a snapshot cut short by the end is dropped, as a client does
    }
  }

  /** disconnect ends the watcher as a client cancel does; the next read resumes. */
  disconnect(): void {
    this.w?.end();
    this.w = undefined;
    this.snapshot = undefined;
  }

  private apply(item: WatchItem): void {
    switch (item.kind) {
      case "snapshot":
        this.snapshot ??= new Map();
        for (const r of item.instances) this.snapshot.set(`${r.service}/${r.instanceId}`, r.modRevision);
        return;
      case "snapshot_end":
        if (this.synced && item.registryId === this.registryId) expect(item.revision, "a snapshot never goes back in time").toBeGreaterThanOrEqual(this.last);
        if (item.reason !== undefined) this.resets++;
        this.state = new Map([...(this.snapshot ?? new Map<string, number>())].sort());
        this.snapshot = undefined;
        this.last = item.revision;
        this.registryId = item.registryId;
        this.synced = true;
        return;
      case "progress":
        expect(this.synced).toBe(true);
        expect(item.revision).toBeGreaterThanOrEqual(this.last);
        this.expectNoneMissed(item.revision + 1);
        this.last = item.revision;
        return;
      case "event": {
        expect(this.synced).toBe(true);
        expect(item.revision, `event ${item.revision} after revision ${this.last}`).toBeGreaterThan(this.last);
        this.expectNoneMissed(item.revision);
        const key = `${item.instance.service}/${item.instance.instanceId}`;
        if (item.type === "ADDED") expect(this.state.has(key), `ADDED ${key} it already holds`).toBe(false);
        else expect(this.state.has(key), `${item.type} ${key} it does not hold`).toBe(true);
        if (item.type === "REMOVED") this.state.delete(key);
        else this.state.set(key, item.instance.modRevision);
        this.state = new Map([...this.state].sort());
        this.last = item.revision;
        return;
      }
    }
  }

  /** expectNoneMissed checks that no change this watcher sees lies after the last revision it received and before until. */
  private expectNoneMissed(until: number): void {
    const missed = this.log.filter((c) => c.revision > this.last && c.revision < until && this.sees(c));
    expect(missed.map((c) => c.revision), `changes skipped before revision ${until}`).toEqual([]);
  }

  private sees(c: Change): boolean {
    const i = c.instance;
    if (i.namespace !== "default") return false;
    if (this.scope.services.length > 0 && !this.scope.services.includes(i.service)) return false;
    return matches(this.scope.filter, i) || (c.type === "UPDATED" && matches(this.scope.filter, c.previous));
  }
}
