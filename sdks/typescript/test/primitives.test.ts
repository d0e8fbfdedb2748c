import { describe, expect, it } from "vitest";
import { AsyncQueue } from "../src/async-queue.js";
import { Emitter } from "../src/emitter.js";

class Probe extends Emitter<{ ping: [n: number]; error: [err: unknown] }> {
  fire(n: number): void {
    this.emit("ping", n);
  }
  fail(err: unknown): void {
    this.emit("error", err);
  }
}

describe("Emitter", () => {
  it("delivers to listeners until they are removed, and once only once", () => {
    const p = new Probe();
    const seen: string[] = [];
    const off = p.on("ping", (n) => seen.push(`on${n}`));
    p.once("ping", (n) => seen.push(`once${n}`));
    p.fire(1);
    off();
    p.fire(2);
    expect(seen).toEqual(["on1", "once1"]);
    expect(p.listenerCount("ping")).toBe(0);
  });

  it("drops an error event nobody listens to instead of throwing", () => {
    expect(() => new Probe().fail(new Error("boom"))).not.toThrow();
  });
});

describe("AsyncQueue", () => {
  it("yields pushed values in order, including to a waiting reader, and ends", async () => {
    const q = new AsyncQueue<number>();
    q.push(1);
    const it = q[Symbol.asyncIterator]();
    expect(await it.next()).toEqual({ value: 1, done: false });
    const waiting = it.next();
    q.push(2);
    expect(await waiting).toEqual({ value: 2, done: false });
    q.push(3);
    q.end();
    q.push(4); // dropped
    expect(await it.next()).toEqual({ value: 3, done: false });
    expect(await it.next()).toEqual({ value: undefined, done: true });
  });

  it("ends when the reader throws into it (how connect-es aborts a request stream)", async () => {
    const q = new AsyncQueue<number>();
    const it = q[Symbol.asyncIterator]();
    const waiting = it.next();
    await expect(it.throw!(new Error("aborted"))).rejects.toThrow("aborted");
    expect(await waiting).toEqual({ value: undefined, done: true });
    expect(q.closed).toBe(true);
  });
});
