import { describe, expect, it } from "vitest";
import type { WatchRequest } from "../src/watch/hub.js";
import type { WatchItem } from "../src/watch/items.js";
import type { Watcher } from "../src/watch/watcher.js";
import { brief, drain, instance, makeCore } from "./support/core.js";

// Issue 14: watches never go back in time, always catch up, and a watcher
// that does not read holds a cursor, not a copy of the changes.

const ALL = { tags: [], version: "", zone: "", metadata: {} };
const req = (over: Partial<WatchRequest> = {}): WatchRequest => ({
  namespace: "default",
  services: [],
  filter: ALL,
  resumeRevision: 0,
  registryId: "",
  ...over,
});

/** take reads at most n items. */
function take(w: Watcher, n: number): WatchItem[] {
  const out: WatchItem[] = [];
  while (out.length < n) {
    const item = w.take();
    if (item === undefined) break;
    out.push(item);
  }
  return out;
}

/** checkOrder checks that revisions never go back: events strictly increase, and nothing after a snapshot end is older than it. */
function checkOrder(items: readonly WatchItem[]): void {
  let last = 0;
  for (const item of items) {
    if (item.kind === "snapshot_end") {
      expect(item.revision, "a snapshot never goes back in time").toBeGreaterThanOrEqual(last);
      last = item.revision;
    } else if (item.kind === "event") {
      expect(item.revision, `event ${item.revision} after revision ${last}`).toBeGreaterThan(last);
      last = item.revision;
    } else if (item.kind === "progress") {
      expect(item.revision).toBeGreaterThanOrEqual(last);
      last = item.revision;
    }
  }
}

const added = (from: number, to: number): string[] => Array.from({ length: to - from + 1 }, (_, i) => `ADDED i${from + i}@${from + i}`);

describe("resume with a backlog larger than the watcher's bound (issue 14, sections 1 and 2)", () => {
  for (const overflow of ["reset", "close"] as const) {
    it(`queue 16, 40 Registers, resume from 1: replays revisions 2..40 exactly, then progress@40 (overflow ${overflow})`, async () => {
      const { registry, hub, store } = makeCore({ watch: { maxQueue: 16, historySize: 10_000, overflow } });
      for (let i = 1; i <= 40; i++) await registry.register(instance(`i${i}`), undefined);
      const w = hub.watch(req({ resumeRevision: 1, registryId: store.registryId }));
      const items = await drain(w);
      checkOrder(items);
      expect(items.map(brief)).toEqual([...added(2, 40), "progress@40"]);
      expect(w.resets).toBe(0);
      await registry.register(instance("i41"), undefined);
      expect((await drain(w)).map(brief)).toEqual(["ADDED i41@41"]);
      w.end();
    });
  }

  it("default settings, a 4,999-change backlog: replays it all, paced by the reader, with no reset (overflow close)", async () => {
    const { registry, hub, store } = makeCore({ watch: { maxQueue: 4096, historySize: 10_000, overflow: "close", snapshotChunk: 100 } });
    for (let i = 1; i <= 5_000; i++) await registry.register(instance(`i${i}`), undefined);
    const w = hub.watch(req({ resumeRevision: 1, registryId: store.registryId }));
    const items: WatchItem[] = [];
    // the client reads 100 messages at a time while 100 more changes are made between reads
    for (let round = 0; ; round++) {
      const got = take(w, 100);
      items.push(...got);
      if (got.length === 0) break;
      if (round < 30) for (let j = 0; j < 100; j++) await registry.register(instance(`j${round}-${j}`), undefined);
    }
    checkOrder(items);
    expect(items.slice(0, 4_999).map(brief)).toEqual(added(2, 5_000));
    expect(brief(items[4_999]!)).toBe("progress@5000");
    expect(items.length).toBe(5_000 + 3_000);
    expect(items.at(-1)).toMatchObject({ kind: "event", revision: 8_000 });
    expect(w.endedWith).toBeUndefined();
    w.end();
  });

  it("after an overflow reset, no event older than the snapshot follows it (the section 1 ordering bug)", async () => {
    const { registry, hub, store } = makeCore({ watch: { maxQueue: 16, historySize: 10_000, snapshotChunk: 1_000 } });
    for (let i = 1; i <= 40; i++) await registry.register(instance(`i${i}`), undefined);
    const w = hub.watch(req({ resumeRevision: 1, registryId: store.registryId }));
    const first = take(w, 5); // the client reads a little of the backlog, then stalls
    // 17 live changes while it stalls: past its bound of 16 behind the live head
    for (let i = 41; i <= 57; i++) await registry.register(instance(`i${i}`), undefined);
    expect(w.resets).toBe(1);
    const rest = await drain(w);
    const items = [...first, ...rest];
    checkOrder(items);
    expect(first.map(brief)).toEqual(added(2, 6));
    expect(rest.map(brief).at(-1)).toBe("end@57:OVERFLOW");
    await registry.register(instance("i58"), undefined);
    expect((await drain(w)).map(brief)).toEqual(["ADDED i58@58"]);
    w.end();
  });

  it("a resume whose backlog the history drops while it replays is reset, never sent stale events", async () => {
    const { registry, hub, store } = makeCore({ watch: { maxQueue: 100, historySize: 50, snapshotChunk: 1_000 } });
    for (let i = 1; i <= 40; i++) await registry.register(instance(`i${i}`), undefined);
    const w = hub.watch(req({ resumeRevision: 1, registryId: store.registryId }));
    const first = take(w, 3);
    for (let i = 41; i <= 120; i++) await registry.register(instance(`i${i}`), undefined); // the history keeps max(historySize, maxQueue) = 100 changes: 21..120
    const rest = await drain(w);
    checkOrder([...first, ...rest]);
    expect(first.map(brief)).toEqual(added(2, 4));
    expect(rest.map(brief).at(-1)).toBe("end@120:OVERFLOW");
    expect(rest.filter((i) => i.kind === "event")).toEqual([]);
    w.end();
  });

  it("under close, a live watcher past its bound ends with WATCH_OVERFLOW naming the setting; its resume then replays exactly", async () => {
    const { registry, hub, store } = makeCore({ watch: { maxQueue: 16, historySize: 10_000, overflow: "close" } });
    const w = hub.watch(req());
    expect((await drain(w)).map(brief)).toEqual(["end@0"]);
    for (let i = 1; i <= 3; i++) await registry.register(instance(`i${i}`), undefined);
    const seen = await drain(w);
    for (let i = 4; i <= 20; i++) await registry.register(instance(`i${i}`), undefined);
    await expect(w.next()).rejects.toThrow(/fell more than 16 changes behind \(MAXINE_WATCH_QUEUE\)/);
    const last = (seen.at(-1) as { revision: number }).revision;
    const resumed = hub.watch(req({ resumeRevision: last, registryId: store.registryId }));
    expect((await drain(resumed)).map(brief)).toEqual([...added(4, 20), "progress@20"]);
    resumed.end();
  });
});

