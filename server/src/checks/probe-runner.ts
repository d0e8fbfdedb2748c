import { Worker } from "node:worker_threads";
import type { CheckKind, CheckSpec } from "../domain/health.js";

/** ProbeTask is one instance's check as a runner probes it: the check, the host to resolve and vet, the port. */
export interface ProbeTask {
  readonly check: CheckSpec;
  readonly host: string;
  readonly port: number;
}

/** ProbeReport is one probe's outcome, for the checker to judge. */
export interface ProbeReport {
  readonly id: string;
  /** gen is the task's generation given to set: a report of an older generation is for a check that changed since. */
  readonly gen: number;
  readonly kind: CheckKind;
  readonly pass: boolean;
  readonly message: string;
  readonly timedOut: boolean;
  /** startedAt is when the probe started (ms since the epoch). */
  readonly startedAt: number;
  readonly seconds: number;
}

/** ProbeBatch is what a runner reports at once: outcomes, how late the probes started (ms), and its load. */
export interface ProbeBatch {
  readonly reports: readonly ProbeReport[];
  readonly slips: readonly number[];
  readonly running: number;
  readonly queued: number;
}

/**
 * ProbeRunner schedules and runs the probes of the checks the checker gives
 * it and reports their outcomes in batches. The server's runs them on a
 * worker thread of their own (probe-worker.ts, ProbeWorker), so that
 * thousands of probes a second do not delay the RPCs on the main event
 * loop.
 */
export interface ProbeRunner {
  /** set schedules (or reschedules, the check having changed) the task of id under generation gen. */
  set(id: string, gen: number, task: ProbeTask): void;
  /** delete stops id's probes. */
  delete(id: string): void;
  /** reports registers the one receiver of the batches. */
  reports(receiver: (batch: ProbeBatch) => void): void;
  /** close stops every probe (those in flight are aborted). */
  close(): Promise<void>;
}

/** WorkerSettings are what the probe worker is started with. */
export interface WorkerSettings {
  /** allow is MAXINE_CHECK_ALLOW. */
  readonly allow: string;
  /** listenHost and listenPort are the registry's own listening address, which probes never reach. */
  readonly listenHost: string;
  readonly listenPort: number;
  /** concurrency is MAXINE_CHECK_CONCURRENCY. */
  readonly concurrency: number;
}

/** ToWorker is a message from the checker to the probe worker. */
export type ToWorker = { readonly op: "set"; readonly id: string; readonly gen: number; readonly task: ProbeTask } | { readonly op: "delete"; readonly id: string } | { readonly op: "close" };

/**
 * WORKER_SCRIPT is the probe worker's compiled entry. Run from the sources
 * (tests under vitest, which compiles TypeScript in process only), the
 * server starts the one `npm run build` wrote into server/dist: a worker
 * thread loads plain JavaScript.
 */
const WORKER_SCRIPT = import.meta.url.endsWith(".ts") ? new URL("../../dist/checks/probe-worker.js", import.meta.url) : new URL("./probe-worker.js", import.meta.url);

/** RESTART_MS is how long after an unexpected exit the probe worker is started again. */
const RESTART_MS = 1000;

/**
 * ProbeWorker is the ProbeRunner of the server: it starts the probe worker
 * thread with the first check (unref'd: it never keeps the process alive)
 * and passes tasks and batches across. It keeps every task, so a worker
 * that exits unexpectedly (reported to onExit) is started again
 * RESTART_MS later with all of them; what the thread writes goes to
 * onOutput.
 */
export class ProbeWorker implements ProbeRunner {
  private worker: Worker | undefined;
  private receiver: (batch: ProbeBatch) => void = () => {};
  private readonly tasks = new Map<string, { readonly gen: number; readonly task: ProbeTask }>();
  private restart: NodeJS.Timeout | undefined;
  private closed = false;
  /** restarts counts the threads started again after an unexpected exit. */
  restarts = 0;

  constructor(
    private readonly settings: WorkerSettings,
    private readonly onExit: (code: number) => void,
    private readonly onOutput: (text: string) => void = () => {},
  ) {}

  /** started reports whether the thread runs (it starts with the first check: a server without checks has none). */
  get started(): boolean {
    return this.worker !== undefined;
  }

  private thread(): Worker {
    if (this.worker !== undefined) return this.worker;
    // the worker's own stdout and stderr are read here, not copied to the process's (which would open them in a test's process)
    const w = new Worker(WORKER_SCRIPT, { workerData: this.settings, name: "maxine-probes", stdout: true, stderr: true });
    w.unref();
    const relay = (d: Buffer): void => this.onOutput(d.toString().trimEnd());
    w.stdout.on("data", relay);
    w.stderr.on("data", relay);
    w.on("message", (b: ProbeBatch) => this.receiver(b));
    w.on("error", () => {}); // reported by exit
    w.once("exit", (code) => {
      if (this.worker === w) this.worker = undefined;
      if (this.closed) return;
      this.onExit(code);
      this.restart = setTimeout(() => this.resume(), RESTART_MS);
      this.restart.unref();
    });
    return (this.worker = w);
  }

  /** resume starts the thread again with every task it had. */
  private resume(): void {
    this.restart = undefined;
    if (this.closed || this.tasks.size === 0) return;
    this.restarts++;
    const w = this.thread();
    for (const [id, { gen, task }] of this.tasks) w.postMessage({ op: "set", id, gen, task } satisfies ToWorker);
  }

  set(id: string, gen: number, task: ProbeTask): void {
    if (this.closed) return;
    this.tasks.set(id, { gen, task });
    if (this.restart === undefined) this.thread().postMessage({ op: "set", id, gen, task } satisfies ToWorker);
  }

  delete(id: string): void {
    if (this.closed || !this.tasks.delete(id)) return;
    this.worker?.postMessage({ op: "delete", id } satisfies ToWorker);
  }

  reports(receiver: (batch: ProbeBatch) => void): void {
    this.receiver = receiver;
  }

  /** close stops the worker's probes and ends the thread. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.restart !== undefined) clearTimeout(this.restart);
    this.tasks.clear();
    const w = this.worker;
    if (w === undefined) return;
    w.postMessage({ op: "close" } satisfies ToWorker);
    await w.terminate();
  }
}
