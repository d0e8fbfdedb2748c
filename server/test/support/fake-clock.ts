import type { Clock, Timer } from "../../src/domain/clock.js";

/** FakeClock is a Clock whose time moves only when a test advances it. */
export class FakeClock implements Clock {
  private t: number;
  private timers: Array<{ at: number; fn: () => void; id: number }> = [];
  private nextId = 1;

  constructor(start = 1_700_000_000_000) {
    this.t = start;
  }

  now(): number {
    return this.t;
  }

  setTimer(fn: () => void, ms: number): Timer {
    const entry = { at: this.t + Math.max(0, ms), fn, id: this.nextId++ };
    this.timers.push(entry);
    return { cancel: () => (this.timers = this.timers.filter((e) => e !== entry)) };
  }

  /** pendingTimers counts scheduled callbacks. */
  get pendingTimers(): number {
    return this.timers.length;
  }

  /** advance moves time forward, running due timers in order and letting their promises settle. */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      this.timers.sort((a, b) => a.at - b.at || a.id - b.id);
      const next = this.timers[0];
      if (next === undefined || next.at > end) break;
      this.timers.shift();
      this.t = next.at;
      next.fn();
      await flush();
    }
    this.t = end;
    await flush();
  }
}

async function flush(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve();
}
