import { setMaxListeners } from "node:events";
import { fileURLToPath } from "node:url";
import { Code, ConnectError } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { ConfigError, type Config } from "./config.js";
import { checkExposure, isLoopbackHost } from "./exposure.js";
import { systemClock, type Clock } from "./domain/clock.js";
import type { Logger } from "./domain/logger.js";
import { Registry } from "./registry/registry.js";
import type { Interceptor } from "./rpc/context.js";
import { accessLogInterceptor, deadlineInterceptor, errorInterceptor } from "./rpc/interceptors.js";
import { authenticationInterceptor } from "./rpc/authentication.js";
import { AuthState, authOptionsOf } from "./auth/auth-state.js";
import { OpenWatches } from "./rpc/watch-call.js";
import { WatchBudget } from "./rpc/watch-budget.js";
import { Pipeline } from "./rpc/pipeline.js";
import { healthService } from "./rpc/health-service.js";
import { reflectionServices } from "./rpc/reflection-service.js";
import { registryService } from "./rpc/registry-service.js";
import { configService } from "./rpc/config-service.js";
import { xdsService } from "./rpc/xds-service.js";
import { XdsStats } from "./rpc/ads-call.js";
import { XdsCache } from "./xds/cache.js";
import { XdsConfigPolicies } from "./xds/config-policies.js";
import { ServiceConfig } from "./registry/service-config.js";
import type { ConfigStore } from "./store/config-store.js";
import { LevelConfigStore } from "./store/level-config-store.js";
import { MemoryConfigStore } from "./store/memory-config-store.js";
import { RedisConfigStore } from "./store/redis-config-store.js";
import { ServingState } from "./rpc/serving-state.js";
import type { Service } from "./rpc/service.js";
import { FlushScheduler } from "./rpc/stream-output.js";
import { MemoryStore } from "./store/memory-store.js";
import { PrimaryConfigStore } from "./cluster/primary-config-store.js";
import { PrimaryStore, type PrimaryLink } from "./cluster/primary-store.js";
import { RedisStore } from "./store/redis-store.js";
import type { Store } from "./store/store.js";
import { connectRoutes, peerValues } from "./transport/connect-routes.js";
import { Connections } from "./rpc/connections.js";
import { recordDigest } from "./wire/digest.js";
import { encodeStoredRecords, instanceBytes } from "./wire/encoded.js";
import { HttpGuard } from "./transport/http-guard.js";
import { Listener, type ListenerTls } from "./transport/listener.js";
import { CertificateReloader, loadCertificate } from "./transport/tls-certificates.js";
import { Metrics } from "./transport/metrics.js";
import { RequestCache } from "./transport/request-cache.js";
import { StaticFiles } from "./transport/static-files.js";
import { createRouter } from "./transport/router.js";
import { unreadBodyLimit } from "./transport/unread-body.js";
import { Shutdown } from "./transport/shutdown.js";
import { WatchHub } from "./watch/hub.js";
import { Checker } from "./checks/checker.js";
import { ProbeWorker } from "./checks/probe-runner.js";
import { TargetPolicy } from "./checks/targets.js";
import { ownership } from "./checks/ownership.js";

/** Maxine is a running server. */
export interface Maxine {
  readonly port: number;
  readonly registry: Registry;
  readonly hub: WatchHub;
  /** auth holds the credentials and the policy; reloadAuth re-reads their files (SIGHUP). */
  readonly auth: AuthState;
  /** reloadAuth re-reads the tokens, policy and JWT key files; on a change, open watches end so that they reconnect under the new policy. */
  reloadAuth(): Promise<boolean>;
  /** tls reports whether the port speaks TLS (MAXINE_TLS_CERT). */
  readonly tls: boolean;
  /**
   * reloadCertificates reads the TLS files again (main calls it on SIGHUP;
   * file changes trigger it too): new connections get the new certificate,
   * open ones keep theirs. A file set that does not load keeps the old
   * certificate and logs why; the result says whether it loaded.
   */
  reloadCertificates(): boolean;
  /** close drains: streams end with UNAVAILABLE so clients reconnect elsewhere, then connections close. */
  close(): Promise<void>;
}

