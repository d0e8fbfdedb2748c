#!/usr/bin/env node
// Crash detection: a child process registers one instance through the SDK's
// Session (one heartbeat stream), a Watcher in this process sees it ADDED,
// then the child is SIGKILLed; measures the time from the kill to the
// watcher's REMOVED event. The server runs in its own process with its
// default grace (1 s) unless MAXINE_GRACE is set in the environment.
//
// Usage: node bench/crash-detection.mjs [trials=10]
import { spawn } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { createMaxineClient, Watcher } from "../sdks/typescript/dist/index.js";
import { fmt, startServer, stats, writeResult } from "./support.mjs";

const TRIALS = Number(process.argv[2] ?? 10);
const FIXTURE = fileURLToPath(new URL("../sdks/typescript/test/fixtures/register-child.mjs", import.meta.url));

const server = await startServer(process.env.MAXINE_GRACE ? { MAXINE_GRACE: process.env.MAXINE_GRACE } : {});
const baseUrl = `http://127.0.0.1:${server.port}`;
const watcher = new Watcher(createMaxineClient({ baseUrl }), { services: "crash" });
await watcher.ready();

/** nextChange resolves with the time of the next change of type for instanceId. */
function nextChange(type, instanceId) {
  return new Promise((resolve) => {
    const off = watcher.on(type, (c) => {
      if (c.instance.instanceId !== instanceId) return;
      off();
      resolve(performance.now());
    });
  });
}

const samples = [];
try {
  for (let t = 0; t < TRIALS; t++) {
    const id = `crash-${t}`;
    const added = nextChange("added", id);
    const child = spawn(process.execPath, [FIXTURE, baseUrl, "crash", id, "10000"], { stdio: ["ignore", "pipe", "inherit"] });
    const exited = once(child, "exit");
    await new Promise((resolve, reject) => {
      createInterface({ input: child.stdout }).on("line", (l) => l === "ready" && resolve());
      child.once("exit", (code) => reject(new Error(`child exited with ${code} before "ready"`)));
    });
    await added;
    const removed = nextChange("removed", id);
    const killedAt = performance.now();
    process.kill(child.pid, "SIGKILL");
    samples.push((await removed) - killedAt);
    await exited;
  }
} finally {
  await watcher.close();
  await server.stop();
}

const s = stats(samples);
console.log(`crash detection, ${TRIALS} trials (SIGKILL of an SDK Session child -> Watcher REMOVED; grace ${process.env.MAXINE_GRACE ?? "1s (default)"})`);
console.log(`  median ${fmt(s.median)}, p99 ${fmt(s.p99)}, min ${fmt(s.min)}, max ${fmt(s.max)}`);
console.log(`  samples: ${samples.map((x) => x.toFixed(1)).join(", ")}`);
writeResult("crash-detection", { scenario: "SIGKILL of an SDK session process -> watcher REMOVED", grace: process.env.MAXINE_GRACE ?? "1s", trials: TRIALS, ...s, samples });
