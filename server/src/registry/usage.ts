import type { InstanceRecord } from "../domain/instance.js";
import type { Change, Store } from "../store/store.js";

/**
 * Usage counts what the quotas bound: instances in all, instances per
 * owner, services in all. It follows the store's change feed (so in Redis
 * mode it counts what every replica registered) and recounts from the view
 * when the store replaces it.
 */
export class Usage {
  instances = 0;
  services = 0;
  private readonly owned = new Map<string, number>();

  constructor(private readonly store: Store) {
    this.recount();
  }

  /** ownedBy counts the instances a principal owns. */
  ownedBy(principal: string): number {
    return this.owned.get(principal) ?? 0;
  }

  recount(): void {
    this.instances = 0;
    this.services = 0;
    this.owned.clear();
    for (const ns of this.store.namespaces()) {
      for (const [, view] of this.store.services(ns)) {
        this.services++;
        for (const r of view.sorted()) this.add(r, 1);
      }
    }
  }

  /** apply counts a change; the store's view already holds it. */
  apply(change: Change): void {
    const r = change.instance;
    switch (change.type) {
      case "ADDED":
        this.add(r, 1);
        if (this.store.service(r.namespace, r.service)?.size === 1) this.services++;
        break;
      case "UPDATED":
        if (change.previous.owner !== r.owner) {
          this.add(change.previous, -1);
          this.add(r, 1);
        }
        break;
      case "REMOVED":
        this.add(r, -1);
        if ((this.store.service(r.namespace, r.service)?.size ?? 0) === 0) this.services--;
        break;
    }
  }

  private add(r: InstanceRecord, n: number): void {
    this.instances += n;
    const c = (this.owned.get(r.owner) ?? 0) + n;
    if (c <= 0) this.owned.delete(r.owner);
    else this.owned.set(r.owner, c);
  }
}
