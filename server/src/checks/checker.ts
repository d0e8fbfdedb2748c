import type { Clock } from "../domain/clock.js";
import { checkPort, sameCheck, type CheckKind, type CheckSpec } from "../domain/health.js";
import { keyString, type InstanceKey, type InstanceRecord } from "../domain/instance.js";
import type { Logger } from "../domain/logger.js";
import type { Registry } from "../registry/registry.js";
import type { Store } from "../store/store.js";
import { judge, type CheckCounts } from "./check-state.js";
import type { ProbeBatch, ProbeReport, ProbeRunner } from "./probe-runner.js";

/** ProbeResult labels a probe's outcome in metrics. */
export type ProbeResult = "pass" | "fail" | "timeout";

/** CheckObserver is told of every probe (metrics: maxine_check_probes_total, maxine_check_probe_duration_seconds, maxine_check_schedule_slip_seconds). */
export interface CheckObserver {
  probed(kind: CheckKind, result: ProbeResult, seconds: number): void;
  /** slipped: a probe started ms after it was due. */
  slipped(ms: number): void;
}

/** CheckerOptions are the parts a Checker is built from. */
export interface CheckerOptions {
  readonly registry: Registry;
  readonly store: Store;
  readonly clock: Clock;
  readonly logger: Logger;
  /** runner schedules and runs the probes (ProbeWorker: on a worker thread). */
  readonly runner: ProbeRunner;
  readonly observer?: CheckObserver;
  /**
   * owns says whether this server runs the check of an instance (by its
   * key string). Default: every check (one server). In Redis mode each
   * check has exactly one owner among the live replicas (ownership.ts).
   */
  readonly owns?: (id: string) => boolean;
}

/** Probed is one instance's check as this server runs it. */
interface Probed {
  readonly key: InstanceKey;
  readonly check: CheckSpec;
  readonly host: string;
  readonly port: number;
  /** gen tells this check's reports from those of a check the instance had before. */
  readonly gen: number;
  readonly counts: CheckCounts;
}

/**
 * Checker runs the active health checks of the instances this server owns:
 * it follows the store's change feed (so every replica knows every check),
 * gives the probe runner a task per owned check, turns the outcomes it
 * reports into results with the check's thresholds (check-state.ts), and
 * stores a result through the registry only when it changes: a status
 * change is an ordinary watch event. The runner probes only where the
 * target policy allows, resolved again for every probe.
 */
export class Checker {
  private readonly registry: Registry;
  private readonly store: Store;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly runner: ProbeRunner;
  private readonly observer: CheckObserver | undefined;
  private nextGen = 1;
  /** running and queued are the runner's probes in flight and waiting, as of its last batch. */
  running = 0;
  queued = 0;
  private owns: (id: string) => boolean;
  private readonly probed = new Map<string, Probed>();
  private readonly unsubscribe: (() => void)[] = [];
  private closed = false;

  constructor(opts: CheckerOptions) {
    this.registry = opts.registry;
    this.store = opts.store;
    this.clock = opts.clock;
    this.log = opts.logger;
    this.runner = opts.runner;
    this.observer = opts.observer;
    this.runner.reports((b) => this.received(b));
    this.owns = opts.owns ?? (() => true);
  }

  /** start schedules the checks the store holds now and follows its changes. */
  start(): void {
    this.unsubscribe.push(
      this.store.subscribe((c) => {
        if (c.type === "REMOVED") this.drop(keyString(c.instance));
        else this.sync(c.instance);
      }),
    );
    const off = this.store.subscribeResets?.(() => this.rebalance());
    if (off !== undefined) this.unsubscribe.push(off);
    this.rebalance();
  }

  /** count is the number of checks this server runs. */
  get count(): number {
    return this.probed.size;
  }

  /**
   * rebalance reads every stored check again: it starts those this server
   * now owns and stops those it no longer does (the store's view was
   * replaced, or the replicas changed).
   */
  rebalance(owns?: (id: string) => boolean): void {
    if (this.closed) return;
    if (owns !== undefined) this.owns = owns;
    const seen = new Set<string>();
    for (const ns of this.store.namespaces()) {
      for (const [, view] of this.store.services(ns)) {
        for (const r of view.sorted()) {
          if (r.health === undefined) continue;
          seen.add(keyString(r));
          this.sync(r);
        }
      }
    }
    for (const id of [...this.probed.keys()]) if (!seen.has(id)) this.drop(id);
  }

  /** close stops every check; the runner is closed by its owner. */
  close(): void {
    this.closed = true;
    for (const off of this.unsubscribe.splice(0)) off();
    this.probed.clear();
  }

  private sync(r: InstanceRecord): void {
    if (this.closed) return;
    const id = keyString(r);
    if (r.health === undefined || !this.owns(id)) {
      this.drop(id);
      return;
    }
    const check = r.health.check;
    const port = checkPort(check, r.port);
    const was = this.probed.get(id);
    if (was !== undefined && was.host === r.host && was.port === port && sameCheck(was.check, check)) return;
    const p: Probed = { key: { namespace: r.namespace, service: r.service, instanceId: r.instanceId }, check, host: r.host, port, gen: this.nextGen++, counts: { passes: 0, failures: 0, failingSince: undefined } };
    this.probed.set(id, p);
    this.runner.set(id, p.gen, { check, host: r.host, port });
  }

  private drop(id: string): void {
    if (this.probed.delete(id)) this.runner.delete(id);
  }

  private received(b: ProbeBatch): void {
    this.running = b.running;
    this.queued = b.queued;
    for (const ms of b.slips) this.observer?.slipped(ms);
    for (const r of b.reports) this.apply(r);
  }

  private apply(r: ProbeReport): void {
    this.observer?.probed(r.kind, r.pass ? "pass" : r.timedOut ? "timeout" : "fail", r.seconds);
    const p = this.probed.get(r.id);
    if (this.closed || p === undefined || p.gen !== r.gen) return; // stopped or changed meanwhile
    const record = this.store.get(p.key);
    if (record?.health === undefined || !sameCheck(record.health.check, p.check)) return;
    const now = this.clock.now();
    const verdict = judge(p.check, record.health.result, p.counts, r.pass, r.message, now);
    if (verdict.deregister) {
      this.registry.removeFailedCheck(p.key, record.modRevision).catch((err: unknown) => this.failed(r.id, "removing", err));
      return;
    }
    if (verdict.result !== undefined) {
      this.registry.recordCheck(p.key, p.check, verdict.result).catch((err: unknown) => this.failed(r.id, "storing a result of", err));
    }
  }

  /** failed logs a store write that did not happen; the next probe tries again (it compares with what is stored). */
  private failed(id: string, what: string, err: unknown): void {
    if (this.closed) return;
    this.log.warn({ instance: id, err: (err as Error).message }, `${what} a health check failed; retried after the next probe`);
  }
}
