import { Code, ConnectError } from "@connectrpc/connect";
import { Reason, RegistryError, withoutStack } from "../domain/errors.js";

/**
 * reasonCodes maps every core error reason to one RPC code. Store and
 * shutdown failures are UNAVAILABLE, which clients treat as retryable.
 */
export const reasonCodes: Record<Reason, Code> = {
  [Reason.INVALID_ARGUMENT]: Code.InvalidArgument,
  [Reason.NOT_FOUND]: Code.NotFound,
  [Reason.RESOURCE_EXHAUSTED]: Code.ResourceExhausted,
  [Reason.UNAVAILABLE]: Code.Unavailable,
  [Reason.SHUTTING_DOWN]: Code.Unavailable,
  [Reason.WATCH_OVERFLOW]: Code.ResourceExhausted,
  [Reason.PERMISSION_DENIED]: Code.PermissionDenied,
  [Reason.UNAUTHENTICATED]: Code.Unauthenticated,
  [Reason.FAILED_PRECONDITION]: Code.FailedPrecondition,
};

/**
 * toConnectError maps any error thrown by the core. Errors that are not
 * RegistryErrors are bugs or store failures: they become UNAVAILABLE with a
 * retryable message, never a stack trace on the wire.
 */
export function toConnectError(err: unknown): ConnectError {
  if (err instanceof ConnectError) return err;
  if (err instanceof RegistryError) return withoutStack(() => new ConnectError(err.message, reasonCodes[err.reason]));
  return new ConnectError("registry temporarily unavailable, retry", Code.Unavailable, undefined, undefined, err);
}
