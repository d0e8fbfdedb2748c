import cluster, { type Worker } from "node:cluster";
import { AggregatorRegistry, Counter, Gauge, Registry as MetricsRegistry } from "prom-client";
import type { Config } from "../config.js";
import { systemClock } from "../domain/clock.js";
import type { Logger } from "../domain/logger.js";
import type { ConfigStore } from "../store/config-store.js";
import { CLUSTER_PORT_ENV, isStoreMessage, isWorkerMessage, type MetricsAnswer, type WorkerMessage } from "./messages.js";
import { RegistryAuthority } from "./registry-authority.js";

/**
 * RESTART_LIMIT and RESTART_WINDOW_MS bound restarts: a worker that dies
 * unexpectedly is started again, but when more than RESTART_LIMIT workers
 * died within RESTART_WINDOW_MS the primary gives up (drains the rest and
 * exits 1) instead of spinning in a crash loop. RESTART_DELAY_MS is the
 * first restart's delay, doubled for each death in the window, at most
 * RESTART_DELAY_MAX_MS.
 */
export const RESTART_LIMIT = 5;
export const RESTART_WINDOW_MS = 60_000;
export const RESTART_DELAY_MS = 100;
export const RESTART_DELAY_MAX_MS = 5_000;
/** STOP_MARGIN_MS is how long after MAXINE_SHUTDOWN_GRACE a draining worker may take (store close, leases released) before it is killed. */
export const STOP_MARGIN_MS = 15_000;

/** PrimaryOptions are what the primary needs: the settings, its logger, and how to end its process (main passes process.exit). */
export interface PrimaryOptions {
  readonly config: Config;
  readonly log: Logger;
  readonly exit: (code: number) => void;
  /** onListening is called with the port once every worker listens (the conformance suite's server reports it). */
  readonly onListening?: (port: number) => void;
  /** openConfig opens the configuration store the settings name, for the primary's authority (MAXINE_STORE=memory). */
  readonly openConfig?: () => Promise<ConfigStore>;
}

/** Primary is a running primary: stop drains every worker and then exits, as SIGTERM does. */
export interface Primary {
  stop(reason: string): void;
}

interface WorkerState {
  listening: boolean;
}

/**
 * runPrimary makes this process the cluster primary of MAXINE_WORKERS
 * workers: it forks them (each runs main.ts as a full Maxine replica on the
 * shared store, node:cluster sharing the one listening socket), logs
 * "maxine listening" once all of them listen, restarts one that dies (within
 * the restart bounds), answers their /metrics requests with every worker's
 * metrics aggregated, forwards SIGHUP, and on SIGTERM/SIGINT drains them all
 * and exits 0. It serves nothing itself. A worker that cannot start (Redis
 * unreachable, port in use, a setting it refuses) ends the server with that
 * worker's exit code.
 */
