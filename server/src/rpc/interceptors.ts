import { Code, ConnectError } from "@connectrpc/connect";
import { RegistryError } from "../domain/errors.js";
import type { Logger } from "../domain/logger.js";
import type { CallContext, Interceptor } from "./context.js";
import { toConnectError } from "./errors.js";

/**
 * deadlineInterceptor enforces the client's deadline (grpc-timeout,
 * connect-timeout-ms) on every call: when it passes, the call's signal
 * ends it with DEADLINE_EXCEEDED, and a unary call still waiting (on the
 * store) is answered at once. A malformed timeout is INVALID_ARGUMENT, as
 * connect-es answers it.
 */
export function deadlineInterceptor(): Interceptor {
  return {
    onStart(ctx) {
      if (ctx.timeoutError !== undefined) throw ctx.timeoutError;
      const ms = ctx.timeoutMs;
      if (ms === undefined) return;
      ctx.deadline = setTimeout(expire, ms, ctx);
    },
    onEnd(ctx, err) {
      if (ctx.deadline !== undefined) clearTimeout(ctx.deadline);
      return err;
    },
  };
}

function expire(ctx: CallContext): void {
  ctx.deadline = undefined;
  ctx.signal.abort(new ConnectError("the operation timed out", Code.DeadlineExceeded));
}

/**
 * errorInterceptor maps every error a call ends with to one RPC error:
 * the core's reasons by the table in errors.ts, anything unexpected to a
 * retryable UNAVAILABLE whose cause is logged at error level (a fault of the
 * server), never sent. Client-caused endings (cancel, deadline, bad input)
 * are not errors of the server and are not logged here.
 */
export function errorInterceptor(log: Logger): Interceptor {
  return {
    onEnd(ctx, err) {
      if (err === undefined) return undefined;
      if (!(err instanceof RegistryError) && !(err instanceof ConnectError)) {
        log.error({ err, procedure: ctx.method.path, protocol: ctx.protocol }, "unexpected error");
      }
      return toConnectError(err);
    },
  };
}

/** codeOf is the RPC code a call ended with: 0 (ok) when it did not throw. */
export function codeOf(err: unknown): Code | 0 {
  return err === undefined ? 0 : toConnectError(err).code;
}

/** CODE_NAMES are the canonical gRPC names of codes, for logs and metric labels. */
export const CODE_NAMES: readonly string[] = [
  "ok",
  "canceled",
  "unknown",
  "invalid_argument",
  "deadline_exceeded",
  "not_found",
  "already_exists",
  "permission_denied",
  "resource_exhausted",
  "failed_precondition",
  "aborted",
  "out_of_range",
  "unimplemented",
  "internal",
  "unavailable",
  "data_loss",
  "unauthenticated",
];

/**
 * accessLogInterceptor logs every call at debug level when it ends: method,
 * protocol, peer, principal, code and duration. Nothing is formatted unless
 * debug is on.
 */
export function accessLogInterceptor(log: Logger, enabled: () => boolean): Interceptor {
  return {
    onEnd(ctx, err) {
      if (!enabled()) return err;
      const ce = err === undefined ? undefined : toConnectError(err);
      log.debug(
        {
          procedure: ctx.method.path,
          protocol: ctx.protocol,
          peer: ctx.peer,
          principal: ctx.principal.name,
          code: CODE_NAMES[ce?.code ?? 0],
          ...(ce !== undefined ? { message: ce.rawMessage } : {}),
          ms: Math.round((performance.now() - ctx.startedAt) * 1000) / 1000,
        },
        "call",
      );
      return err;
    },
  };
}
