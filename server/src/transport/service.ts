import type { ConnectRouter, HandlerContext } from "@connectrpc/connect";
import { durationFromMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { RegistryService } from "@maxine/sdk/gen/maxine/registry/v1/registry_pb";
import { invalid } from "../registry/errors.js";
import type { Registry } from "../registry/registry.js";
import type { Limits } from "../registry/validate.js";
import type { WatchHub } from "../watch/hub.js";
import { answerBeats } from "./beats.js";
import { connectionKey, type Connection } from "./connections.js";
import { answerDiscover } from "./discover.js";
import {
  instanceInputOf,
  instanceToPb,
  keyOfPb,
  knownStatus,
  ttlOf,
  watchItemToPb,
} from "./convert.js";
import { openWatch } from "./open-watch.js";

/** ServiceDeps are the parts the RPC handlers call. */
export interface ServiceDeps {
  readonly registry: Registry;
  readonly hub: WatchHub;
  readonly limits: Limits;
}

/**
 * registryRoutes mounts RegistryService. Each handler validates what only
 * the wire can get wrong (unknown enum values), calls the core, and converts;
 * errorInterceptor maps every error.
 */
export function registryRoutes({ registry, hub, limits }: ServiceDeps): (router: ConnectRouter) => void {
  return (router) =>
    router.service(RegistryService, {
      async register(req) {
        if (req.instance !== undefined && !knownStatus(req.instance.status)) {
          throw invalid("instance.status", `unknown value ${req.instance.status}`);
        }
        const r = await registry.register(instanceInputOf(req.instance), ttlOf(req.leaseTtl));
        return {
          instance: instanceToPb(r.instance),
          leaseTtl: durationFromMs(r.ttlMs),
          leaseExpiresAt: timestampFromMs(r.expiresAt),
          revision: BigInt(r.revision),
          registryId: registry.store.registryId,
        };
      },

      async deregister(req) {
        const revision = await registry.deregister(keyOfPb(req.key));
        return { revision: BigInt(revision), registryId: registry.store.registryId };
      },

      async discover(req) {
        return answerDiscover(registry, req);
      },

      async listServices(req) {
        const services = registry.listServices(req.namespace);
        return { services, revision: BigInt(registry.store.revision()), registryId: registry.store.registryId };
      },

      async *heartbeat(requests, ctx) {
        const conn = connectionOf(ctx);
        conn.acquire("heartbeats");
        let stream;
        try {
          stream = registry.openStream();
        } catch (err) {
          conn.release("heartbeats");
          throw err;
        }
        try {
          for await (const req of untilAborted(requests, ctx.signal)) yield await answerBeats(registry, stream, req);
        } finally {
          registry.closeStream(stream);
          conn.release("heartbeats");
        }
      },

      async *watchServices(req, ctx) {
        const w = openWatch(hub, limits, req, connectionOf(ctx));
        const onAbort = (): void => w.end();
        ctx.signal.addEventListener("abort", onAbort, { once: true });
        try {
          for await (const item of w) yield watchItemToPb(item);
          if (ctx.signal.aborted) throw ctx.signal.reason;
        } finally {
          ctx.signal.removeEventListener("abort", onAbort);
          w.end();
        }
      },
    });
}

function connectionOf(ctx: HandlerContext): Connection {
  const conn = ctx.values.get(connectionKey);
  if (conn === undefined) throw new Error("connection context missing: mount routes with connectionValues");
  return conn;
}

/**
 * untilAborted iterates a request stream until it ends or signal aborts
 * (client cancel, server shutdown); on abort it throws the signal's reason.
 */
async function* untilAborted<T>(source: AsyncIterable<T>, signal: AbortSignal): AsyncGenerator<T> {
  const it = source[Symbol.asyncIterator]();
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(signal.reason);
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
  });
  aborted.catch(() => {});
  try {
    for (;;) {
      const r = await Promise.race([it.next(), aborted]);
      if (r.done) return;
      yield r.value;
    }
  } finally {
    if (onAbort !== undefined) signal.removeEventListener("abort", onAbort);
    void it.return?.();
  }
}

