import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  Health,
  HealthCheckResponse_ServingStatus as Status,
  HealthCheckResponseSchema,
  HealthListResponseSchema,
  type HealthCheckRequest,
} from "@maxine/sdk/gen/grpc/health/v1/health_pb";
import { RegistryService } from "@maxine/sdk/gen/maxine/registry/v1/registry_pb";
import { outgoing } from "./context.js";
import { methodInfo, type Service } from "./service.js";
import type { ServerStatus, ServingState } from "./serving-state.js";

/**
 * healthStatuses is what grpc.health.v1 answers for each name it knows:
 * "" (the server: alive and answering, reads included) is NOT_SERVING only
 * while draining; the registry service is also NOT_SERVING while the shared
 * store is unreachable (its writes fail), so a readiness probe on that name
 * takes a replica that lost Redis out of rotation while a liveness probe on
 * "" leaves it running.
 */
export const healthStatuses: Readonly<Record<string, (s: ServerStatus) => Status>> = {
  "": (s) => (s === "draining" ? Status.NOT_SERVING : Status.SERVING),
  [RegistryService.typeName]: (s) => (s === "serving" ? Status.SERVING : Status.NOT_SERVING),
};

/**
 * healthService is grpc.health.v1.Health (Check, List, Watch) as a table of
 * handlers, mounted on the pipeline like the registry, so every protocol
 * serves it on the same port through the same interceptors. It reads the
 * status from ServingState, the same source as /healthz. An unknown service
 * name is NOT_FOUND on Check and SERVICE_UNKNOWN on Watch, as the health
 * protocol asks; Watch sends the status at once, then each change, and ends
 * with UNAVAILABLE on shutdown after sending NOT_SERVING.
 */
export function healthService(state: ServingState): Service {
  const info = (name: string) => methodInfo(Health, name);
  const statusOf = (service: string): Status => healthStatuses[service]?.(state.status) ?? Status.SERVICE_UNKNOWN;
  return {
    desc: Health,
    methods: [
      {
        kind: "unary",
        info: info("Check"),
        handle(_ctx, m) {
          const service = (m as HealthCheckRequest).service;
          const status = statusOf(service);
          if (status === Status.SERVICE_UNKNOWN) {
            throw new ConnectError(`service: unknown service ${JSON.stringify(service)} (known: "", ${RegistryService.typeName})`, Code.NotFound);
          }
          return outgoing(create(HealthCheckResponseSchema, { status }));
        },
      },
      {
        kind: "unary",
        info: info("List"),
        handle() {
          const statuses = Object.fromEntries(Object.keys(healthStatuses).map((name) => [name, create(HealthCheckResponseSchema, { status: statusOf(name) })]));
          return outgoing(create(HealthListResponseSchema, { statuses }));
        },
      },
      {
        kind: "server_streaming",
        info: info("Watch"),
        run(ctx, m, out) {
          const service = (m as HealthCheckRequest).service;
          return new Promise<void>((_resolve, reject) => {
            let sent: Status | undefined;
            let blocked = false;
            // Only the latest status is sent: a client that does not read
            // gets it when it reads again, never a backlog of transitions.
            const send = (): void => {
              const status = statusOf(service);
              if (status === sent || blocked) return;
              sent = status;
              out.push(outgoing(create(HealthCheckResponseSchema, { status })));
              if (!out.flush()) {
                blocked = true;
                out.whenWritable(() => {
                  blocked = false;
                  send();
                });
              }
            };
            send();
            if (state.status === "draining") {
              // opened while the server drains: nothing will change any more, and the drain's end of streams has passed
              reject(new ConnectError("server: shutting down, reconnect", Code.Unavailable));
              return;
            }
            const offChange = state.onChange(send);
            ctx.signal.onAbort((reason) => {
              offChange();
              // a drain ends the stream: NOT_SERVING goes first, so the client knows why
              send();
              reject(reason);
            });
          });
        },
      },
    ],
  };
}
