import { AggregatorRegistry, type Registry as MetricsRegistry } from "prom-client";
import { workerShare, type Config } from "../config.js";
import { CLUSTER_PORT_ENV, isPrimaryMessage, isWorkerMessage, MAX_BATCH, type MetricsAnswer, type PrimaryMessage, type StoreBatch, type StoreMessage, type WorkerMessage } from "./messages.js";
import type { PrimaryLink } from "./primary-store.js";

/** METRICS_TIMEOUT_MS bounds a scrape's wait for the primary (which itself waits at most 5 s for each worker, prom-client's bound). */
export const METRICS_TIMEOUT_MS = 10_000;

/**
 * workerConfig is a worker's configuration: its share of config
 * (workerShare), on the port the server already listens on when the primary
 * names one (a worker restarted while no other listened).
 */
export function workerConfig(config: Config, env: NodeJS.ProcessEnv): Config {
  const port = env[CLUSTER_PORT_ENV];
  return { ...workerShare(config), ...(port !== undefined ? { port: Number(port) } : {}) };
}

/** Rendered is an exposition text and its content type. */
export interface Rendered {
  readonly contentType: string;
  readonly body: string;
}

/**
 * WorkerLink is a worker's side of the cluster's IPC channel
 * (cluster/primary.ts): it says when the worker listens, and turns a scrape
 * of /metrics into a request to the primary, which answers with every
 * worker's metrics aggregated (prom-client's AggregatorRegistry, which also
 * answers the primary's requests for this worker's own metrics).
 */
export class WorkerLink {
  private nextId = 0;
  private readonly pending = new Map<number, { resolve(r: Rendered): void; reject(err: Error): void; timer: NodeJS.Timeout }>();
  private readonly storeListeners = new Set<(m: PrimaryMessage) => void>();
  /** batch holds the store messages of this turn: they leave together, in order, once the turn's I/O is handled. */
  private batch: StoreMessage[] = [];
  private readonly flushBatch = (): void => {
    const batch = this.batch;
    if (batch.length === 0) return;
    this.batch = [];
    if (batch.length === 1) return this.send(batch[0]!);
    for (let i = 0; i < batch.length; i += MAX_BATCH) this.send({ maxine: "store-batch", messages: batch.slice(i, i + MAX_BATCH) });
  };

  /** link is this worker's channel to the registry the primary holds (MAXINE_STORE=memory: cluster/primary-store.ts). */
  readonly link: PrimaryLink = {
    send: (m) => {
      if (this.batch.push(m) === 1) setImmediate(this.flushBatch);
    },
    flush: () => this.flushBatch(),
    listen: (listener) => {
      this.storeListeners.add(listener);
      return () => this.storeListeners.delete(listener);
    },
  };

  /** WorkerLink listens on proc's IPC channel; id is this worker's cluster id (cluster.worker.id). */
  constructor(
    readonly id: number,
    private readonly proc: NodeJS.Process = process,
  ) {
    proc.on("message", (m: unknown) => {
      if (isPrimaryMessage(m)) {
        for (const l of this.storeListeners) l(m);
        return;
      }
      if (!isWorkerMessage(m) || m.maxine !== "metrics") return;
      const answer = m as MetricsAnswer;
      const waiting = this.pending.get(answer.id);
      if (waiting === undefined) return;
      this.pending.delete(answer.id);
      clearTimeout(waiting.timer);
      if (answer.body !== undefined) waiting.resolve({ contentType: answer.contentType ?? "text/plain", body: answer.body });
      else waiting.reject(new Error(`the primary could not aggregate the workers' metrics: ${answer.error ?? "no answer"}`));
    });
  }

  /** listening tells the primary that this worker serves port, registry registryId. */
  listening(port: number, registryId: string): void {
    this.send({ maxine: "listening", port, registryId });
  }

  /**
   * metricsOf makes local the registry the primary collects from this
   * worker, and returns the function that renders a scrape: the whole
   * server's metrics, through the primary.
   */
  metricsOf(local: MetricsRegistry): () => Promise<Rendered> {
    new AggregatorRegistry(); // its constructor starts answering the primary's collection requests
    AggregatorRegistry.setRegistries([local]);
    // Scrapes that arrive while one is being answered share its answer: a flood of them costs one round
    // through the primary and every worker at a time, not one each.
    let inFlight: Promise<Rendered> | undefined;
    return () =>
      (inFlight ??= new Promise<Rendered>((resolve, reject) => {
        const id = this.nextId++;
        const timer = setTimeout(() => {
          this.pending.delete(id);
          reject(new Error(`the primary did not answer a metrics request in ${METRICS_TIMEOUT_MS} ms`));
        }, METRICS_TIMEOUT_MS);
        this.pending.set(id, { resolve, reject, timer });
        this.send({ maxine: "metrics", id });
      }).finally(() => (inFlight = undefined)));
  }

  private send(m: WorkerMessage | StoreMessage | StoreBatch): void {
    if (this.proc.connected) this.proc.send!(m, undefined, undefined, () => {});
  }
}