/** StartOptions override the parts main would build. */
export interface StartOptions {
  readonly logger: Logger;
  readonly clock?: Clock;
  readonly store?: Store;
  /** interceptors run inside the server's own (after authentication), around every call: for tests and embedding. */
  readonly interceptors?: readonly Interceptor[];
  /** services are mounted beside the registry on the same pipeline (tests). */
  readonly services?: readonly Service[];
  /** debugEnabled reports whether debug logs are written (access logs are built only then); pino's isLevelEnabled. */
  readonly debugEnabled?: () => boolean;
  /** logDropped counts log lines the log destination dropped (MAXINE_LOG_BUFFER full), for maxine_log_dropped_lines_total. */
  readonly logDropped?: () => number;
  /** uiDir is where the built dashboard is read from (MAXINE_UI); default: ui/dist of this checkout. */
  readonly uiDir?: string;
  /** worker is set in a worker process of MAXINE_WORKERS > 1 (cluster/): /healthz names the worker, and /metrics answers for the whole server. */
  readonly worker?: WorkerRole;
}

/** WorkerRole is what a worker process adds: its cluster id, and how a scrape reaches every worker's metrics (cluster/worker-link.ts). */
export interface WorkerRole {
  readonly id: number;
  /** link reaches the registry and the configuration store the primary holds (MAXINE_STORE=memory). */
  readonly link: PrimaryLink;
  /** metricsOf is given this worker's metrics registry and returns what renders a scrape of /metrics. */
  metricsOf(local: Metrics["registry"]): () => Promise<{ contentType: string; body: string }>;
}

/** DASHBOARD_DIR is where npm run build writes the dashboard: ui/dist beside server/ (this file runs from server/src or server/dist). */
const DASHBOARD_DIR = fileURLToPath(new URL("../../ui/dist/", import.meta.url));

