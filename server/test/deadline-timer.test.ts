import { describe, expect, it } from "vitest";
import { DeadlineTimer } from "../src/domain/clock.js";
import { FakeClock } from "./support/fake-clock.js";

// DeadlineTimer (domain/clock.ts): the one lease-expiry timer of the
// registry (registry.ts) and of the primary's registry (cluster/registry-authority.ts).

describe("DeadlineTimer", () => {
  it("fires at the earliest deadline it was told of, once; a later deadline leaves it; after firing it can be armed again", async () => {
    const clock = new FakeClock();
    const start = clock.now();
    const fired: number[] = [];
    const t = new DeadlineTimer(clock, () => fired.push(clock.now() - start));
    t.arm(start + 500);
    t.arm(start + 200); // earlier: moves the timer
    t.arm(start + 900); // later: ignored
    t.arm(undefined); // nothing due: ignored
    await clock.advance(1000);
    expect(fired).toEqual([200]);
    t.arm(clock.now() + 300);
    await clock.advance(300);
    expect(fired).toEqual([200, 1300]);
  });

  it("cancel stops it, and a deadline after that sets it again", async () => {
    const clock = new FakeClock();
    let fired = 0;
    const t = new DeadlineTimer(clock, () => fired++);
    t.arm(clock.now() + 100);
    t.cancel();
    await clock.advance(200);
    expect(fired).toBe(0);
    t.arm(clock.now() + 100);
    await clock.advance(100);
    expect(fired).toBe(1);
  });
});
