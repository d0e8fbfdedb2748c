import type { Clock } from "../domain/clock.js";
import { RegistryError } from "../domain/errors.js";
import { checkPort, sameCheck, type CheckKind, type CheckSpec } from "../domain/health.js";
import { keyString, type InstanceKey, type InstanceRecord } from "../domain/instance.js";
import type { Logger } from "../domain/logger.js";
import type { Registry } from "../registry/registry.js";
import type { Store } from "../store/store.js";
import { judge, type CheckCounts } from "./check-state.js";
import { Probes, type ProbeOutcome, type Prober } from "./probes.js";
import type { CheckScheduler } from "./scheduler.js";
import type { TargetPolicy } from "./targets.js";

/** ProbeResult labels a probe's outcome in metrics. */
export type ProbeResult = "pass" | "fail" | "timeout";

/** CheckObserver is told of every probe (metrics: maxine_check_probes_total, maxine_check_probe_duration_seconds). */
export interface CheckObserver {
  probed(kind: CheckKind, result: ProbeResult, seconds: number): void;
}

/** CheckerOptions are the parts a Checker is built from. */
export interface CheckerOptions {
  readonly registry: Registry;
  readonly store: Store;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly scheduler: CheckScheduler;
  readonly targets: TargetPolicy;
  readonly prober?: Prober;
  readonly observer?: CheckObserver;
  /**
   * owns says whether this server runs the check of an instance (by its
   * key string). Default: every check (one server). In Redis mode each
   * check has exactly one owner among the live replicas (CheckOwnership).
   */
  readonly owns?: (id: string) => boolean;
}

/** Probed is one instance's check as this server runs it. */
interface Probed {
  readonly key: InstanceKey;
  readonly check: CheckSpec;
  readonly host: string;
  readonly port: number;
  readonly counts: CheckCounts;
}

/**
 * Checker runs the active health checks of the instances this server owns:
 * it follows the store's change feed (so every replica knows every check),
 * schedules a probe per owned check, turns outcomes into results with the
 * check's thresholds (check-state.ts), and stores a result through the
 * registry only when it changes: a status change is an ordinary watch
 * event. Probes go only where the target policy allows, resolved again
 * for every probe.
 */
export class Checker {
  private readonly registry: Registry;
  private readonly store: Store;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly scheduler: CheckScheduler;
  private readonly targets: TargetPolicy;
  private readonly prober: Prober;
  private readonly observer: CheckObserver | undefined;
  private owns: (id: string) => boolean;
  private readonly probed = new Map<string, Probed>();
  private readonly unsubscribe: (() => void)[] = [];
  private closed = false;

  constructor(opts: CheckerOptions) {
    this.registry = opts.registry;
    this.store = opts.store;
    this.clock = opts.clock;
    this.log = opts.logger;
    this.scheduler = opts.scheduler;
    this.targets = opts.targets;
    this.prober = opts.prober ?? new Probes().probe;
    this.observer = opts.observer;
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

  /** close stops every check; the scheduler is closed by its owner. */
  close(): void {
    this.closed = true;
    for (const off of this.unsubscribe.splice(0)) off();
    for (const id of [...this.probed.keys()]) this.drop(id);
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
    const p: Probed = { key: { namespace: r.namespace, service: r.service, instanceId: r.instanceId }, check, host: r.host, port, counts: { passes: 0, failures: 0, failingSince: undefined } };
    this.probed.set(id, p);
    this.scheduler.set(
      id,
      {
        intervalMs: check.intervalMs,
        timeoutMs: check.timeoutMs,
        run: (signal) => this.run(id, p, signal),
        timedOut: (startedAt) => this.apply(id, p, { pass: false, message: `timeout after ${check.timeoutMs / 1000} s`, timedOut: true }, startedAt),
      },
      true,
    );
  }

  private drop(id: string): void {
    if (this.probed.delete(id)) this.scheduler.delete(id);
  }

  private async run(id: string, p: Probed, signal: AbortSignal): Promise<void> {
    const startedAt = this.clock.now();
    let outcome: ProbeOutcome;
    try {
      const address = await this.targets.address(p.host, p.port);
      if (signal.aborted) return;
      outcome = await this.prober(p.check, { address, port: p.port, host: p.host }, signal);
    } catch (err) {
      if (!(err instanceof RegistryError)) throw err;
      outcome = { pass: false, message: `target refused: ${err.message}` };
    }
    if (signal.aborted) return; // timedOut has answered for this run
    this.apply(id, p, outcome, startedAt);
  }

  private apply(id: string, p: Probed, outcome: ProbeOutcome, startedAt: number): void {
    const now = this.clock.now();
    this.observer?.probed(p.check.kind, outcome.pass ? "pass" : outcome.timedOut === true ? "timeout" : "fail", (now - startedAt) / 1000);
    if (this.closed || this.probed.get(id) !== p) return; // stopped or changed meanwhile
    const record = this.store.get(p.key);
    if (record?.health === undefined || !sameCheck(record.health.check, p.check)) return;
    const verdict = judge(p.check, record.health.result, p.counts, outcome.pass, outcome.message, now);
    if (verdict.deregister) {
      this.registry.removeFailedCheck(p.key, record.modRevision).catch((err: unknown) => this.failed(id, "removing", err));
      return;
    }
    if (verdict.result !== undefined) {
      this.registry.recordCheck(p.key, p.check, verdict.result).catch((err: unknown) => this.failed(id, "storing a result of", err));
    }
  }

  /** failed logs a store write that did not happen; the next probe tries again (it compares with what is stored). */
  private failed(id: string, what: string, err: unknown): void {
    if (this.closed) return;
    this.log.warn({ instance: id, err: (err as Error).message }, `${what} a health check failed; retried after the next probe`);
  }
}
