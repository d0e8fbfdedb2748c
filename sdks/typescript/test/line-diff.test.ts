import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { diffLines } from "../src/line-diff.js";

// diffLines, the line diff that `maxine config diff` and the dashboard show
// between two versions of a configuration value.

describe("config diff's line diff (property)", () => {
  it("its kept and removed lines are the old text, its kept and added lines the new, and it keeps a longest common subsequence", () => {
    const text = fc.array(fc.constantFrom("a", "b", "c", "{", "}"), { maxLength: 12 });
    fc.assert(
      fc.property(text, text, (a, b) => {
        const ops = diffLines(a, b);
        expect(ops.filter(([op]) => op !== "+").map(([, l]) => l)).toEqual(a);
        expect(ops.filter(([op]) => op !== "-").map(([, l]) => l)).toEqual(b);
        // the kept lines are as many as a longest common subsequence has (computed apart)
        const lcs = (x: string[], y: string[]): number => {
          const t = Array.from({ length: x.length + 1 }, () => new Array<number>(y.length + 1).fill(0));
          for (let i = 1; i <= x.length; i++) for (let j = 1; j <= y.length; j++) t[i]![j] = x[i - 1] === y[j - 1] ? t[i - 1]![j - 1]! + 1 : Math.max(t[i - 1]![j]!, t[i]![j - 1]!);
          return t[x.length]![y.length]!;
        };
        expect(ops.filter(([op]) => op === " ").length).toBe(lcs(a, b));
      }),
    );
  });
});
