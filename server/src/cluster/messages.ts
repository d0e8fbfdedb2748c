/**
 * The messages a cluster primary and its workers exchange over the cluster's
 * IPC channel (docs/workers.md). Each carries `maxine` naming its kind, so
 * that prom-client's own messages on the same channel are told apart.
 */

/** Listening is a worker's word that it serves: its port and the registry it serves. */
export interface Listening {
  readonly maxine: "listening";
  readonly port: number;
  readonly registryId: string;
}

/** MetricsAsk is a worker's request for the whole server's metrics (a scrape it received). */
export interface MetricsAsk {
  readonly maxine: "metrics";
  readonly id: number;
}

/** MetricsAnswer is the primary's answer: every worker's metrics aggregated, or why not. */
export interface MetricsAnswer {
  readonly maxine: "metrics";
  readonly id: number;
  readonly contentType?: string;
  readonly body?: string;
  readonly error?: string;
}

/** WorkerMessage is what a worker sends its primary. */
export type WorkerMessage = Listening | MetricsAsk;

/** CLUSTER_PORT_ENV passes a worker the port the server already listens on, so a restarted worker of a port-0 server joins the same port. */
export const CLUSTER_PORT_ENV = "MAXINE_CLUSTER_PORT";

/** isWorkerMessage reports whether an IPC message is one of Maxine's (and not prom-client's). */
export function isWorkerMessage(m: unknown): m is WorkerMessage {
  return typeof m === "object" && m !== null && ((m as WorkerMessage).maxine === "listening" || (m as WorkerMessage).maxine === "metrics");
}
