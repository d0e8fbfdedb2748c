/** LineOp is one line of a line diff: " " kept, "-" removed, "+" added. */
export type LineOp = [" " | "-" | "+", string];

/**
 * diffLines is a line diff by longest common subsequence, removals before
 * additions where both fit: what `maxine config diff` and the dashboard
 * show between two versions of a configuration value. The kept and removed
 * lines are a, the kept and added lines are b. O(len(a) * len(b)) time and
 * memory: for configuration values, not for large files.
 */
export function diffLines(a: readonly string[], b: readonly string[]): LineOp[] {
  const n = a.length;
  const m = b.length;
  // lcs[i][j]: the longest common subsequence of a[i..] and b[j..]
  const lcs = Array.from({ length: n + 1 }, () => new Array<number>(m + 1).fill(0));
  for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--) lcs[i]![j] = a[i] === b[j] ? lcs[i + 1]![j + 1]! + 1 : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
  const ops: LineOp[] = [];
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] === b[j]) {
      ops.push([" ", a[i]!]);
      i++;
      j++;
    } else if (i < n && (j === m || lcs[i + 1]![j]! >= lcs[i]![j + 1]!)) ops.push(["-", a[i++]!]);
    else ops.push(["+", b[j++]!]);
  }
  return ops;
}
