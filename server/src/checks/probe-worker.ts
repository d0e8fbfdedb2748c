import { parentPort, workerData } from "node:worker_threads";
import { systemClock } from "../domain/clock.js";
import { RegistryError } from "../domain/errors.js";
import type { ProbeBatch, ProbeReport, ProbeTask, ToWorker, WorkerSettings } from "./probe-runner.js";
import { Probes, type ProbeOutcome } from "./probes.js";
import { CheckScheduler } from "./scheduler.js";
import { TargetPolicy } from "./targets.js";

// The probe worker: a worker thread (ProbeWorker starts it) that runs the
// scheduler and the probes, so that probing never holds up the RPCs on the
// main event loop. It vets each probe's target again (the same policy as
// Register) and posts outcomes in batches, at most every FLUSH_MS.

/** FLUSH_MS is how long outcomes wait to be posted together. */
const FLUSH_MS = 10;
/** MAX_BATCH posts a batch at once when it holds this many outcomes. */
const MAX_BATCH = 512;

const settings = workerData as WorkerSettings;
const port = parentPort!;
const targets = new TargetPolicy({ allow: settings.allow, listening: { host: settings.listenHost, port: () => settings.listenPort } });
const probes = new Probes();
let reports: ProbeReport[] = [];
let slips: number[] = [];
let flushing: NodeJS.Timeout | undefined;
const scheduler = new CheckScheduler({ clock: systemClock, concurrency: settings.concurrency, slipped: (ms) => slips.push(ms) });

function flush(): void {
  flushing = undefined;
  if (reports.length === 0 && slips.length === 0) return;
  const batch: ProbeBatch = { reports, slips, running: scheduler.running, queued: scheduler.queued };
  reports = [];
  slips = [];
  port.postMessage(batch);
}

function report(r: ProbeReport): void {
  reports.push(r);
  if (reports.length >= MAX_BATCH) flush();
  else flushing ??= setTimeout(flush, FLUSH_MS);
}

function set(id: string, gen: number, task: ProbeTask): void {
  const { check, host } = task;
  const outcome = (o: ProbeOutcome, startedAt: number): void =>
    report({ id, gen, kind: check.kind, pass: o.pass, message: o.message, timedOut: o.timedOut === true, startedAt, seconds: (Date.now() - startedAt) / 1000 });
  scheduler.set(
    id,
    {
      intervalMs: check.intervalMs,
      timeoutMs: check.timeoutMs,
      async run(signal) {
        const startedAt = Date.now();
        let o: ProbeOutcome;
        try {
          const address = await targets.address(host, task.port);
          if (signal.aborted) return;
          o = await probes.probe(check, { address, port: task.port, host }, signal);
        } catch (err) {
          if (!(err instanceof RegistryError)) throw err;
          o = { pass: false, message: `target refused: ${err.message}` };
        }
        if (!signal.aborted) outcome(o, startedAt); // aborted: timedOut answered for this run
      },
      timedOut: (startedAt) => outcome({ pass: false, message: `timeout after ${check.timeoutMs / 1000} s`, timedOut: true }, startedAt),
    },
    true,
  );
}

port.on("message", (m: ToWorker) => {
  switch (m.op) {
    case "set":
      set(m.id, m.gen, m.task);
      break;
    case "delete":
      scheduler.delete(m.id);
      break;
    case "close":
      scheduler.close();
      if (flushing !== undefined) clearTimeout(flushing);
      port.close();
      break;
  }
});
