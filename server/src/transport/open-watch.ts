import type { WatchServicesRequest } from "@maxine/sdk/gen/maxine/registry/v1/registry_pb";
import { invalid } from "../domain/errors.js";
import { filterOf, namespaceOf, serviceOf, type Limits } from "../registry/validate.js";
import type { WatchHub } from "../watch/hub.js";
import type { Watcher } from "../watch/watcher.js";
import type { Connection } from "./connections.js";
import { filterOfPb } from "./convert.js";

/**
 * openWatch validates a WatchServices request, takes one of the connection's
 * watcher slots and opens a hub watcher; the slot is released when the
 * watcher ends, however it ends. Both ways a watch is served (connect-es
 * for every protocol, and the gRPC fast path of grpc-watch.ts) call it, so
 * they accept and refuse exactly the same requests.
 */
export function openWatch(hub: WatchHub, limits: Limits, req: WatchServicesRequest, conn: Connection): Watcher {
  const namespace = namespaceOf("namespace", req.namespace);
  const services = [...new Set(req.services)];
  if (services.length > limits.maxWatchServices) {
    throw invalid("services", `must name at most ${limits.maxWatchServices} services, got ${services.length}`);
  }
  services.forEach((s, i) => serviceOf(`services[${i}]`, s));
  const filter = filterOf("filter", filterOfPb(req.filter), limits);
  conn.acquire("watchers");
  let watcher: Watcher;
  try {
    watcher = hub.watch({
      namespace,
      services,
      filter,
      resumeRevision: Number(req.resumeRevision),
      registryId: req.registryId,
    });
  } catch (err) {
    conn.release("watchers");
    throw err;
  }
  watcher.onEnd(() => conn.release("watchers"));
  return watcher;
}
