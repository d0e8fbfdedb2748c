import type { Clock, Timer } from "../domain/clock.js";

/** Job is one periodic probe the scheduler runs: its own interval and timeout, and the work of one run. */
export interface Job {
  readonly intervalMs: number;
  readonly timeoutMs: number;
  /** run does one probe; it must settle once signal aborts (the scheduler stops waiting for it then in any case). */
  run(signal: AbortSignal): Promise<void>;
  /** timedOut is called instead of waiting when a run outlives timeoutMs; run's late settlement is then ignored. */
  timedOut(startedAt: number): void;
}

/** SchedulerOptions configure a CheckScheduler. */
export interface SchedulerOptions {
  readonly clock: Clock;
  /** concurrency bounds the probes running at once, for all jobs (MAXINE_CHECK_CONCURRENCY). */
  readonly concurrency: number;
  /** random returns [0, 1): the first run of a job comes at a random point of its first interval. */
  readonly random?: () => number;
  /** slipped is told, for every run, how late it started after it was due (ms): queueing for a slot, a busy event loop. */
  readonly slipped?: (ms: number) => void;
}

/** Entry is one job's schedule. */
class Entry {
  dueAt = 0;
  timer: Timer | undefined;
  running = false;
  queued = false;
  removed = false;
  /** again is set when the job changed while running: the next run is rescheduled from scratch. */
  again = false;

  constructor(public job: Job) {}
}

/**
 * CheckScheduler runs periodic jobs (one per instance check) under three
 * rules: a job's run never starts while its previous run is still going
 * (the next is due an interval after the last was due, or at once if that
 * has passed); first runs are spread at random over the first interval, so
 * checks registered together (a restart, a replica taking over) do not
 * probe together; and at most `concurrency` runs go at once, the others
 * waiting in due order. Every run is bounded by its job's timeout. Built
 * by the probe worker's entry (probe-worker.ts); no state outside the
 * object.
 */
export class CheckScheduler {
  private readonly clock: Clock;
  private readonly concurrency: number;
  private readonly random: () => number;
  private readonly slipped: (ms: number) => void;
  private readonly entries = new Map<string, Entry>();
  private readonly waiting: Entry[] = [];
  private waitingHead = 0;
  private active = 0;
  private closed = false;
  /** aborts are the running probes' abort controllers: close ends them all. */
  private readonly aborts = new Set<AbortController>();
  /** peak is the most runs that were ever going at once (tests hold it to the limit). */
  peak = 0;

  constructor(opts: SchedulerOptions) {
    this.clock = opts.clock;
    this.concurrency = opts.concurrency;
    this.random = opts.random ?? Math.random;
    this.slipped = opts.slipped ?? (() => {});
  }

  /** size counts scheduled jobs. */
  get size(): number {
    return this.entries.size;
  }

  /** running counts runs going now. */
  get running(): number {
    return this.active;
  }

  /** queued counts due runs waiting for a slot. */
  get queued(): number {
    return this.waiting.length - this.waitingHead;
  }

  /**
   * set schedules job under id, replacing the job it had: with restart
   * (the probe changed: another kind, target or interval) the next run
   * comes at a random point of the new interval, else the timing is kept.
   */
  set(id: string, job: Job, restart: boolean): void {
    if (this.closed) return;
    let e = this.entries.get(id);
    if (e === undefined) {
      this.entries.set(id, (e = new Entry(job)));
      this.scheduleFirst(e);
      return;
    }
    e.job = job;
    if (!restart) return;
    if (e.running) {
      e.again = true;
      return;
    }
    e.timer?.cancel();
    e.timer = undefined;
    if (!e.queued) this.scheduleFirst(e);
  }

  /** delete stops a job: no further run starts (one going now finishes, and its result is the job's to ignore). */
  delete(id: string): void {
    const e = this.entries.get(id);
    if (e === undefined) return;
    this.entries.delete(id);
    e.removed = true;
    e.timer?.cancel();
    e.timer = undefined;
  }

  /** has reports whether id is scheduled. */
  has(id: string): boolean {
    return this.entries.has(id);
  }

  /** ids lists the scheduled jobs. */
  ids(): IterableIterator<string> {
    return this.entries.keys();
  }

  /** close stops every job and aborts the runs going now (their sockets close; their results are ignored). */
  close(): void {
    this.closed = true;
    for (const a of this.aborts) a.abort();
    this.aborts.clear();
    for (const id of [...this.entries.keys()]) this.delete(id);
    this.waiting.length = 0;
    this.waitingHead = 0;
  }

  private scheduleFirst(e: Entry): void {
    this.scheduleAt(e, this.clock.now() + Math.floor(this.random() * e.job.intervalMs));
  }

  private scheduleAt(e: Entry, at: number): void {
    e.dueAt = at;
    e.timer = this.clock.setTimer(() => {
      e.timer = undefined;
      this.due(e);
    }, at - this.clock.now());
  }

  private due(e: Entry): void {
    if (e.removed || this.closed) return;
    if (this.active < this.concurrency) {
      this.start(e);
      return;
    }
    e.queued = true;
    this.waiting.push(e);
  }

  private start(e: Entry): void {
    const startedAt = this.clock.now();
    this.slipped(Math.max(0, startedAt - e.dueAt));
    e.running = true;
    this.active++;
    if (this.active > this.peak) this.peak = this.active;
    const job = e.job;
    const abort = new AbortController();
    this.aborts.add(abort);
    let finished = false;
    const finish = (): void => {
      if (finished) return;
      finished = true;
      this.aborts.delete(abort);
      timer.cancel();
      this.active--;
      e.running = false;
      this.next(e, startedAt);
      this.drain();
    };
    const timer = this.clock.setTimer(() => {
      if (finished) return;
      abort.abort();
      job.timedOut(startedAt);
      finish();
    }, job.timeoutMs);
    job.run(abort.signal).then(finish, finish);
  }

  /** next schedules e's next run: an interval after this one was due, or now if that passed (a long queue); a changed job starts afresh. */
  private next(e: Entry, startedAt: number): void {
    if (e.removed || this.closed) return;
    if (e.again) {
      e.again = false;
      this.scheduleFirst(e);
      return;
    }
    const interval = e.job.intervalMs;
    let at = e.dueAt + interval;
    const now = this.clock.now();
    if (at < now) at = Math.max(now, startedAt + interval / 2); // behind: run soon, but never twice in half an interval
    this.scheduleAt(e, at);
  }

  private drain(): void {
    while (this.active < this.concurrency && this.waitingHead < this.waiting.length) {
      const e = this.waiting[this.waitingHead++]!;
      e.queued = false;
      if (!e.removed && !this.closed) this.start(e);
    }
    if (this.waitingHead > 1024 && this.waitingHead * 2 > this.waiting.length) {
      this.waiting.splice(0, this.waitingHead);
      this.waitingHead = 0;
    }
  }
}
