import { randomUUID } from "node:crypto";
import { planWrite, type ConfigChange, type ConfigEntry, type ConfigLimits, type ConfigWrite } from "../domain/config-entry.js";
import { ConfigView, planning, recentOf, type ConfigStore } from "./config-store.js";

/** Commit is one batch of planned changes to make durable, with the entries the history depth drops. */
export interface Commit {
  readonly changes: readonly ConfigChange[];
  readonly dropped: readonly ConfigEntry[];
}

interface Pending {
  readonly write: ConfigWrite;
  resolve(change: ConfigChange): void;
  reject(err: unknown): void;
}

/**
 * BatchedConfigStore is a ConfigStore whose writes are planned here, in one
 * order, and committed in batches (group commit): the writes that arrive
 * while a batch is being made durable are planned one after another and
 * committed together by the next, so one fsync acknowledges them all.
 * A change becomes visible (reads, subscribers) only once its batch is
 * committed: nothing that could still be lost is ever read. A store
 * supplies persist; the memory store's does nothing.
 */
export abstract class BatchedConfigStore implements ConfigStore {
  protected readonly view: ConfigView;
  private readonly listeners = new Set<(change: ConfigChange) => void>();
  private pending: Pending[] = [];
  private committing = false;
  private closed = false;
  /** batches counts committed batches, writes the writes they held (a measure of group commit). */
  batches = 0;
  writes = 0;

  constructor(
    limits: ConfigLimits,
    readonly registryId: string = randomUUID(),
  ) {
    this.view = new ConfigView(limits);
  }

  /** persist makes a batch durable; it resolves once it is (or rejects, and the batch's writes fail). */
  protected abstract persist(commit: Commit): Promise<void>;

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

  write(write: ConfigWrite): Promise<ConfigChange> {
    if (this.closed) return Promise.reject(new Error("config store closed"));
    return new Promise((resolve, reject) => {
      this.pending.push({ write, resolve, reject });
      if (!this.committing) void this.commitPending();
    });
  }

  subscribe(listener: (change: ConfigChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  recentChanges(): readonly ConfigChange[] {
    return recentOf(this.view.entries(), this.view.revision(), Number.MAX_SAFE_INTEGER);
  }

  async close(): Promise<void> {
    this.closed = true;
    while (this.committing) await new Promise((r) => setImmediate(r));
    this.listeners.clear();
  }

  /** load applies changes read back from where they were kept (a restart), oldest first. */
  protected load(changes: Iterable<ConfigChange>): void {
    for (const c of changes) this.view.apply(c);
  }

  private async commitPending(): Promise<void> {
    this.committing = true;
    try {
      while (this.pending.length > 0) {
        const batch = this.pending;
        this.pending = [];
        const state = planning(this.view);
        const planned: Array<{ p: Pending; change: ConfigChange }> = [];
        let revision = this.view.revision();
        for (const p of batch) {
          try {
            const change = planWrite(p.write, state, this.view.limits, revision + 1);
            state.planned(change);
            revision++;
            planned.push({ p, change });
          } catch (err) {
            p.reject(err);
          }
        }
        if (planned.length === 0) continue;
        const changes = planned.map((x) => x.change);
        // what the history depth drops, found on a copy of the plan's outcome: the view changes only after the commit
        const dropped = droppedBy(this.view, changes);
        try {
          await this.persist({ changes, dropped });
        } catch (err) {
          for (const { p } of planned) p.reject(err);
          continue;
        }
        this.batches++;
        this.writes += planned.length;
        for (const { p, change } of planned) {
          this.view.apply(change);
          for (const l of this.listeners) l(change);
          p.resolve(change);
        }
      }
    } finally {
      this.committing = false;
    }
  }
}

/** droppedBy lists the kept entries that applying changes to view would drop (beyond the history depth). */
function droppedBy(view: ConfigView, changes: readonly ConfigChange[]): ConfigEntry[] {
  const depth = Math.max(1, view.limits.historyDepth);
  const added = new Map<string, number>();
  const out: ConfigEntry[] = [];
  for (const c of changes) {
    const e = c.entry;
    const id = `${e.namespace}\u0000${e.service}\u0000${e.key}`;
    const n = (added.get(id) ?? 0) + 1;
    added.set(id, n);
    const kept = view.versions(e.namespace, e.service, e.key);
    // after n new versions, the kept ones from index depth - n on are dropped; the one at depth - n is dropped by this change
    const i = depth - n;
    if (i >= 0 && i < kept.length) out.push(kept[i]!);
  }
  return out;
}
