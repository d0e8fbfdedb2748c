import type { ConnectRouter, HandlerContext } from "@connectrpc/connect";
import { RegistryService } from "@maxine/sdk/gen/maxine/registry/v1/registry_pb";
import type { Registry } from "../registry/registry.js";
import type { Limits } from "../registry/validate.js";
import type { WatchHub } from "../watch/hub.js";
import { answerDeregister, answerDiscover, answerListServices, answerRegister } from "./answers.js";
import { answerBeats } from "./beats.js";
import { connectionKey, type Connection } from "./connections.js";
import { watchItemToPb } from "./convert.js";
import { openWatch } from "./open-watch.js";

/** ServiceDeps are the parts the RPC handlers call. */
export interface ServiceDeps {
  readonly registry: Registry;
  readonly hub: WatchHub;
  readonly limits: Limits;
}

/**
 * registryRoutes mounts RegistryService on connect-es, which serves every
 * protocol and is what the fast paths (grpc-fast-path.ts) fall back to. The
 * unary handlers are the shared answer functions (answers.ts); the streams
 * open their core objects and release them however the call ends;
 * errorInterceptor maps every error.
 */
export function registryRoutes({ registry, hub, limits }: ServiceDeps): (router: ConnectRouter) => void {
  return (router) =>
    router.service(RegistryService, {
      register: (req) => answerRegister(registry, req),
      deregister: (req) => answerDeregister(registry, req),
      discover: async (req) => answerDiscover(registry, req),
      listServices: async (req) => answerListServices(registry, req),

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

