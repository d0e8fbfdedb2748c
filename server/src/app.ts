import { setMaxListeners } from "node:events";
import { Code, ConnectError } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { Config } from "./config.js";
import { systemClock, type Clock } from "./registry/clock.js";
import type { Logger } from "./registry/logger.js";
import { Registry } from "./registry/registry.js";
import { MemoryStore } from "./store/memory-store.js";
import type { Store } from "./store/store.js";
import { Connections, connectionValues } from "./transport/connections.js";
import { withGrpcFastPath } from "./transport/grpc-fast-path.js";
import { errorInterceptor } from "./transport/interceptors.js";
import { Listener } from "./transport/listener.js";
import { registryRoutes } from "./transport/service.js";
import { WatchHub } from "./watch/hub.js";

/** Maxine is a running server. */
export interface Maxine {
  readonly port: number;
  readonly registry: Registry;
  readonly hub: WatchHub;
  /** close drains: streams end with UNAVAILABLE so clients reconnect elsewhere, then connections close. */
  close(): Promise<void>;
}

/** StartOptions override the parts main would build. */
export interface StartOptions {
  readonly logger: Logger;
  readonly clock?: Clock;
  readonly store?: Store;
}

/** startMaxine builds the parts from config, wires them, and listens. */
export async function startMaxine(config: Config, opts: StartOptions): Promise<Maxine> {
  const clock = opts.clock ?? systemClock;
  const log = opts.logger;
  const store = opts.store ?? new MemoryStore();
  const limits = {
    maxTags: config.maxTags,
    maxTagLength: config.maxTagLength,
    maxMetadataEntries: config.maxMetadataEntries,
    maxMetadataBytes: config.maxMetadataBytes,
    maxInstancesPerService: config.maxInstancesPerService,
    maxWatchServices: config.maxWatchServices,
  };
  const registry = new Registry({
    store,
    clock,
    logger: log,
    limits,
    lease: {
      defaultTtlMs: config.leaseTtlDefaultMs,
      minTtlMs: config.leaseTtlMinMs,
      maxTtlMs: config.leaseTtlMaxMs,
      graceMs: config.graceMs,
      maxHeartbeatStreams: config.maxHeartbeatStreams,
    },
  });
  const hub = new WatchHub(store, clock, log, {
    historySize: config.watchHistory,
    maxQueue: config.watchQueue,
    overflow: config.watchOverflow,
    maxWatchers: config.maxWatchers,
    snapshotChunk: config.watchSnapshotChunk,
    progressIntervalMs: config.watchProgressIntervalMs,
  });
  const shutdown = new AbortController();
  // connect-node links every call's signal to this one: one listener per
  // open call, so thousands of watch streams are expected, not a leak.
  setMaxListeners(0, shutdown.signal);
  const connections = new Connections({
    maxWatchersPerConnection: config.maxWatchersPerConnection,
    maxHeartbeatsPerConnection: config.maxHeartbeatsPerConnection,
  });
  const handler = connectNodeAdapter({
    routes: registryRoutes({ registry, hub, limits }),
    interceptors: [errorInterceptor(log)],
    readMaxBytes: config.maxMessageBytes,
    writeMaxBytes: config.maxMessageBytes,
    shutdownSignal: shutdown.signal,
    contextValues: connectionValues(connections),
    fallback(req, res) {
      if (req.method === "GET" && (req.url === "/healthz" || req.url === "/readyz")) {
        res.writeHead(shutdown.signal.aborted ? 503 : 200, { "content-type": "application/json" });
        res.end(JSON.stringify({ status: shutdown.signal.aborted ? "draining" : "serving", revision: store.revision(), registryId: store.registryId }));
        return;
      }
      res.writeHead(404, { "content-type": "text/plain" });
      res.end("not found: Maxine serves maxine.registry.v1.RegistryService (see README)\n");
    },
  });
  const fastPath = { registry, hub, limits, connections, maxMessageBytes: config.maxMessageBytes, log, shutdown: shutdown.signal };
  const listener = new Listener(withGrpcFastPath(handler, fastPath), {
    maxStreamsPerConnection: config.maxStreamsPerConnection,
    maxHeaderBytes: config.maxHeaderBytes,
  });
  const port = await listener.listen(config.port, config.host);
  let closing: Promise<void> | undefined;
  return {
    port,
    registry,
    hub,
    close() {
      closing ??= (async () => {
        registry.close();
        shutdown.abort(new ConnectError("server: shutting down, reconnect", Code.Unavailable));
        hub.close();
        await listener.close(config.shutdownGraceMs);
        await store.close();
      })();
      return closing;
    },
  };
}
