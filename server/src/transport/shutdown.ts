/**
 * Shutdown tells open calls that the server drains. It wraps the server's
 * shutdown AbortSignal with a set of handlers: an AbortSignal scans its
 * listener list on every add and remove (Node's EventTarget checks for
 * duplicates), which made opening and ending tens of thousands of heartbeat
 * streams quadratic; adding and removing a handler here is O(1).
 */
export class Shutdown {
  private readonly handlers = new Set<(reason: unknown) => void>();

  constructor(readonly signal: AbortSignal) {
    signal.addEventListener(
      "abort",
      () => {
        for (const h of [...this.handlers]) h(signal.reason);
        this.handlers.clear();
      },
      { once: true },
    );
  }

  /** aborted reports whether the server drains. */
  get aborted(): boolean {
    return this.signal.aborted;
  }

  /** reason is the error open calls end with (UNAVAILABLE). */
  get reason(): unknown {
    return this.signal.reason;
  }

  /** onShutdown calls fn once when the server drains, unless the returned function removed it first. */
  onShutdown(fn: (reason: unknown) => void): () => void {
    this.handlers.add(fn);
    return () => this.handlers.delete(fn);
  }
}
