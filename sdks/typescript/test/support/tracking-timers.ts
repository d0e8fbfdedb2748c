import { systemTimers, type TimerHandle, type Timers } from "../../src/timers.js";

/**
 * TrackingTimers are real timers that count what is still scheduled, so a
 * test can assert that a Session or Watcher left no timer behind.
 */
export class TrackingTimers implements Timers {
  private readonly live = new Set<TimerHandle>();

  /** pending counts timers scheduled and neither fired nor cleared. */
  get pending(): number {
    return this.live.size;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const handle = systemTimers.setTimeout(() => {
      this.live.delete(handle);
      fn();
    }, ms);
    this.live.add(handle);
    return handle;
  }

  clearTimeout(handle: TimerHandle): void {
    this.live.delete(handle);
    systemTimers.clearTimeout(handle);
  }

  now(): number {
    return systemTimers.now();
  }
}
