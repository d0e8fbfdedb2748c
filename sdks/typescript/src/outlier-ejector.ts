// The local outlier ejector: what a client's pick learns from call
// outcomes. The same rules, defaults and order of evaluation as the Go and
// Python SDKs (testdata/conformance/ejection proves it); docs/client-ejection.md
// explains them beside Envoy's and gRPC's. No timer: the interval sweeps
// that are due run when the ejector is next asked (report or pick), at the
// times they were due, so the outcome is the same as with a timer.

/** EjectionOptions tune the ejector; every field has the default documented beside it. */
export interface EjectionOptions {
  /** consecutiveFailures ejects an instance after this many failures in a row (Envoy's consecutive_5xx); 0 turns the rule off. Default 5. */
  readonly consecutiveFailures?: number;
  /** intervalMs is the period of the failure-percentage sweep and of the ejection-count decay (A50's interval). Default 10,000. */
  readonly intervalMs?: number;
  /** baseEjectionTimeMs is the first ejection's length; the n-th lasts n times it. Default 30,000. */
  readonly baseEjectionTimeMs?: number;
  /** maxEjectionTimeMs caps an ejection's length (at max(base, this)). Default 300,000. */
  readonly maxEjectionTimeMs?: number;
  /** maxEjectionPercent bounds the share of a service's instances ejected at once; one may always be. Default 10. */
  readonly maxEjectionPercent?: number;
  /** failurePercentageThreshold ejects, at a sweep, an instance whose failed share of the interval's calls is above it; 0 turns the rule off. Default 85. */
  readonly failurePercentageThreshold?: number;
  /** failurePercentageMinimumHosts: the failure-percentage rule runs only with at least this many instances. Default 5. */
  readonly failurePercentageMinimumHosts?: number;
  /** failurePercentageRequestVolume: an instance needs at least this many calls in the interval to be judged by percentage. Default 50. */
  readonly failurePercentageRequestVolume?: number;
}

/** DEFAULT_EJECTION holds the defaults: Envoy's consecutive_5xx and gRFC A50's failure percentage. */
export const DEFAULT_EJECTION: Required<EjectionOptions> = Object.freeze({
  consecutiveFailures: 5,
  intervalMs: 10_000,
  baseEjectionTimeMs: 30_000,
  maxEjectionTimeMs: 300_000,
  maxEjectionPercent: 10,
  failurePercentageThreshold: 85,
  failurePercentageMinimumHosts: 5,
  failurePercentageRequestVolume: 50,
});

/** EjectionReason says which rule ejected an instance. */
export type EjectionReason = "consecutive_failures" | "failure_percentage" | "trial_failed";

/** EjectionEvent is emitted when an instance is ejected or restored; times are the ejector clock's milliseconds. */
export type EjectionEvent =
  | { readonly type: "ejected"; readonly instanceId: string; readonly reason: EjectionReason; readonly ejections: number; readonly durationMs: number; readonly at: number }
  | { readonly type: "restored"; readonly instanceId: string; readonly at: number };

/** EjectionCounters are an ejector's totals so far and how many instances are ejected (or on trial) now. */
export interface EjectionCounters {
  readonly ejectedTotal: number;
  readonly restoredTotal: number;
  readonly ejected: number;
}

type Phase = "healthy" | "ejected" | "trial";

interface Entry {
  phase: Phase;
  consecutive: number;
  ejections: number;
  until: number;
  trialTakenAt: number | undefined;
  successes: number;
  failures: number;
}

/** validateEjectionOptions fills in the defaults and throws a RangeError naming the field and the rule. */
export function validateEjectionOptions(o: EjectionOptions = {}): Required<EjectionOptions> {
  const v = { ...DEFAULT_EJECTION, ...stripUndefined(o) };
  const int = (name: keyof EjectionOptions, min: number, max = Number.MAX_SAFE_INTEGER): void => {
    const x = v[name];
    if (!Number.isInteger(x) || x < min || x > max) {
      throw new RangeError(`ejection.${name}: must be an integer ${min}..${max === Number.MAX_SAFE_INTEGER ? "" : max}, got ${x}`);
    }
  };
  int("consecutiveFailures", 0);
  int("intervalMs", 1);
  int("baseEjectionTimeMs", 1);
  int("maxEjectionTimeMs", 0);
  int("maxEjectionPercent", 0, 100);
  int("failurePercentageThreshold", 0, 100);
  int("failurePercentageMinimumHosts", 0);
  int("failurePercentageRequestVolume", 1);
  return v;
}

