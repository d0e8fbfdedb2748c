#!/usr/bin/env node
import cluster from "node:cluster";
import { pino } from "pino";
import { ConfigError, loadConfig, secretsOf, type Config } from "./config.js";
import { LogDestination } from "./log-destination.js";
import { runPrimary } from "./cluster/primary.js";
import { WorkerLink, workerConfig } from "./cluster/worker-link.js";

// Composition root: read config, start, drain on SIGTERM/SIGINT. With
// MAXINE_WORKERS > 1 this process is the cluster primary (cluster/primary.ts)
// and each worker runs this file again as a full replica (docs/workers.md).

let config: Config;
try {
  config = loadConfig(process.argv.slice(2), process.env);
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  process.stderr.write(`maxine: ${err.message}\n`);
  process.exit(2);
}

const worker = cluster.isWorker && config.workers > 1 ? new WorkerLink(cluster.worker!.id) : undefined;
// Logs go to stdout off the event loop, bounded by MAXINE_LOG_BUFFER
// (log-destination.ts). A worker's lines carry its cluster id.
const logOutput = new LogDestination(1, config.logBuffer);
const log = pino(
  { level: config.logLevel, base: { service: "maxine", ...(worker !== undefined ? { worker: worker.id } : {}) } },
  logOutput,
);

if (config.workers > 1 && cluster.isPrimary) {
  // with the memory store the primary holds the registry and opens the configuration store (cluster/registry-authority.ts)
  runPrimary({ config, log, exit: (code) => process.exit(code), openConfig: async () => (await import("./app.js")).openConfigStore(config, log) });
} else {
  await serve(worker !== undefined ? workerConfig(config, process.env) : config, worker);
}

/** serve runs one Maxine in this process until SIGTERM/SIGINT; a worker tells its primary when it listens. */
async function serve(config: Config, worker: WorkerLink | undefined): Promise<void> {
  const { startMaxine } = await import("./app.js");
  let server;
  try {
    server = await startMaxine(config, { logger: log, debugEnabled: () => log.isLevelEnabled("debug"), logDropped: () => logOutput.dropped, ...(worker !== undefined ? { worker } : {}) });
  } catch (err) {
    // A setting that cannot be served (an unsafe exposure, a TLS file): say which, exit 2 as for a bad flag.
    if (err instanceof ConfigError) {
      process.stderr.write(`maxine: ${err.message}\n`);
      process.exit(2);
    }
    // A store that cannot be reached at start (Redis down) or a port in use: say which, exit 1.
    // ioredis's messages name host and port only, but a message is scrubbed of the Redis password all the same.
    let message = (err as Error).message;
    for (const secret of secretsOf(config)) message = message.replaceAll(secret, "***");
    log.fatal({ err: message }, "maxine could not start");
    process.exit(1);
  }

  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "shutting down: ending streams with UNAVAILABLE");
    server.close().then(
      () => {
        log.info({}, "stopped");
        process.exit(0);
      },
      (err: unknown) => {
        log.error({ err }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  // The handlers are in place before the server says it listens: a SIGTERM
  // right after that line drains instead of killing the process outright.
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
  // SIGHUP re-reads what can change without a restart: the tokens, policy and JWT key files, and the TLS
  // certificate; a bad file keeps the old one (logged at warn).
  process.on("SIGHUP", () => {
    if (server.tls) server.reloadCertificates();
    server.reloadAuth().then(
      (changed) => log.info({ changed }, "SIGHUP: authentication files re-read"),
      (err: unknown) => log.error({ err }, "SIGHUP: reload failed"),
    );
  });
  const registryId = server.registry.store.registryId;
  if (worker !== undefined) {
    // The primary says "maxine listening" once every worker does.
    log.info({ port: server.port, pid: process.pid, registryId }, "worker listening");
    worker.listening(server.port, registryId);
  } else {
    log.info({ host: config.host, port: server.port, tls: server.tls, registryId }, "maxine listening");
  }
}
