import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import type { Logger } from "../src/domain/logger.js";
import { WatchBudget, type BudgetEntry, type BudgetedOutput, type BudgetedWatcher } from "../src/rpc/watch-budget.js";
import { FakeClock } from "./support/fake-clock.js";

// The watch memory budget (MAXINE_WATCH_MEMORY_BUDGET) in memory, with a fake
// clock and fake watch streams: which streams it closes, in which order,
// when it looks again, and that it closes none while the sum fits. The real
// server over HTTP/2 and HTTP/1.1 is in watch-budget.test.ts.

/** CHECK_MS and STALL_MS mirror watch-budget.ts: the budget looks again 50 ms after the sum passes it, and cuts only streams idle for 250 ms. */
const CHECK_MS = 50;
const STALL_MS = 250;

/** FakeStream is a watch's watcher and stream at once: bytes is what it holds unsent; end and cut record what the budget did. */
class FakeStream implements BudgetedWatcher, BudgetedOutput {
  ended: unknown = undefined;
  cuts = 0;
  entry!: BudgetEntry;

  constructor(
    readonly name: string,
    public bytes: number,
    private readonly cutOrder: string[],
  ) {}

  buffered(): number {
    return this.cuts > 0 ? 0 : this.bytes;
  }

  end(error?: unknown): void {
    this.ended = error;
  }

  cut(): void {
    this.cuts++;
    this.cutOrder.push(this.name);
  }
}

function setup(limit: number) {
  const clock = new FakeClock();
  const warnings: Array<Record<string, unknown>> = [];
  const log: Logger = { debug() {}, info() {}, error() {}, warn: (obj: Record<string, unknown>) => void warnings.push(obj) };
  const budget = new WatchBudget(limit, clock, log);
  const cutOrder: string[] = [];
  /** open adds a stream that writes bytes now (update after its write, as watch-call.ts's drain does). */
  const open = (name: string, bytes: number): FakeStream => {
    const s = new FakeStream(name, bytes, cutOrder);
    s.entry = budget.add(s, s);
    budget.update(s.entry);
    return s;
  };
  /** write makes s write again now: it holds bytes unsent after it. */
  const write = (s: FakeStream, bytes: number): void => {
    s.bytes = bytes;
    budget.update(s.entry);
  };
  return { clock, budget, warnings, cutOrder, open, write };
}

