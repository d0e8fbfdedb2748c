#!/usr/bin/env node
// Prints vitest's totals from its JSON report as one plain line,
// "vitest: N passed, N failed, N skipped", which CI reads. Exit 1 when the
// report is missing, counts no test, or failed as a whole: a run that tested
// nothing is a failure, and so is a file that failed outside its tests (a
// hook, or the leak check of server/test/support/no-leaks.ts).
import { existsSync, readFileSync } from "node:fs";

const file = ".tmp/vitest-report.json";
if (!existsSync(file)) {
  console.error(`${file} is missing: vitest did not run`);
  process.exit(1);
}
const r = JSON.parse(readFileSync(file, "utf8"));
const skipped = (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
const files = r.testResults ?? [];
const failedFiles = files.filter((f) => f.status !== "passed").length;
console.log(`vitest: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${skipped} skipped; ${failedFiles} of ${files.length} files failed`);
if (r.numTotalTests === 0 || failedFiles > 0 || r.success === false) process.exit(1);
