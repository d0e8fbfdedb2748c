import { randomUUID } from "node:crypto";
import { Reason, RegistryError } from "../domain/errors.js";
import { planWrite, type ConfigChange, type ConfigEntry, type ConfigLimits, type ConfigWrite } from "../domain/config-entry.js";
import { ConfigView, ConfigViewReads, planning, type ConfigStore } from "./config-store.js";
import type { StoreResetReason } from "./store.js";

/** Commit is one batch of planned changes to make durable, with the entries the history depth drops. */
export interface Commit {
  /** base is the revision the batch was planned at: a shared store commits it only if its revision is still base. */
  readonly base: number;
  readonly changes: readonly ConfigChange[];
  readonly dropped: readonly ConfigEntry[];
}

/** MAX_ATTEMPTS bounds how often a batch is planned again after another replica committed first. */
const MAX_ATTEMPTS = 50;

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
export abstract class BatchedConfigStore extends ConfigViewReads implements ConfigStore {
  protected view: ConfigView;
  private readonly listeners = new Set<(change: ConfigChange) => void>();
  private readonly resetListeners = new Set<(reason: StoreResetReason) => void>();
  private pending: Pending[] = [];
  private committing = false;
  private closed = false;
  /** batches counts committed batches, writes the writes they held (a measure of group commit). */
  batches = 0;
  writes = 0;

  /** registryId names this store's state; a shared store whose state was lost (Redis emptied) takes the new state's. */
  registryId: string;

  constructor(limits: ConfigLimits, registryId: string = randomUUID()) {
    super();
    this.view = new ConfigView(limits);
    this.registryId = registryId;
  }

  /**
   * persist makes a batch durable; it resolves true once it is, false when
   * a shared store's revision moved past commit.base (another replica
   * wrote first: the batch is planned again), or rejects (the writes fail).
   */
  protected abstract persist(commit: Commit): Promise<boolean>;

  /** prepare brings the view up to the store's latest revision before a batch is planned (a shared store reads what other replicas wrote). */
  protected async prepare(): Promise<void> {}

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

  subscribeResets(listener: (reason: StoreResetReason) => void): () => void {
    this.resetListeners.add(listener);
    return () => this.resetListeners.delete(listener);
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

  /**
   * replace swaps the view for one rebuilt from changes (a shared store
   * whose log no longer leads from this view to its state): watchers get a
   * fresh snapshot flagged reset.
   */
  protected replace(changes: Iterable<ConfigChange>, reason: StoreResetReason): void {
    this.view = new ConfigView(this.view.limits);
    this.load(changes);
    for (const l of this.resetListeners) l(reason);
  }

  /**
   * applyCommitted makes a committed change visible: applied to the view
   * and told to subscribers, once, in revision order. A change already
   * applied (a shared store hears its own writes back) is ignored; one
   * past the next revision reports a gap (false) for the caller to fill.
   */
  protected applyCommitted(change: ConfigChange): boolean {
    const at = this.view.revision();
    if (change.revision <= at) return true;
    if (change.revision !== at + 1) return false;
    this.view.apply(change);
    for (const l of this.listeners) l(change);
    return true;
  }

  private async commitPending(): Promise<void> {
    this.committing = true;
    try {
      while (this.pending.length > 0) {
        let batch = this.pending;
        this.pending = [];
        for (let attempt = 1; batch.length > 0; attempt++) {
          batch = await this.commitBatch(batch, attempt);
        }
      }
    } finally {
      this.committing = false;
    }
  }

  /**
   * commitBatch plans a batch at the store's latest revision, persists it,
   * and makes it visible; it returns the writes to plan again when another
   * replica committed first (none otherwise: each write was resolved or
   * rejected).
   */
  private async commitBatch(batch: Pending[], attempt: number): Promise<Pending[]> {
    try {
      await this.prepare();
    } catch (err) {
      for (const p of batch) p.reject(err);
      return [];
    }
    const state = planning(this.view);
    const planned: Array<{ p: Pending; change: ConfigChange }> = [];
    const base = this.view.revision();
    let revision = base;
    for (const p of batch) {
      try {
        const change = planWrite(p.write, state, this.view.limits, revision + 1);
        state.planned(change);
        revision++;
        planned.push({ p, change });
      } catch (err) {
        // refused at this state: final, even if a later attempt would see another (the client reads again and retries)
        p.reject(err);
      }
    }
    if (planned.length === 0) return [];
    const changes = planned.map((x) => x.change);
    // what the history depth drops, found against the view as it is: it changes only after the commit
    const dropped = droppedBy(this.view, changes);
    let committed: boolean;
    try {
      committed = await this.persist({ base, changes, dropped });
    } catch (err) {
      for (const { p } of planned) p.reject(err);
      return [];
    }
    if (!committed) {
      if (attempt < MAX_ATTEMPTS) return planned.map((x) => x.p);
      const err = new RegistryError(Reason.UNAVAILABLE, `configuration store: ${MAX_ATTEMPTS} attempts lost to concurrent writes on other replicas; retry`);
      for (const { p } of planned) p.reject(err);
      return [];
    }
    this.batches++;
    this.writes += planned.length;
    for (const { p, change } of planned) {
      this.applyCommitted(change);
      p.resolve(change);
    }
    return [];
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