describe("WatchBudget (fake clock, fake streams)", () => {
  it("closes nothing while the streams together hold no more than the budget, however long they stall", async () => {
    const { clock, budget, cutOrder, open, warnings } = setup(10_000);
    const streams = [open("a", 4000), open("b", 3000), open("c", 3000)]; // exactly the budget
    expect(clock.pendingTimers).toBe(0); // not passed: no check is even scheduled
    await clock.advance(10 * STALL_MS);
    expect(budget.buffered()).toBe(10_000);
    expect(cutOrder).toEqual([]);
    expect(streams.every((s) => s.ended === undefined)).toBe(true);
    expect(budget.closed).toBe(0);
    expect(warnings).toEqual([]);
  });

  it("closes the slowest stalled streams first (the oldest unread, then the most bytes), only until the rest fits", async () => {
    const { clock, budget, cutOrder, open, warnings } = setup(10_000);
    // written at t0, t0+10 and t0+20: by the check all have stalled, but at different times
    const oldSmall = open("old-small", 1000);
    await clock.advance(10);
    const midBig = open("mid-big", 6000);
    const midSmall = open("mid-small", 2000); // same time as mid-big: the bigger goes first
    await clock.advance(10);
    const young = open("young", 3000); // total 12,000: over by 2,000
    expect(budget.buffered()).toBe(12_000);
    await clock.advance(STALL_MS + CHECK_MS);
    // oldest first frees 1,000 (11,000 still over), then mid-big frees 6,000 (5,000 fits): the rest are kept
    expect(cutOrder).toEqual(["old-small", "mid-big"]);
    expect(midSmall.ended).toBeUndefined();
    expect(young.ended).toBeUndefined();
    expect(midSmall.cuts + young.cuts).toBe(0);
    for (const s of [oldSmall, midBig]) {
      expect(s.cuts).toBe(1);
      expect(s.ended).toBeInstanceOf(ConnectError);
      expect((s.ended as ConnectError).code).toBe(Code.ResourceExhausted);
      expect((s.ended as ConnectError).message).toContain("MAXINE_WATCH_MEMORY_BUDGET");
    }
    expect(budget.closed).toBe(2);
    expect(budget.streams).toBe(2);
    expect(budget.buffered()).toBe(5000);
    expect(warnings).toEqual([expect.objectContaining({ closed: 2, freedBytes: 7000, limit: "MAXINE_WATCH_MEMORY_BUDGET", budget: 10_000 })]);
    // under the budget again: nothing more is looked at or cut
    expect(clock.pendingTimers).toBe(0);
    await clock.advance(10 * STALL_MS);
    expect(cutOrder).toEqual(["old-small", "mid-big"]);
  });

  it("measures again at the check: bytes a client read since its last write do not count", async () => {
    const { clock, budget, cutOrder, open } = setup(10_000);
    const a = open("a", 6000);
    open("b", 6000); // 12,000: over, a check is due
    expect(clock.pendingTimers).toBe(1);
    a.bytes = 1000; // a's client read 5,000 bytes; its stream has not written since
    await clock.advance(STALL_MS + CHECK_MS);
    expect(cutOrder).toEqual([]);
    expect(budget.closed).toBe(0);
    expect(clock.pendingTimers).toBe(0);
  });

  it("while still over the budget, looks again until streams have stalled long enough, then cuts them", async () => {
    const { clock, budget, cutOrder, open, write } = setup(10_000);
    const reader = open("reader", 2000);
    const stalled = open("stalled", 9000); // 11,000: over
    // every CHECK_MS it looks: nobody has made no progress for STALL_MS yet, so nothing is cut, and it looks again;
    // reader keeps writing (its client reads), stalled does not
    for (let t = CHECK_MS; t < STALL_MS; t += CHECK_MS) {
      await clock.advance(CHECK_MS);
      expect(cutOrder).toEqual([]);
      expect(clock.pendingTimers).toBe(1);
      write(reader, 2000);
    }
    await clock.advance(CHECK_MS); // stalled wrote nothing for STALL_MS now
    expect(cutOrder).toEqual(["stalled"]);
    expect(reader.ended).toBeUndefined();
    expect(stalled.ended).toBeInstanceOf(ConnectError);
    expect(budget.closed).toBe(1);
    expect(budget.buffered()).toBe(2000);
    expect(clock.pendingTimers).toBe(0);
  });

  it("keeps looking while what is over is in flight to reading clients, and cuts none of them", async () => {
    const { clock, budget, cutOrder, open, write } = setup(10_000);
    const a = open("a", 6000);
    const b = open("b", 6000);
    for (let i = 0; i < 20; i++) {
      await clock.advance(CHECK_MS);
      write(a, 6000);
      write(b, 6000);
    }
    expect(cutOrder).toEqual([]);
    expect(clock.pendingTimers).toBe(1); // still over: the next check is due
    // both clients catch up: the next check finds the sum under the budget and stops
    a.bytes = b.bytes = 0;
    await clock.advance(CHECK_MS);
    expect(clock.pendingTimers).toBe(0);
    expect(budget.closed).toBe(0);
  });

  it("a removed stream (its watch ended) is neither counted nor cut", async () => {
    const { clock, budget, cutOrder, open } = setup(10_000);
    const gone = open("gone", 8000);
    open("kept", 4000); // 12,000: over
    budget.remove(gone.entry);
    await clock.advance(STALL_MS + CHECK_MS);
    expect(cutOrder).toEqual([]);
    expect(budget.streams).toBe(1);
    expect(budget.buffered()).toBe(4000);
  });
});