/** startMaxine builds the parts from config, wires them, and listens. */
export async function startMaxine(config: Config, opts: StartOptions): Promise<Maxine> {
  const clock = opts.clock ?? systemClock;
  const log = opts.logger;
  // Authentication is on when a tokens file or JWT keys are configured (AuthState.enabled); checked before anything binds.
  const authOptions = authOptionsOf(config);
  const authenticationConfigured = authOptions.tokensFile !== undefined || authOptions.jwt !== undefined;
  checkExposure(config, authenticationConfigured);
  const tlsFiles = { cert: config.tlsCert, key: config.tlsKey, ca: config.tlsCa };
  let tls: ListenerTls | undefined;
  if (config.tlsCert !== "") {
    try {
      tls = { context: loadCertificate(tlsFiles).options, clientAuth: config.tlsClientAuth };
    } catch (err) {
      throw new ConfigError((err as Error).message);
    }
  }
  const store: Store = opts.store ?? (await openStore(config, clock, log, opts.worker));
  const limits = {
    maxTags: config.maxTags,
    maxTagLength: config.maxTagLength,
    maxMetadataEntries: config.maxMetadataEntries,
    maxMetadataBytes: config.maxMetadataBytes,
    maxInstancesPerService: config.maxInstancesPerService,
    maxWatchServices: config.maxWatchServices,
    maxWatchHeld: config.maxWatchHeld,
  };
  // Probes never go to this server's own address: the port is known once it listens.
  let listeningPort = config.port;
  const targets = new TargetPolicy({ allow: config.checkAllow, listening: { host: config.host, port: () => listeningPort } });
  const registry = new Registry({
    store,
    clock,
    logger: log,
    limits,
    checkBounds: { intervalMinMs: config.checkIntervalMinMs, intervalMaxMs: config.checkIntervalMaxMs },
    checkTargets: targets,
    audit: config.auditLog,
    quotas: {
      maxInstances: config.maxInstances,
      maxServices: config.maxServices,
      maxNamespaces: config.maxNamespaces,
      maxInstancesPerPrincipal: config.maxInstancesPerPrincipal,
    },
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
    // a snapshot message fits MAXINE_MAX_RESPONSE_BYTES (less the few bytes around its instances)
    snapshotChunkBytes: config.maxResponseBytes - 16,
    sizeOf: (r) => instanceBytes(r).length,
    digestOf: recordDigest,
    progressIntervalMs: config.watchProgressIntervalMs,
  });
  const shutdown = new AbortController();
  // connect-node links every call's signal to this one: one listener per
  // open call, so thousands of watch streams are expected, not a leak.
  setMaxListeners(0, shutdown.signal);
  // Read by /healthz and grpc.health.v1; built before anything else listens on the drain signal.
  const serving = new ServingState(shutdown.signal, store);
  const watchBudget = new WatchBudget(config.watchMemoryBudget, clock, log);
  const metrics = new Metrics(registry, hub, watchBudget);
  const checkMetrics = metrics.checks();
  if (opts.logDropped !== undefined) metrics.logOutput(opts.logDropped);
  const connections = new Connections(
    {
      maxWatchersPerConnection: config.maxWatchersPerConnection,
      maxWatchersPerPrincipal: config.maxWatchersPerPrincipal,
      maxHeartbeatsPerPrincipal: config.maxHeartbeatsPerPrincipal,
      maxHeartbeatsPerConnection: config.maxHeartbeatsPerConnection,
      maxBufferedBytesPerConnection: config.maxBufferedBytesPerConnection,
    },
    config.maxBufferedBytes,
  );
  const auth = await AuthState.load(authOptions, log);
  const openWatches = new OpenWatches();
  auth.onChange(() => {
    log.info({ watches: openWatches.size }, "access policy changed: open watches end and reconnect under it");
    openWatches.endAll(new ConnectError("the access policy changed; reconnect (and resume) to watch under it", Code.Unavailable));
  });
  const serviceConfig = new ServiceConfig({
    open: () =>
      // with workers on the memory store, the primary alone opens the configuration store (one process per MAXINE_DATA_DIR)
      opts.worker !== undefined && config.store === "memory"
        ? PrimaryConfigStore.connect(opts.worker.link, { maxKeysPerService: config.configMaxKeysPerService, historyDepth: config.configHistoryDepth })
        : openConfigStore(config, log),
    clock,
    logger: log,
    audit: config.auditLog,
    limits: {
      maxValueBytes: config.configMaxValueBytes,
      maxKeysPerService: config.configMaxKeysPerService,
      historyDepth: config.configHistoryDepth,
      maxWatchServices: config.maxWatchServices,
    },
    hub: {
      historySize: config.watchHistory,
      maxQueue: config.watchQueue,
      overflow: config.watchOverflow,
      maxWatchers: config.maxWatchers,
      progressIntervalMs: config.watchProgressIntervalMs,
      snapshotChunk: config.watchSnapshotChunk,
      snapshotChunkBytes: config.maxResponseBytes - 1024,
    },
  });
  const flushes = new FlushScheduler();
  // the xDS control plane's views, fed by the registry's change feed (docs/xds.md)
  const xdsCache = new XdsCache({
    store,
    logger: log,
    config: (changed) => new XdsConfigPolicies(async () => (await serviceConfig.ready()).store, log, changed),
  });
  const xdsStats = new XdsStats();
  metrics.xds(xdsCache, xdsStats);
  const served: Service[] = [
    registryService({ registry, hub, limits, flushes, open: openWatches, budget: watchBudget }),
    configService({ config: serviceConfig, flushes, open: openWatches, budget: watchBudget }),
    xdsService({
      cache: xdsCache,
      stats: xdsStats,
      limits: { maxResources: config.xdsMaxResourcesPerStream, names: limits },
      maxStreams: config.xdsMaxStreams,
      flushes,
      log,
      open: openWatches,
    }),
    healthService(serving),
    ...(opts.services ?? []),
  ];
  const services: Service[] = [...served, ...reflectionServices(served.map((s) => s.desc))];
  // One chain around every call of every protocol: errors mapped (outermost,
  // so every other interceptor's refusals are mapped too), metrics and the
  // access log see every call, then the deadline and authentication.
  const pipeline = new Pipeline(services, [
    errorInterceptor(log),
    metrics.interceptor(services.flatMap((s) => s.methods)),
    accessLogInterceptor(log, opts.debugEnabled ?? (() => false)),
    deadlineInterceptor(),
    authenticationInterceptor({
      credentials: auth,
      publicServices: new Set(config.authPublicServices.split(",").map((s) => s.trim()).filter((s) => s !== "")),
      // the verified client certificate's identity (mTLS), read once per connection by both framings
      peerIdentity: (ctx) => ctx.connection.peerIdentity,
    }),
    ...(opts.interceptors ?? []),
  ]);
  const renderMetrics = opts.worker?.metricsOf(metrics.registry) ?? (() => metrics.render());
  const serveMetrics = (res: { writeHead(status: number, headers: Record<string, string>): unknown; end(body: string): unknown }): void => {
    renderMetrics().then(
      ({ contentType, body }) => {
        res.writeHead(200, { "content-type": contentType });
        res.end(body);
      },
      (err: unknown) => {
        log.error({ err }, "metrics: render failed");
        res.writeHead(500, { "content-type": "text/plain" });
        res.end("metrics unavailable\n");
      },
    );
  };
  // The dashboard (ui/, built into ui/dist by npm run build), read once; MAXINE_UI=off serves none.
  const ui = config.ui ? await StaticFiles.load(opts.uiDir ?? DASHBOARD_DIR, "/ui/") : undefined;
  if (ui?.missing !== undefined) log.warn({ dir: opts.uiDir ?? DASHBOARD_DIR }, `${ui.missing}; /ui/ answers 404`);
  const handler = connectNodeAdapter({
    routes: connectRoutes(pipeline, services),
    readMaxBytes: config.maxMessageBytes,
    writeMaxBytes: config.maxResponseBytes,
    shutdownSignal: shutdown.signal,
    contextValues: peerValues(connections),
    fallback(req, res) {
      if (req.method === "GET" && req.url === "/metrics") {
        if (config.authMetrics && auth.enabled) {
          void metricsCaller(auth, req.headers.authorization).then((ok) => {
            if (ok) return serveMetrics(res);
            res.writeHead(401, { "content-type": "text/plain", "www-authenticate": "Bearer" });
            res.end("unauthenticated: /metrics needs `authorization: Bearer <token>` (MAXINE_AUTH_METRICS)\n");
          });
          return;
        }
        serveMetrics(res);
        return;
      }
      if (req.method === "GET" && (req.url === "/healthz" || req.url === "/readyz")) {
        // "degraded": the shared store is unreachable; reads are served, writes fail with UNAVAILABLE.
        const status = serving.status;
        const detail = serving.storeDetail;
        res.writeHead(status === "draining" ? 503 : 200, { "content-type": "application/json" });
        res.end(
          JSON.stringify({
            status,
            revision: store.revision(),
            registryId: store.registryId,
            ...(detail !== undefined ? { store: detail } : {}),
            // for the dashboard's header: what no stream carries
            storeKind: config.store,
            heartbeatStreams: registry.openStreams,
            watchers: hub.watchers,
            // which worker answered (MAXINE_WORKERS > 1); the counts above are that worker's
            ...(opts.worker !== undefined ? { worker: opts.worker.id, pid: process.pid } : {}),
          }),
        );
        return;
      }
      if (ui?.serve(req, res) === true) return;
      res.writeHead(404, { "content-type": "text/plain" });
      res.end("not found: Maxine serves maxine.registry.v1.RegistryService, maxine.config.v1.ConfigService, envoy.service.discovery.v3.AggregatedDiscoveryService (xDS), grpc.health.v1.Health and gRPC reflection (see README)\n");
    },
  });
  const stopEncoding = encodeStoredRecords(store);
  const router = createRouter(
    {
      pipeline,
      connections,
      maxMessageBytes: config.maxMessageBytes,
      maxResponseBytes: config.maxResponseBytes,
      shutdown: new Shutdown(shutdown.signal),
      requests: new RequestCache(),
      log,
    },
    handler,
    config.fastPath,
    new HttpGuard({
      loopbackHostsOnly: isLoopbackHost(config.host) && !authenticationConfigured,
      corsOrigins: config.corsOrigins === "" ? [] : config.corsOrigins.split(","),
      ...(ui !== undefined ? { ownOrigin: tls !== undefined ? ("https" as const) : ("http" as const) } : {}),
    }),
  );
  const listener = new Listener(router.requests, {
    maxStreamsPerConnection: config.maxStreamsPerConnection,
    maxHeaderBytes: config.maxHeaderBytes,
    handshakeTimeoutMs: config.handshakeTimeoutMs,
    headersTimeoutMs: config.headersTimeoutMs,
    idleTimeoutMs: config.idleTimeoutMs,
    maxConnections: config.maxConnections,
    maxConnectionsPerAddress: config.maxConnectionsPerAddress,
    maxUnsentBytesPerConnection: config.maxUnsentBytesPerConnection,
    unreadBodyBytes: unreadBodyLimit(config.maxMessageBytes),
    keepaliveIntervalMs: config.keepaliveIntervalMs,
    keepaliveTimeoutMs: config.keepaliveTimeoutMs,
    onSilentPeer: (session) => {
      connections.ofOwner(session).peerSilent = true;
    },
    log,
    streams: router.streams,
    ...(tls !== undefined ? { tls } : {}),
  });
  metrics.connections(listener);
  const reloader =
    tls === undefined ? undefined : new CertificateReloader(tlsFiles, (loaded) => listener.setSecureContext(loaded.options), log, config.tlsReloadIntervalMs);
  const port = await listener.listen(config.port, config.host).catch((err: unknown) => {
    reloader?.close();
    throw err;
  });
  listeningPort = port;
  // Probes run on a worker thread of their own (checks/probe-worker.ts), started once the port is known (never probed).
  const probeWorker = new ProbeWorker({ allow: config.checkAllow, listenHost: config.host, listenPort: port, concurrency: config.checkConcurrency }, (code) =>
    log.error({ code }, "the health-check worker exited: started again in a second, with every check"),
    (text) => log.warn({ output: text }, "health-check worker output"),
  );
  // In Redis mode each check runs on one live replica (rendezvous hashing over the replica set), divided again when it changes.
  const replicas = store.replicas;
  const checker = new Checker({ registry, store, clock, logger: log, runner: probeWorker, observer: checkMetrics, ...(replicas !== undefined ? { owns: ownership(replicas) } : {}) });
  replicas?.subscribe(() => checker.rebalance(ownership(replicas)));
  checkMetrics.follow(checker);
  checker.start();
  let closing: Promise<void> | undefined;
  return {
    port,
    registry,
    hub,
    auth,
    reloadAuth: () => auth.reload(),
    tls: tls !== undefined,
    reloadCertificates: () => reloader?.reload("SIGHUP") ?? false,
    close() {
      closing ??= (async () => {
        const t0 = performance.now();
        const open = listener.connections;
        reloader?.close();
        checker.close();
        await probeWorker.close();
        registry.close();
        shutdown.abort(new ConnectError("server: shutting down, reconnect", Code.Unavailable));
        hub.close();
        xdsCache.close();
        stopEncoding();
        const ended = performance.now();
        await listener.close(config.shutdownGraceMs);
        const closed = performance.now();
        serving.close();
        await serviceConfig.close();
        await store.close();
        log.info(
          { connections: open, streamsEndedMs: Math.round(ended - t0), connectionsClosedMs: Math.round(closed - ended), storeClosedMs: Math.round(performance.now() - closed) },
          "drained",
        );
      })();
      return closing;
    },
  };
}

