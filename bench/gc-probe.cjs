// Preloaded into a benchmarked server (node --expose-gc --require
// bench/gc-probe.cjs): on SIGUSR2 it collects garbage fully and prints one
// line {"gcProbe": process.memoryUsage()} on stdout, so that a bench reads the
// live heap of the server from outside, after a forced GC.
"use strict";
process.on("SIGUSR2", () => {
  if (typeof global.gc !== "function") throw new Error("gc-probe.cjs needs node --expose-gc");
  global.gc();
  global.gc();
  process.stdout.write(`${JSON.stringify({ gcProbe: process.memoryUsage() })}\n`);
});
