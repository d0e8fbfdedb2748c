import type { Change } from "../store/store.js";

/**
 * History keeps the latest changes in a ring buffer so that a watcher can
 * resume from a revision without a new snapshot. Changes arrive in revision
 * order with no gaps.
 */
export class History {
  private readonly ring: Array<Change | undefined>;
  private start = 0;
  private count = 0;

  constructor(readonly capacity: number) {
    this.ring = new Array<Change | undefined>(capacity);
  }

  append(change: Change): void {
    if (this.capacity === 0) return;
    const end = (this.start + this.count) % this.capacity;
    this.ring[end] = change;
    if (this.count < this.capacity) this.count++;
    else this.start = (this.start + 1) % this.capacity;
  }

  /** oldest is the revision of the oldest retained change, or undefined when empty. */
  oldest(): number | undefined {
    return this.count === 0 ? undefined : this.ring[this.start]!.revision;
  }

  /**
   * since returns the changes after revision, oldest first; undefined when
   * some of them are no longer retained (compacted). current is the store's
   * revision, which bounds what can exist.
   */
  since(revision: number, current: number): Change[] | undefined {
    if (revision >= current) return [];
    const oldest = this.oldest();
    if (oldest === undefined || oldest > revision + 1) return undefined;
    const skip = revision + 1 - oldest;
    const out: Change[] = [];
    for (let i = skip; i < this.count; i++) out.push(this.ring[(this.start + i) % this.capacity]!);
    return out;
  }
}