function stripUndefined(o: EjectionOptions): EjectionOptions {
  return Object.fromEntries(Object.entries(o).filter(([, x]) => x !== undefined)) as EjectionOptions;
}

/**
 * OutlierEjector decides which instances of ONE service a client's pick
 * may choose, from the outcomes of the calls the client made. It is local:
 * it never changes the registry. Members are the instances the client
 * holds (retain); report records an outcome; allowed filters candidates;
 * picked tells it which instance a pick chose (a trial is taken that way).
 */
export class OutlierEjector {
  private readonly o: Required<EjectionOptions>;
  private readonly entries = new Map<string, Entry>();
  private members: readonly string[] = [];
  private nextSweep: number;
  private ejectedTotal = 0;
  private restoredTotal = 0;
  /** notHealthy counts the entries ejected or on trial. */
  private notHealthy = 0;
  /** gen changes whenever the set allowed() could return may change, so a pick can keep its narrowed candidates until it does. */
  private gen = 0;
  /** wake is the earliest instant expire has work (an ejection's end, a taken trial's release); undefined: none. */
  private wake: number | undefined;

  constructor(
    options: EjectionOptions,
    private readonly now: () => number,
    private readonly onEvent: (e: EjectionEvent) => void = () => undefined,
  ) {
    this.o = validateEjectionOptions(options);
    this.nextSweep = now() + this.o.intervalMs;
  }

  /** retain sets the members, in instance_id order: state of instances no longer held is dropped, new ones start afresh. */
  retain(ids: readonly string[]): void {
    this.advance(this.now());
    const keep = new Set(ids);
    for (const [id, e] of this.entries) {
      if (keep.has(id)) continue;
      if (e.phase !== "healthy") this.notHealthy--;
      this.entries.delete(id);
    }
    for (const id of ids) if (!this.entries.has(id)) this.entries.set(id, fresh());
    this.members = ids;
  }

  /** report records one call outcome of a member; outcomes for an ejected instance (late answers) are ignored. */
  report(id: string, success: boolean): void {
    const now = this.now();
    this.advance(now);
    const e = this.entries.get(id);
    if (e === undefined || e.phase === "ejected") return;
    if (e.phase === "trial") {
      if (success) {
        e.phase = "healthy";
        e.consecutive = 0;
        e.trialTakenAt = undefined;
        this.notHealthy--;
        this.gen++;
        this.restoredTotal++;
        this.onEvent({ type: "restored", instanceId: id, at: now });
      } else {
        this.eject(id, e, now, "trial_failed", true);
      }
      return;
    }
    if (success) {
      e.successes++;
      e.consecutive = 0;
      return;
    }
    e.failures++;
    e.consecutive++;
    if (this.o.consecutiveFailures > 0 && e.consecutive >= this.o.consecutiveFailures) {
      this.eject(id, e, now, "consecutive_failures", false);
    }
  }

  /**
   * allowed returns the candidates a pick may choose: healthy ones, and
   * instances whose ejection ended and whose single trial is not taken. When
   * that leaves none, it returns every candidate (a pick never fails only
   * because of ejection). Candidates that are not members pass.
   */
  allowed(ids: readonly string[]): readonly string[] {
    this.advance(this.now());
    if (this.notHealthy === 0) return ids;
    const out = ids.filter((id) => this.available(this.entries.get(id)));
    return out.length === 0 ? ids : out;
  }

  /**
   * generation brings the ejector up to now and returns a number that
   * changes whenever allowed() may answer differently, or undefined when
   * nothing is ejected (allowed returns its argument): a pick keeps its
   * narrowed candidates while it holds.
   */
  generation(): number | undefined {
    this.advance(this.now());
    return this.notHealthy === 0 ? undefined : this.gen;
  }

