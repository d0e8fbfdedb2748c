import type { Interceptor, StreamResponse } from "@connectrpc/connect";
import { RegistryError } from "../domain/errors.js";
import type { Logger } from "../domain/logger.js";
import { toConnectError } from "./errors.js";

/**
 * errorInterceptor maps core errors to RPC errors for unary calls and for
 * errors raised while a response stream is running, so handlers stay free of
 * try/catch. Unexpected errors are logged with their stack, which never
 * reaches the client.
 */
export function errorInterceptor(log: Logger): Interceptor {
  const map = (err: unknown, procedure: string): never => {
    if (!(err instanceof RegistryError) && !(err instanceof Error && err.name === "ConnectError")) {
      log.error({ err, procedure }, "unexpected error");
    }
    throw toConnectError(err);
  };
  return (next) => async (req) => {
    try {
      const res = await next(req);
      if (!res.stream) return res;
      const messages = res.message;
      async function* mapped() {
        try {
          yield* messages;
        } catch (err) {
          map(err, req.method.name);
        }
      }
      return { ...res, message: mapped() } as StreamResponse<typeof res.method.input, typeof res.method.output>;
    } catch (err) {
      return map(err, req.method.name);
    }
  };
}
