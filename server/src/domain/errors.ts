/**
 * Reason classifies every error the registry raises. transport/errors.ts maps
 * each reason to one RPC code; a test proves the table covers them all.
 */
export const Reason = {
  INVALID_ARGUMENT: "INVALID_ARGUMENT",
  NOT_FOUND: "NOT_FOUND",
  RESOURCE_EXHAUSTED: "RESOURCE_EXHAUSTED",
  UNAVAILABLE: "UNAVAILABLE",
  SHUTTING_DOWN: "SHUTTING_DOWN",
  WATCH_OVERFLOW: "WATCH_OVERFLOW",
  PERMISSION_DENIED: "PERMISSION_DENIED",
  UNAUTHENTICATED: "UNAUTHENTICATED",
  /** FAILED_PRECONDITION: a compare-and-set whose expected version does not hold (service configuration). */
  FAILED_PRECONDITION: "FAILED_PRECONDITION",
} as const;

/** Reason is one of the values of the Reason table. */
export type Reason = (typeof Reason)[keyof typeof Reason];

/**
 * RegistryError is the one error type the core throws. Its message names the
 * field and the rule (`instance.port: must be 1..65535, got 0`); callers map
 * the reason, never the message.
 *
 * It is an answer, not a fault: it carries no stack trace. Capturing one
 * cost more than the rest of a refused call (a Discover of a service with
 * no instances, a hostile client's bad requests), and nothing reads it.
 */
export class RegistryError extends Error {
  override readonly name = "RegistryError";
  readonly reason: Reason;

  constructor(reason: Reason, message: string) {
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(message);
    Error.stackTraceLimit = limit;
    this.reason = reason;
  }
}

/** withoutStack runs make (an error's constructor) without capturing a stack trace: for errors that are answers, not faults. */
export function withoutStack<E extends Error>(make: () => E): E {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return make();
  } finally {
    Error.stackTraceLimit = limit;
  }
}

/** invalid builds the INVALID_ARGUMENT error for a field that breaks a rule. */
export function invalid(field: string, rule: string): RegistryError {
  return new RegistryError(Reason.INVALID_ARGUMENT, `${field}: ${rule}`);
}
