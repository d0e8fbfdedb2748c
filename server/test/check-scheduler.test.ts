import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { judge, type CheckCounts } from "../src/checks/check-state.js";
import { CheckScheduler, type Job } from "../src/checks/scheduler.js";
import type { CheckResult, CheckSpec } from "../src/domain/health.js";
import { FakeClock } from "./support/fake-clock.js";

// The check scheduler and the threshold rules, in memory with a fake clock
// (no sleeping): a probe never overlaps its previous one, first probes are
// spread over the first interval, the global concurrency limit holds, every
// run ends at its timeout; and judge turns outcomes into stored results as
// documented in registry.proto (HealthCheck, CheckResult).

/** Held is a job whose runs wait until the test releases them; it records starts and overlaps. */
class Held implements Job {
  starts: number[] = [];
  running = 0;
  overlaps = 0;
  timeouts = 0;
  private releases: (() => void)[] = [];
  constructor(
    private readonly clock: FakeClock,
    readonly intervalMs: number,
    readonly timeoutMs: number,
    private readonly hold = true,
  ) {}
  run(signal: AbortSignal): Promise<void> {
    this.starts.push(this.clock.now());
    if (++this.running > 1) this.overlaps++;
    return new Promise((resolve) => {
      const done = () => {
        this.running--;
        resolve();
      };
      if (!this.hold) return done();
      this.releases.push(done);
      signal.addEventListener("abort", done, { once: true });
    });
  }
  timedOut(): void {
    this.timeouts++;
  }
  releaseAll(): void {
    for (const r of this.releases.splice(0)) r();
  }
}

describe("CheckScheduler", () => {
  it("never starts a run while the previous one is going; the next comes an interval after the last was due", async () => {
    const clock = new FakeClock();
    const s = new CheckScheduler({ clock, concurrency: 10, random: () => 0 });
    const job = new Held(clock, 1_000, 10_000); // a run may outlive its interval (up to its timeout)
    s.set("a", job, true);
    await clock.advance(0);
    expect(job.starts.length).toBe(1);
    await clock.advance(3_500); // held across three intervals: no second start
    expect(job.starts.length).toBe(1);
    job.releaseAll();
    await clock.advance(0);
    // behind: runs soon, but not twice within half an interval of the last start
    await clock.advance(1);
    expect(job.starts.length).toBe(2);
    job.releaseAll();
    await clock.advance(5_000);
    job.releaseAll();
    expect(job.overlaps).toBe(0);
    s.close();
  });

  it("keeps a fixed rate: starts at due times one interval apart, not drifting with run time", async () => {
    const clock = new FakeClock(0);
    const s = new CheckScheduler({ clock, concurrency: 10, random: () => 0.5 });
    const job = new Held(clock, 1_000, 900, false);
    s.set("a", job, true);
    await clock.advance(10_000);
    expect(job.starts.slice(0, 5)).toEqual([500, 1_500, 2_500, 3_500, 4_500]);
    s.close();
  });

  it("spreads first runs over the first interval", async () => {
    const clock = new FakeClock(0);
    const s = new CheckScheduler({ clock, concurrency: 10_000 });
    const jobs = Array.from({ length: 1_000 }, () => new Held(clock, 10_000, 1_000, false));
    jobs.forEach((j, i) => s.set(`j${i}`, j, true));
    await clock.advance(9_999);
    const firsts = jobs.map((j) => j.starts[0]!);
    expect(firsts.every((t) => t >= 0 && t < 10_000)).toBe(true);
    // about 100 per tenth of the interval, none of them crowded
    for (let tenth = 0; tenth < 10; tenth++) {
      const n = firsts.filter((t) => t >= tenth * 1_000 && t < (tenth + 1) * 1_000).length;
      expect(n).toBeGreaterThan(50);
      expect(n).toBeLessThan(160);
    }
    s.close();
  });

  it("holds the concurrency limit; waiting runs start in due order as slots free, and their slip is reported", async () => {
    const clock = new FakeClock(0);
    const slips: number[] = [];
    const s = new CheckScheduler({ clock, concurrency: 10, random: () => 0, slipped: (ms) => slips.push(ms) });
    const jobs = Array.from({ length: 100 }, () => new Held(clock, 5_000, 4_000));
    jobs.forEach((j, i) => s.set(`j${i}`, j, true));
    await clock.advance(0);
    expect(s.running).toBe(10);
    expect(s.queued).toBe(90);
    await clock.advance(100);
    for (const j of jobs.slice(0, 10)) j.releaseAll();
    await clock.advance(0);
    expect(s.running).toBe(10);
    expect(jobs.slice(10, 20).every((j) => j.starts.length === 1)).toBe(true);
    expect(jobs.slice(20).every((j) => j.starts.length === 0)).toBe(true);
    expect(slips.slice(10, 20)).toEqual(Array(10).fill(100));
    for (let round = 0; round < 20; round++) {
      for (const j of jobs) j.releaseAll();
      await clock.advance(10);
    }
    expect(s.peak).toBe(10);
    expect(jobs.every((j) => j.starts.length >= 1 && j.overlaps === 0)).toBe(true);
    s.close();
  });

  it("ends a run at its timeout: timedOut is called, its slot frees, and it is aborted", async () => {
    const clock = new FakeClock(0);
    const s = new CheckScheduler({ clock, concurrency: 1, random: () => 0 });
    const stuck = new Held(clock, 1_000, 300); // never released
    const other = new Held(clock, 1_000, 300, false);
    s.set("stuck", stuck, true);
    s.set("other", other, true);
    await clock.advance(0);
    expect(stuck.starts.length).toBe(1);
    expect(other.starts.length).toBe(0); // waiting for the one slot
    await clock.advance(300);
    expect(stuck.timeouts).toBe(1);
    expect(stuck.running).toBe(0); // aborted: its signal ended it
    expect(other.starts).toEqual([300]);
    await clock.advance(2_000);
    expect(stuck.timeouts).toBe(3);
    s.close();
  });

  it("stops a deleted job, restarts a changed one with jitter, and aborts everything on close", async () => {
    const clock = new FakeClock(0);
    const s = new CheckScheduler({ clock, concurrency: 10, random: () => 0.25 });
    const a = new Held(clock, 1_000, 900, false);
    s.set("a", a, true);
    await clock.advance(2_000);
    expect(a.starts).toEqual([250, 1_250]);
    const b = new Held(clock, 4_000, 900, false);
    s.set("a", b, true); // changed: a new first run a quarter into the new interval
    await clock.advance(2_000);
    expect(a.starts.length).toBe(2);
    expect(b.starts).toEqual([3_000]);
    s.delete("a");
    await clock.advance(10_000);
    expect(b.starts.length).toBe(1);
    const held = new Held(clock, 1_000, 900);
    s.set("h", held, true);
    await clock.advance(300);
    expect(held.running).toBe(1);
    s.close();
    expect(held.running).toBe(0);
    await clock.advance(0); // the aborted run settles: its timeout timer goes with it
    expect(clock.pendingTimers).toBe(0);
  });
});