export function runPrimary({ config, log, exit, onListening, openConfig }: PrimaryOptions): Primary {
  const workers = new Map<Worker, WorkerState>();
  const deaths: number[] = [];
  const restarts = new Set<NodeJS.Timeout>();
  let port: number | undefined;
  let ready = false;
  let stopping: { code: number } | undefined;

  const own = new MetricsRegistry();
  new Gauge({
    name: "maxine_workers",
    help: "Worker processes serving (MAXINE_WORKERS; one that died and is being restarted is not counted).",
    registers: [own],
    collect() {
      this.set([...workers.values()].filter((w) => w.listening).length);
    },
  });
  const restarted = new Counter({ name: "maxine_worker_restarts_total", help: "Workers started again after one died unexpectedly.", registers: [own] });
  const aggregator = new AggregatorRegistry();
  // With the memory store the registry lives here, and the workers are its replicas over IPC (registry-authority.ts).
  // The v8 serializer carries its feed's bytes (Uint8Array) as they are; JSON would spell them out number by number.
  const authority =
    config.store === "memory"
      ? new RegistryAuthority({
          clock: systemClock,
          logger: log,
          graceMs: config.graceMs,
          historySize: config.watchHistory,
          maxQueuedBytes: config.workerIpcBuffer,
          openConfig: openConfig ?? (() => Promise.reject(new Error("no configuration store"))),
        })
      : undefined;
  if (authority !== undefined) cluster.setupPrimary({ serialization: "advanced" });
  const exitAfterClose = (code: number): void => {
    if (authority === undefined) return exit(code);
    authority.close().then(
      () => exit(code),
      (err: unknown) => {
        log.error({ err: (err as Error).message }, "the configuration store did not close");
        exit(code === 0 ? 1 : code);
      },
    );
  };

  const fork = (): void => {
    // A worker listening on the configured port (0 too) shares the socket the primary holds for it while any
    // worker listens; once none does, that socket is gone, and a port-0 server keeps its port only if named.
    const alone = ![...workers.values()].some((w) => w.listening);
    const worker = cluster.fork(port !== undefined && alone ? { [CLUSTER_PORT_ENV]: String(port) } : {});
    workers.set(worker, { listening: false });
    authority?.attach({
      id: worker.id,
      send: (m, done) => {
        if (!worker.isConnected()) return done();
        worker.send(m, undefined, undefined, () => done());
      },
      reset: () => worker.process.kill("SIGKILL"),
    });
    worker.on("message", (m: unknown) => {
      if (isWorkerMessage(m)) onMessage(worker, m);
      else if (authority !== undefined && isStoreMessage(m)) authority.receive(worker.id, m as never);
    });
  };

  const onMessage = (worker: Worker, m: WorkerMessage): void => {
    const state = workers.get(worker);
    if (m.maxine === "listening" && state !== undefined) {
      state.listening = true;
      port ??= m.port;
      if (!ready && [...workers.values()].every((w) => w.listening) && workers.size === config.workers) {
        ready = true;
        log.info(
          { host: config.host, port, tls: config.tlsCert !== "", registryId: m.registryId, workers: config.workers, pids: [...workers.keys()].map((w) => w.process.pid) },
          "maxine listening",
        );
        onListening?.(m.port);
      } else if (ready) {
        log.info({ worker: worker.id, pid: worker.process.pid }, "worker restarted and listening");
      }
      return;
    }
    if (m.maxine === "metrics") {
      const reply = (answer: MetricsAnswer): void => {
        if (worker.isConnected()) worker.send(answer, () => {});
      };
      aggregator.clusterMetrics().then(
        async (body) => reply({ maxine: "metrics", id: m.id, contentType: aggregator.contentType, body: body + (await own.metrics()) }),
        (err: unknown) => reply({ maxine: "metrics", id: m.id, error: (err as Error).message }),
      );
    }
  };

  const stop = (reason: string, code: number): void => {
    if (stopping !== undefined) return;
    stopping = { code };
    for (const t of restarts) clearTimeout(t);
    log.info({ reason, workers: workers.size }, "shutting down: draining every worker");
    for (const w of workers.keys()) w.process.kill("SIGTERM");
    if (workers.size === 0) return exitAfterClose(code);
    setTimeout(() => {
      log.error({ workers: [...workers.keys()].map((w) => w.process.pid) }, "workers still running after the shutdown grace: killed");
      for (const w of workers.keys()) w.process.kill("SIGKILL");
      stopping!.code = 1;
    }, config.shutdownGraceMs + STOP_MARGIN_MS).unref();
  };

  cluster.on("exit", (worker, code, signal) => {
    const state = workers.get(worker);
    workers.delete(worker);
    // its heartbeat streams ended with it: their leases pass to another worker's stream, or start their grace
    authority?.detach(worker.id);
    if (stopping !== undefined) {
      if (code !== 0 && stopping.code === 0) stopping.code = 1;
      if (workers.size === 0) {
        log.info({ code: stopping.code }, "stopped");
        exitAfterClose(stopping.code);
      }
      return;
    }
    if (!ready) {
      // Not every worker has started yet: a setting, the store or the port refused the first one that failed; so would they all.
      log.error({ worker: worker.id, pid: worker.process.pid, code, signal }, "a worker could not start: stopping the server");
      stop("a worker could not start", code === null || code === 0 ? 1 : code);
      return;
    }
    const now = Date.now();
    deaths.push(now);
    while (deaths.length > 0 && deaths[0]! < now - RESTART_WINDOW_MS) deaths.shift();
    if (deaths.length > RESTART_LIMIT) {
      log.error({ worker: worker.id, pid: worker.process.pid, code, signal, deaths: deaths.length, windowMs: RESTART_WINDOW_MS }, "workers keep dying: giving up");
      stop("workers keep dying", 1);
      return;
    }
    const delay = Math.min(RESTART_DELAY_MAX_MS, RESTART_DELAY_MS * 2 ** (deaths.length - 1));
    log.error({ worker: worker.id, pid: worker.process.pid, code, signal, listening: state?.listening ?? false, restartInMs: delay }, "a worker died: starting another");
    const t = setTimeout(() => {
      restarts.delete(t);
      restarted.inc();
      fork();
    }, delay);
    restarts.add(t);
  });

  // The handlers are in place before any worker listens: a SIGTERM right after "maxine listening" drains.
  process.on("SIGTERM", () => stop("SIGTERM", 0));
  process.on("SIGINT", () => stop("SIGINT", 0));
  // SIGHUP re-reads the authentication files and the TLS certificate in every worker.
  process.on("SIGHUP", () => {
    log.info({ workers: workers.size }, "SIGHUP: forwarded to every worker");
    for (const w of workers.keys()) w.process.kill("SIGHUP");
  });
  for (let i = 0; i < config.workers; i++) fork();
  return { stop: (reason) => stop(reason, 0) };
}
