import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { FAILURE_CODES, outcomeOf, type OutcomeOptions } from "./call-outcome.js";
import type { OutcomeTarget, Watcher } from "./watcher.js";

/**
 * connectOutcomeInterceptor is a connect-es interceptor for a transport
 * bound to ONE instance (its host:port as baseUrl): every call's outcome is
 * reported to watcher.report(target, ...), so that the watcher's pick
 * stops choosing the instance when it fails (docs/client-ejection.md). A
 * unary call is judged by its answer, a stream by how it ends; a call the
 * caller cancelled is not reported.
 *
 *   const inst = watcher.pick()!;
 *   const transport = createGrpcTransport({ baseUrl: `http://${inst.host}:${inst.port}`,
 *     interceptors: [connectOutcomeInterceptor(watcher, inst)] });
 */
export function connectOutcomeInterceptor(watcher: Pick<Watcher, "report">, target: OutcomeTarget, opts: OutcomeOptions = {}): Interceptor {
  const failures = opts.failureCodes !== undefined ? new Set(opts.failureCodes) : FAILURE_CODES;
  const settle = (err: unknown): void => {
    const outcome = outcomeOf(err === undefined ? 0 : ConnectError.from(err).code, failures);
    if (outcome !== undefined) watcher.report({ service: target.service, instanceId: target.instanceId }, outcome);
  };
  return (next) => async (req) => {
    let res;
    try {
      res = await next(req);
    } catch (err) {
      settle(err);
      throw err;
    }
    if (!res.stream) {
      settle(undefined);
      return res;
    }
    const messages = res.message;
    return {
      ...res,
      message: (async function* observe() {
        let err: unknown;
        let done = false;
        try {
          yield* messages;
          done = true;
        } catch (e) {
          err = e;
          throw e;
        } finally {
          // a consumer that stopped reading early cancelled the call
          settle(done ? undefined : (err ?? new ConnectError("stream abandoned", Code.Canceled)));
        }
      })(),
    };
  };
}
