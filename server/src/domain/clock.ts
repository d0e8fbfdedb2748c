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
