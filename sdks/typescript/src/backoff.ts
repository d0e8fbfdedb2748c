// Jittered exponential backoff, shared by the session (heartbeat stream) and
// the watcher (watch stream) so that both reconnect the same way.

import type { Random } from "./balancer.js";

/** BackoffOptions configure reconnect delays; every field has a default. */
export interface BackoffOptions {
  /** baseMs caps the first retry's delay (default 100 ms); each later cap doubles. */
  readonly baseMs?: number;
  /** maxMs is the largest cap, reached after a few failures (default 5000 ms). */
  readonly maxMs?: number;
  /** random draws the jitter (default Math.random). */
  readonly random?: Random;
}

/** DEFAULT_BACKOFF holds the defaults of BackoffOptions. */
export const DEFAULT_BACKOFF = { baseMs: 100, maxMs: 5000 } as const;

/**
 * backoffDelay is "full jitter" backoff: a delay drawn uniformly from
 * [0, min(maxMs, baseMs * 2^attempt)). Full jitter spreads the reconnects of
 * many clients that lost the same server, instead of having them return in
 * waves. attempt counts from 0.
 */
export function backoffDelay(attempt: number, baseMs: number, maxMs: number, random: Random = Math.random): number {
  const cap = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 52));
  return Math.floor(random() * cap);
}

/**
 * beatDelay is the wait before a session's next beat: interval within
 * ±10 %, drawn anew each time, so that sessions started together (a fleet
 * deploy, a reconnect storm) drift apart instead of beating in step.
 */
export function beatDelay(intervalMs: number, random: Random = Math.random): number {
  return intervalMs * (0.9 + 0.2 * random());
}

/**
 * Backoff counts consecutive failures and hands out the next delay. Call
 * reset once a connection proved healthy (it delivered a message), so that
 * the next failure starts again from baseMs.
 */
export class Backoff {
  private readonly baseMs: number;
  private readonly maxMs: number;
  private readonly random: Random;
  private failures = 0;

  constructor(opts: BackoffOptions = {}) {
    this.baseMs = opts.baseMs ?? DEFAULT_BACKOFF.baseMs;
    this.maxMs = opts.maxMs ?? DEFAULT_BACKOFF.maxMs;
    this.random = opts.random ?? Math.random;
    if (!(this.baseMs > 0) || !(this.maxMs >= this.baseMs)) {
      throw new RangeError(`backoff: need 0 < baseMs <= maxMs, got baseMs ${this.baseMs}, maxMs ${this.maxMs}`);
    }
  }

  /** attempts counts the failures since the last reset. */
  get attempts(): number {
    return this.failures;
  }

  /** next records a failure and returns how long to wait before retrying. */
  next(): number {
    return backoffDelay(this.failures++, this.baseMs, this.maxMs, this.random);
  }

  /** reset forgets past failures. */
  reset(): void {
    this.failures = 0;
  }
}
