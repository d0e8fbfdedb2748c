// The grpc-js integration, a separate entry point (@maxine/sdk/grpc-js) so
// that only programs using @grpc/grpc-js (an optional peer dependency) load it.
import { InterceptingCall, type Interceptor } from "@grpc/grpc-js";
import { FAILURE_CODES, outcomeOf, type OutcomeOptions } from "./call-outcome.js";
import type { OutcomeTarget, Watcher } from "./watcher.js";

export { FAILURE_CODES, outcomeOf, type OutcomeOptions } from "./call-outcome.js";

/**
 * grpcJsOutcomeInterceptor is a @grpc/grpc-js client interceptor for a
 * client of ONE instance (its host:port as the target): each call's final
 * status is reported to watcher.report(target, ...), so that the watcher's
 * pick stops choosing the instance when it fails (docs/client-ejection.md).
 * A call the caller cancelled is not reported.
 *
 *   const inst = watcher.pick()!;
 *   const client = new Client(`${inst.host}:${inst.port}`, credentials.createInsecure(),
 *     { interceptors: [grpcJsOutcomeInterceptor(watcher, inst)] });
 */
export function grpcJsOutcomeInterceptor(watcher: Pick<Watcher, "report">, target: OutcomeTarget, opts: OutcomeOptions = {}): Interceptor {
  const failures = opts.failureCodes !== undefined ? new Set(opts.failureCodes) : FAILURE_CODES;
  const key = { service: target.service, instanceId: target.instanceId };
  return (options, nextCall) =>
    new InterceptingCall(nextCall(options), {
      start(metadata, listener, next) {
        next(metadata, {
          onReceiveStatus(status, pass) {
            const outcome = outcomeOf(status.code, failures);
            if (outcome !== undefined) watcher.report(key, outcome);
            pass(status);
          },
        });
      },
    });
}