  /** picked tells the ejector a pick chose id: an instance on trial is then taken until an outcome is reported or an interval passes. */
  picked(id: string): void {
    const now = this.now();
    this.advance(now);
    const e = this.entries.get(id);
    if (e?.phase === "trial" && e.trialTakenAt === undefined) {
      e.trialTakenAt = now;
      this.gen++;
      this.wakeAt(now + this.o.intervalMs);
    }
  }

  /** counters returns the totals so far and the instances ejected or on trial now. */
  counters(): EjectionCounters {
    this.advance(this.now());
    return { ejectedTotal: this.ejectedTotal, restoredTotal: this.restoredTotal, ejected: this.notHealthy };
  }

  /** available: healthy, or on trial with the trial not taken (a taken trial is released by expire after an interval with no outcome). */
  private available(e: Entry | undefined): boolean {
    return e === undefined || e.phase === "healthy" || (e.phase === "trial" && e.trialTakenAt === undefined);
  }

  private wakeAt(t: number): void {
    if (this.wake === undefined || t < this.wake) this.wake = t;
  }

  /** eject ejects e unless max_ejection_percent forbids it (a failed trial was counted already: forced). */
  private eject(id: string, e: Entry, at: number, reason: EjectionReason, forced: boolean): void {
    if (!forced) {
      const ejected = this.notHealthy;
      if (ejected > 0 && 100 * (ejected + 1) > this.o.maxEjectionPercent * this.members.length) return;
    }
    if (e.phase === "healthy") this.notHealthy++;
    e.ejections++;
    e.phase = "ejected";
    e.consecutive = 0;
    e.trialTakenAt = undefined;
    const durationMs = Math.min(this.o.baseEjectionTimeMs * e.ejections, Math.max(this.o.baseEjectionTimeMs, this.o.maxEjectionTimeMs));
    e.until = at + durationMs;
    this.wakeAt(e.until);
    this.gen++;
    this.ejectedTotal++;
    this.onEvent({ type: "ejected", instanceId: id, reason, ejections: e.ejections, durationMs, at });
  }

  private advance(now: number): void {
    while (this.nextSweep <= now) {
      this.sweep(this.nextSweep);
      this.nextSweep += this.o.intervalMs;
    }
    this.expire(now);
  }

  private expire(t: number): void {
    if (this.notHealthy === 0 || this.wake === undefined || t < this.wake) return;
    this.wake = undefined;
    for (const e of this.entries.values()) {
      if (e.phase === "ejected") {
        if (e.until <= t) {
          e.phase = "trial";
          e.trialTakenAt = undefined;
          this.gen++;
        } else {
          this.wakeAt(e.until);
        }
      } else if (e.phase === "trial" && e.trialTakenAt !== undefined) {
        if (t - e.trialTakenAt >= this.o.intervalMs) {
          e.trialTakenAt = undefined; // no outcome within an interval: the trial is offered again
          this.gen++;
        } else {
          this.wakeAt(e.trialTakenAt + this.o.intervalMs);
        }
      }
    }
  }

  /** sweep is the interval's work (A50's timer): expiries, the failure-percentage rule, counts reset, ejection counts decay. */
  private sweep(t: number): void {
    this.expire(t);
    const o = this.o;
    if (o.failurePercentageThreshold > 0 && this.members.length >= o.failurePercentageMinimumHosts) {
      for (const id of this.members) {
        const e = this.entries.get(id);
        if (e === undefined || e.phase !== "healthy") continue;
        const volume = e.successes + e.failures;
        if (volume >= o.failurePercentageRequestVolume && 100 * e.failures > o.failurePercentageThreshold * volume) {
          this.eject(id, e, t, "failure_percentage", false);
        }
      }
    }
    for (const e of this.entries.values()) {
      e.successes = 0;
      e.failures = 0;
      if (e.phase === "healthy" && e.ejections > 0) e.ejections--;
    }
  }
}

function fresh(): Entry {
  return { phase: "healthy", consecutive: 0, ejections: 0, until: 0, trialTakenAt: undefined, successes: 0, failures: 0 };
}
