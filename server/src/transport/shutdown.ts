import type { CallSignal } from "../rpc/context.js";

/**
 * Shutdown tells open calls that the server drains. It wraps the server's
 * shutdown AbortSignal with a set of call signals: an AbortSignal scans its
 * listener list on every add and remove (Node's EventTarget checks for
 * duplicates), which made opening and ending tens of thousands of heartbeat
 * streams quadratic; tracking and untracking a call here is O(1), and costs
 * a set entry, not a closure.
 */
export class Shutdown {
  private readonly calls = new Set<CallSignal>();

  constructor(readonly signal: AbortSignal) {
    signal.addEventListener(
      "abort",
      () => {
        for (const c of [...this.calls]) c.abort(signal.reason);
        this.calls.clear();
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

  /** track ends a call (its signal aborts with the reason) when the server drains, unless untrack came first. */
  track(call: CallSignal): void {
    if (this.signal.aborted) call.abort(this.signal.reason);
    else this.calls.add(call);
  }

  untrack(call: CallSignal): void {
    this.calls.delete(call);
  }
}