/**
 * openConfigStore opens the service configuration store the settings name:
 * LevelDB in MAXINE_DATA_DIR (the default), memory with MAXINE_DATA_DIR=off,
 * Redis (shared by the replicas) with MAXINE_STORE=redis.
 */
export function openConfigStore(config: Config, logger: Logger): Promise<ConfigStore> {
  const limits = { maxKeysPerService: config.configMaxKeysPerService, historyDepth: config.configHistoryDepth };
  if (config.store === "redis") {
    return RedisConfigStore.connect({
      url: config.redisUrl,
      sentinels: config.redisSentinels === "" ? [] : config.redisSentinels.split(","),
      sentinelName: config.redisSentinelName,
      cluster: config.redisCluster === "" ? [] : config.redisCluster.split(","),
      commandTimeoutMs: config.redisCommandTimeoutMs,
      registry: config.redisRegistry,
      logMax: config.redisLogMax,
      limits,
      logger,
    });
  }
  if (config.dataDir === "off") return Promise.resolve(new MemoryConfigStore(limits));
  return LevelConfigStore.open({ dir: config.dataDir, limits, fsync: config.configFsync });
}

/**
 * openStore opens the registry's store the settings name: Redis, or
 * memory: this process's own, or in a worker (MAXINE_WORKERS > 1) the
 * primary's, through the worker's link (cluster/primary-store.ts).
 */
