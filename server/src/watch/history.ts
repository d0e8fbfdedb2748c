import type { Change } from "../store/store.js";
import type { Revisioned } from "./watcher.js";

/**
 * History is the shared, ordered log of the latest changes: what a resume
 * replays and what every watcher's cursor reads from, so a change is held
 * once however many watchers have yet to send it. Changes arrive in
 * revision order with no gaps, so the change of a revision is found by
 * arithmetic. The ring keeps capacity changes; older ones are dropped.
 */
export class History<C extends Revisioned = Change> {
  private readonly ring: Array<C | undefined>;
  private start = 0;
  private count = 0;

  constructor(readonly capacity: number) {
    this.ring = new Array<C | undefined>(capacity);
  }

  append(change: C): void {
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

  /** newest is the revision of the newest retained change, or undefined when empty. */
  newest(): number | undefined {
    return this.count === 0 ? undefined : this.ring[(this.start + this.count - 1) % this.capacity]!.revision;
  }

  /** at returns the change of revision, or undefined when it is not retained (dropped, or not yet made). */
  at(revision: number): C | undefined {
    if (this.count === 0) return undefined;
    const i = revision - this.ring[this.start]!.revision;
    if (i < 0 || i >= this.count) return undefined;
    return this.ring[(this.start + i) % this.capacity];
  }

  /** holds reports whether every change after revision up to the newest is retained. */
  holds(revision: number): boolean {
    const oldest = this.oldest();
    return oldest !== undefined && oldest <= revision + 1;
  }
}
