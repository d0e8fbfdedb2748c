import { describe, expect, it } from "vitest";
import { Backoff, backoffDelay, beatDelay, DEFAULT_BACKOFF } from "../src/backoff.js";
import { sleep, within } from "../src/timers.js";
import { TrackingTimers } from "./support/tracking-timers.js";

describe("backoffDelay", () => {
  it("draws from [0, base * 2^attempt) and caps at max (full jitter)", () => {
    const almostOne = () => 0.999999;
    expect(backoffDelay(0, 100, 5000, almostOne)).toBe(99);
    expect(backoffDelay(1, 100, 5000, almostOne)).toBe(199);
    expect(backoffDelay(3, 100, 5000, almostOne)).toBe(799);
    expect(backoffDelay(6, 100, 5000, almostOne)).toBe(4999); // 6400 capped
    expect(backoffDelay(1000, 100, 5000, almostOne)).toBe(4999); // no overflow to Infinity/NaN
    expect(backoffDelay(5, 100, 5000, () => 0)).toBe(0);
    expect(backoffDelay(2, 100, 5000, () => 0.5)).toBe(200);
  });
});

describe("beatDelay", () => {
  it("draws a session's next beat from the interval ±10 %", () => {
    expect(beatDelay(300, () => 0)).toBeCloseTo(270);
    expect(beatDelay(300, () => 0.5)).toBeCloseTo(300);
    expect(beatDelay(300, () => 0.999999)).toBeCloseTo(330, 3);
    const draws = Array.from({ length: 1000 }, () => beatDelay(300));
    expect(Math.min(...draws)).toBeGreaterThanOrEqual(270);
    expect(Math.max(...draws)).toBeLessThan(330);
    expect(Math.max(...draws) - Math.min(...draws)).toBeGreaterThan(40); // spread, not one value
  });
});

describe("Backoff", () => {
  it("doubles its cap per failure and starts over after reset", () => {
    const b = new Backoff({ baseMs: 10, maxMs: 1000, random: () => 0.999999 });
    expect([b.next(), b.next(), b.next(), b.next()]).toEqual([9, 19, 39, 79]);
    expect(b.attempts).toBe(4);
    b.reset();
    expect(b.attempts).toBe(0);
    expect(b.next()).toBe(9);
  });

  it("defaults to 100 ms doubling up to 5 s", () => {
    const b = new Backoff({ random: () => 0.999999 });
    expect(DEFAULT_BACKOFF).toEqual({ baseMs: 100, maxMs: 5000 });
    const delays = Array.from({ length: 10 }, () => b.next());
    expect(delays[0]).toBe(99);
    expect(Math.max(...delays)).toBe(4999);
  });

  it("spreads delays over the whole window with the default random", () => {
    const b = new Backoff({ baseMs: 1000, maxMs: 1000 });
    const delays = Array.from({ length: 400 }, () => b.next());
    expect(Math.min(...delays)).toBeLessThan(100);
    expect(Math.max(...delays)).toBeGreaterThan(900);
    expect(delays.every((d) => d >= 0 && d < 1000)).toBe(true);
  });

  it("rejects nonsense bounds", () => {
    expect(() => new Backoff({ baseMs: 0 })).toThrow(/baseMs/);
    expect(() => new Backoff({ baseMs: 200, maxMs: 100 })).toThrow(/maxMs/);
  });
});

describe("sleep and within", () => {
  it("sleep clears its timer when aborted and rejects with the reason", async () => {
    const timers = new TrackingTimers();
    const ac = new AbortController();
    const p = sleep(10_000, ac.signal, timers);
    expect(timers.pending).toBe(1);
    ac.abort(new Error("stop"));
    await expect(p).rejects.toThrow("stop");
    expect(timers.pending).toBe(0);
  });

  it("within reports a late promise and clears its timer either way", async () => {
    const timers = new TrackingTimers();
    expect(await within(new Promise(() => {}), 20, timers)).toBe(false);
    expect(await within(Promise.reject(new Error("x")), 1000, timers)).toBe(true);
    expect(timers.pending).toBe(0);
  });
});