describe("a watcher that does not read", () => {
  it("holds a count and a cursor: the changes are read from the shared history when it reads again", async () => {
    const { registry, hub } = makeCore({ watch: { maxQueue: 100, historySize: 1_000 } });
    const slow = hub.watch(req());
    const other = hub.watch(req({ services: ["other"] }));
    await drain(slow);
    await drain(other);
    for (let i = 1; i <= 60; i++) await registry.register(instance(`i${i}`), undefined);
    expect(slow.behind).toBe(60);
    expect(other.behind).toBe(0);
    expect(other.ready).toBe(false);
    expect((await drain(slow)).map(brief)).toEqual(added(1, 60));
    expect(slow.behind).toBe(0);
    slow.end();
    other.end();
  });

  it("is not overflowed by changes it does not see, however many", async () => {
    const { registry, hub } = makeCore({ watch: { maxQueue: 5, historySize: 20 } });
    const w = hub.watch(req({ services: ["payments"] }));
    await drain(w);
    await registry.register(instance("p1"), undefined);
    for (let i = 0; i < 100; i++) await registry.register(instance(`o${i}`, { service: "other" }), undefined);
    await registry.register(instance("p2"), undefined);
    // p1 (revision 1) left the history: the watcher fell behind what the server keeps, and is reset
    const items = (await drain(w)).map(brief);
    expect(items).toEqual(["snapshot[p1,p2]", "end@102:OVERFLOW"]);
    // a watcher with nothing unsent is never behind, whatever churns elsewhere
    for (let i = 0; i < 100; i++) await registry.register(instance(`x${i}`, { service: "other" }), undefined);
    await registry.register(instance("p3"), undefined);
    expect((await drain(w)).map(brief)).toEqual(["ADDED p3@203"]);
    w.end();
  });

  it("gets a progress bookmark while idle, one at a time", async () => {
    const { hub, clock } = makeCore({ watch: { progressIntervalMs: 1_000 } });
    const w = hub.watch(req());
    await drain(w);
    await clock.advance(1_000);
    await clock.advance(1_000);
    await clock.advance(1_000);
    expect((await drain(w)).map(brief)).toEqual(["progress@0"]);
    w.end();
  });
});
