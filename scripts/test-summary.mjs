#!/usr/bin/env node
// Prints vitest's totals from its JSON report as one plain line,
// "vitest: N passed, N failed, N skipped", which CI reads. Exit 1 when the
// report is missing or counts no test: a run that tested nothing is a failure.
import { existsSync, readFileSync } from "node:fs";

const file = ".tmp/vitest-report.json";
if (!existsSync(file)) {
  console.error(`${file} is missing: vitest did not run`);
  process.exit(1);
}
const r = JSON.parse(readFileSync(file, "utf8"));
const skipped = (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
console.log(`vitest: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${skipped} skipped`);
if (r.numTotalTests === 0) process.exit(1);