async function openStore(config: Config, clock: Clock, log: Logger, worker: WorkerRole | undefined): Promise<Store> {
  if (config.store === "redis") return connectRedis(config, clock, log);
  if (worker === undefined) return new MemoryStore();
  return PrimaryStore.connect({ link: worker.link, workerId: String(worker.id), clock, logger: log });
}

/** connectRedis builds the Redis store from the MAXINE_REDIS_* settings. */
function connectRedis(config: Config, clock: Clock, logger: Logger): Promise<RedisStore> {
  return RedisStore.connect({
    url: config.redisUrl,
    sentinels: config.redisSentinels === "" ? [] : config.redisSentinels.split(","),
    sentinelName: config.redisSentinelName,
    cluster: config.redisCluster === "" ? [] : config.redisCluster.split(","),
    registry: config.redisRegistry,
    logMax: config.redisLogMax,
    historySize: Math.min(config.watchHistory, config.redisLogMax),
    renewIntervalMs: config.redisRenewIntervalMs,
    sweepIntervalMs: config.redisSweepIntervalMs,
    lockTtlMs: config.redisLockTtlMs,
    recoveryWindowMs: config.redisRecoveryWindowMs,
    commandTimeoutMs: config.redisCommandTimeoutMs,
    connectTimeoutMs: config.redisConnectTimeoutMs,
    // a replica that stops leaves the replica set within the grace: its health checks move on within an interval plus the grace
    memberTtlMs: Math.max(300, Math.round(config.graceMs * 0.75)),
    clock,
    logger,
  });
}

/** metricsCaller reports whether an authorization header carries a credential the server accepts (MAXINE_AUTH_METRICS). */
async function metricsCaller(auth: AuthState, header: string | undefined): Promise<boolean> {
  const m = /^bearer[ \t]+(\S+)[ \t]*$/i.exec(header ?? "");
  if (m === null) return false;
  if (auth.tokens?.find(m[1]!) !== undefined) return true;
  if (auth.jwt === undefined || !auth.jwt.looksLikeJwt(m[1]!)) return false;
  return auth.jwt.verify(m[1]!).then(
    () => true,
    () => false,
  );
}
