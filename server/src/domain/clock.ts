/** Timer is the handle a Clock returns for a scheduled callback. */
export interface Timer {
  cancel(): void;
}

/**
 * Clock is the registry's only source of time. Production code uses
 * systemClock; tests inject a fake clock so that lease and expiry logic runs
 * without sleeping.
 */
export interface Clock {
  /** now returns milliseconds since the Unix epoch. */
  now(): number;
  /** setTimer runs fn once after ms milliseconds. */
  setTimer(fn: () => void, ms: number): Timer;
}

/** systemClock is the wall clock with Node.js timers, unref'ed so they never keep a process alive. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer(fn, ms) {
    const t = setTimeout(fn, Math.max(0, ms));
    t.unref();
    return { cancel: () => clearTimeout(t) };
  },
};

/**
 * DeadlineTimer keeps one timer set for the earliest deadline it is told
 * of, and runs fire then (the lease expiry of a registry: one timer, not
 * one per lease).
 */
export class DeadlineTimer {
  private timer: Timer | undefined;
  private at = Infinity;

  constructor(
    private readonly clock: Clock,
    private readonly fire: () => void,
  ) {}

  /** arm sets the timer for at, unless it is set for that time or earlier already (undefined: nothing is due). */
  arm(at: number | undefined): void {
    if (at === undefined || at >= this.at) return;
    this.timer?.cancel();
    this.at = at;
    this.timer = this.clock.setTimer(() => {
      this.timer = undefined;
      this.at = Infinity;
      this.fire();
    }, at - this.clock.now());
  }

  cancel(): void {
    this.timer?.cancel();
    this.timer = undefined;
    this.at = Infinity;
  }
}
