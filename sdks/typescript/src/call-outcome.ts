// What a finished call says about the instance that served it, shared by
// the interceptors that report outcomes to a Watcher.

/**
 * FAILURE_CODES are the gRPC status codes (numbers, the same in Connect's
 * Code and grpc-js's status) that count as a failure of the instance: it
 * could not serve (UNAVAILABLE: refused, reset, shutting down; DEADLINE_EXCEEDED;
 * INTERNAL; UNKNOWN). Any other answer, an application error included,
 * shows the instance serving and counts as a success. The Go and Python
 * SDKs use the same set.
 */
export const FAILURE_CODES: ReadonlySet<number> = new Set([14, 4, 13, 2]);

/** CANCELED is the status code of a call the caller abandoned: it says nothing about the instance. */
const CANCELED = 1;

/** OutcomeOptions tune which status codes an interceptor reports as failures. */
export interface OutcomeOptions {
  /** failureCodes replaces FAILURE_CODES. */
  readonly failureCodes?: Iterable<number>;
}

/**
 * outcomeOf classifies a finished call by its status code (0 for OK): true
 * (the instance served), false (it failed), or undefined for a call the
 * caller cancelled, which is not reported.
 */
export function outcomeOf(code: number, failureCodes: ReadonlySet<number> = FAILURE_CODES): boolean | undefined {
  if (code === CANCELED) return undefined;
  return !failureCodes.has(code);
}
