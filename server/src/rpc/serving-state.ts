import type { Store } from "../store/store.js";

/**
 * ServerStatus is what the server can do right now: "serving"; "degraded"
 * when the shared store (Redis) is unreachable, so reads are served from
 * this replica's copy and writes fail with UNAVAILABLE; "draining" once
 * SIGTERM (or close()) started the shutdown.
 */
export type ServerStatus = "serving" | "degraded" | "draining";

/**
 * ServingState is the one place the server's health is read from: the
 * drain (the server's shutdown signal) and the store's reachability
 * (Store.health). /healthz and grpc.health.v1 both read it, so they never
 * disagree; onChange lets Health/Watch stream transitions as they happen.
 */
export class ServingState {
  private readonly listeners = new Set<() => void>();
  private readonly offStore: () => void;

  constructor(
    private readonly drain: AbortSignal,
    private readonly store: Store,
  ) {
    // Registered before anything else listens on the drain signal (app.ts
    // builds this first), so watchers hear NOT_SERVING before their streams end.
    drain.addEventListener("abort", () => this.notify(), { once: true });
    this.offStore = store.subscribeHealth?.(() => this.notify()) ?? (() => {});
  }

  /** status is the server's status now. */
  get status(): ServerStatus {
    if (this.drain.aborted) return "draining";
    return this.store.health?.().status === "degraded" ? "degraded" : "serving";
  }

  /** storeDetail says how the shared store is (undefined for the in-memory store), for /healthz. */
  get storeDetail(): string | undefined {
    return this.store.health?.().detail;
  }

  /** onChange calls fn whenever the status may have changed; the returned function removes it. */
  onChange(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** close stops following the store (the server is closing). */
  close(): void {
    this.offStore();
    this.listeners.clear();
  }

  private notify(): void {
    for (const fn of [...this.listeners]) fn();
  }
}