const CHECK: CheckSpec = {
  kind: "HTTP",
  port: 0,
  intervalMs: 1_000,
  timeoutMs: 500,
  healthyThreshold: 2,
  unhealthyThreshold: 3,
  deregisterAfterMs: 10_000,
  httpPath: "/healthz",
  httpMethod: "GET",
  statusMin: 200,
  statusMax: 399,
  grpcService: "",
};

describe("judge: thresholds and what is stored", () => {
  const fresh = (): CheckCounts => ({ passes: 0, failures: 0, failingSince: undefined });

  it("PENDING needs healthy_threshold passes in a row; PASSING needs unhealthy_threshold failures in a row to fail", () => {
    const c = fresh();
    let stored: CheckResult = { status: "PENDING", message: "", changedAt: 0 };
    expect(judge(CHECK, stored, c, true, "HTTP 200 from /healthz", 1_000).result).toBeUndefined();
    const up = judge(CHECK, stored, c, true, "HTTP 200 from /healthz", 2_000).result!;
    expect(up).toEqual({ status: "PASSING", message: "HTTP 200 from /healthz", changedAt: 2_000 });
    stored = up;
    // two failures, a pass, two failures: never three in a row, nothing stored
    for (const [pass, t] of [[false, 3], [false, 4], [true, 5], [false, 6], [false, 7]] as const) {
      expect(judge(CHECK, stored, c, pass, pass ? "HTTP 200 from /healthz" : "HTTP 503 from /healthz", t * 1_000)).toEqual({ result: undefined, deregister: false });
    }
    const down = judge(CHECK, stored, c, false, "connect ECONNREFUSED", 8_000).result!;
    expect(down).toEqual({ status: "FAILING", message: "connect ECONNREFUSED", changedAt: 8_000 });
    stored = down;
    // while failing, a new reason is stored (status and changedAt kept); the same reason is not
    expect(judge(CHECK, stored, c, false, "connect ECONNREFUSED", 9_000).result).toBeUndefined();
    expect(judge(CHECK, stored, c, false, "timeout after 0.5 s", 10_000).result).toEqual({ status: "FAILING", message: "timeout after 0.5 s", changedAt: 8_000 });
  });

  it("asks to deregister once failures have lasted deregister_after from the first failure of the run, and not after a pass resets it", () => {
    const c = fresh();
    const stored: CheckResult = { status: "PASSING", message: "HTTP 200 from /healthz", changedAt: 0 };
    expect(judge(CHECK, stored, c, false, "x", 1_000).deregister).toBe(false);
    expect(judge(CHECK, stored, c, false, "x", 10_999).deregister).toBe(false);
    expect(judge(CHECK, stored, c, true, "ok", 11_000).deregister).toBe(false);
    expect(judge(CHECK, stored, c, false, "x", 12_000).deregister).toBe(false);
    expect(judge(CHECK, stored, c, false, "x", 22_000).deregister).toBe(true);
    expect(judge({ ...CHECK, deregisterAfterMs: 0 }, stored, fresh(), false, "x", 1e12).deregister).toBe(false);
  });

  it("for any sequence of outcomes, the stored status is the one the last threshold run decided", () => {
    fc.assert(
      fc.property(fc.array(fc.boolean(), { maxLength: 60 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 4 }), (outcomes, healthy, unhealthy) => {
        const check = { ...CHECK, healthyThreshold: healthy, unhealthyThreshold: unhealthy, deregisterAfterMs: 0 };
        const c = fresh();
        let stored: CheckResult = { status: "PENDING", message: "", changedAt: 0 };
        outcomes.forEach((pass, i) => {
          const v = judge(check, stored, c, pass, pass ? "up" : "down", i);
          if (v.result !== undefined) stored = v.result;
        });
        // the reference: scan runs of equal outcomes
        let expected: CheckResult["status"] = "PENDING";
        let run = 0;
        outcomes.forEach((pass, i) => {
          run = i > 0 && outcomes[i - 1] === pass ? run + 1 : 1;
          if (pass && run >= healthy) expected = "PASSING";
          if (!pass && run >= unhealthy) expected = "FAILING";
        });
        expect(stored.status).toBe(expected);
      }),
      { numRuns: 300 },
    );
  });
});
