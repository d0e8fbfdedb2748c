// Timers are injected wherever the SDK waits, so tests can run a session or
// a watcher with fake time, and so every timer the SDK starts is one it can
// name and clear.

/** TimerHandle is whatever Timers.setTimeout returns; only clearTimeout reads it. */
export type TimerHandle = unknown;

/**
 * Timers is the clock the SDK schedules work on. The default uses the
 * global setTimeout and Date.now; tests pass fakes (vitest's fake timers
 * work with the default too).
 */
export interface Timers {
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
  now(): number;
}

/** systemTimers is the default Timers: the global timer functions and Date.now. */
export const systemTimers: Timers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
  now: () => Date.now(),
};

/**
 * sleep resolves after ms on timers, or rejects with the signal's reason
 * when signal aborts first; it clears its timer either way.
 */
export function sleep(ms: number, signal: AbortSignal | undefined, timers: Timers = systemTimers): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = (): void => {
      timers.clearTimeout(handle);
      reject(signal!.reason);
    };
    const handle = timers.setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** within waits for p, but no longer than ms; it reports whether p settled in time and clears its timer. */
export async function within(p: Promise<unknown>, ms: number, timers: Timers = systemTimers): Promise<boolean> {
  let handle: TimerHandle | undefined;
  const late = new Promise<boolean>((resolve) => (handle = timers.setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([p.then(() => true, () => true), late]);
  } finally {
    timers.clearTimeout(handle);
  }
}
