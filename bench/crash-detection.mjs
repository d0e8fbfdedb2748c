#!/usr/bin/env node
// Crash detection: a child process registers one instance through the SDK's
// Session (one heartbeat stream), a Watcher in this process sees it ADDED,
// then the child is SIGKILLed; measures the time from the kill to the
// watcher's REMOVED event. The server runs in its own process with its
// default settings (grace 1 s, keepalive PING every 500 ms, 1 s timeout)
// unless MAXINE_GRACE / MAXINE_KEEPALIVE_* are set in the environment.
//
// Modes:
//   kill   SIGKILL: the process is gone, its kernel closes the connection.
//   stop   SIGSTOP: the process hangs, its connection stays open (only the
//          server's keepalive PING finds it).
//   stall  false removals: each trial's child blocks its event loop for
//          500 ms every second (long GC pauses) for 10 s; counts the
//          instances REMOVED meanwhile (should be 0).
//
// Usage: node bench/crash-detection.mjs [trials=10] [mode=kill]
import { spawn } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { createMaxineClient, Watcher } from "../sdks/typescript/dist/index.js";
import { barChart } from "./chart.mjs";
import { fmt, startServer, stats, writeResult } from "./support.mjs";

const TRIALS = Number(process.argv[2] ?? 10);
const MODE = process.argv[3] ?? "kill";
if (!["kill", "stop", "stall"].includes(MODE)) throw new Error(`mode ${MODE}: kill, stop or stall`);
const FIXTURE = fileURLToPath(new URL("../server/test/fixtures/session-child.mjs", import.meta.url));
const STALL_FOR_MS = 10_000;

const passed = Object.fromEntries(["MAXINE_GRACE", "MAXINE_KEEPALIVE_INTERVAL", "MAXINE_KEEPALIVE_TIMEOUT"].filter((k) => process.env[k]).map((k) => [k, process.env[k]]));
const server = await startServer(passed);
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
let falseRemovals = 0;
let stalls = 0;
const removedIds = new Set();
watcher.on("removed", (c) => removedIds.add(c.instance.instanceId));
try {
  for (let t = 0; t < TRIALS; t++) {
    const id = `crash-${t}`;
    const added = nextChange("added", id);
    const env = MODE === "stall" ? { ...process.env, STALL_MS: "500", STALL_EVERY_MS: "1000" } : process.env;
    const child = spawn(process.execPath, [FIXTURE, baseUrl, "crash", id, "10000"], { stdio: ["ignore", "pipe", "inherit"], env });
    const exited = once(child, "exit");
    const lines = [];
    await new Promise((resolve, reject) => {
      createInterface({ input: child.stdout }).on("line", (l) => {
        lines.push(l);
        if (l === "ready") resolve();
      });
      child.once("exit", (code) => reject(new Error(`child exited with ${code} before "ready"`)));
    });
    await added;
    if (MODE === "stall") {
      await new Promise((r) => setTimeout(r, STALL_FOR_MS));
      stalls += lines.filter((l) => l === "stalled").length;
      if (removedIds.has(id)) falseRemovals++;
      process.kill(child.pid, "SIGKILL");
      await exited;
      continue;
    }
    const removed = nextChange("removed", id);
    const killedAt = performance.now();
    process.kill(child.pid, MODE === "stop" ? "SIGSTOP" : "SIGKILL");
    samples.push((await removed) - killedAt);
    if (MODE === "stop") process.kill(child.pid, "SIGKILL");
    await exited;
  }
} finally {
  await watcher.close();
  await server.stop();
}

const settings = `grace ${process.env.MAXINE_GRACE ?? "1s"}, keepalive interval ${process.env.MAXINE_KEEPALIVE_INTERVAL ?? "500ms"}, timeout ${process.env.MAXINE_KEEPALIVE_TIMEOUT ?? "2s"}`;
if (MODE === "stall") {
  console.log(`false removals under GC-like pauses, ${TRIALS} trials (an SDK Session child blocking its event loop 500 ms every 1 s for ${STALL_FOR_MS / 1000} s; ${settings})`);
  console.log(`  instances removed: ${falseRemovals} of ${TRIALS}; pauses: ${stalls}`);
  writeResult("stall-removals", { scenario: "500 ms event-loop stalls every 1 s -> instances removed", settings, trials: TRIALS, pauses: stalls, removed: falseRemovals });
} else {
  const what = MODE === "stop" ? "SIGSTOP (hung process, connection left open)" : "SIGKILL";
  const s = stats(samples);
  console.log(`${MODE === "stop" ? "hung-process" : "crash"} detection, ${TRIALS} trials (${what} of an SDK Session child -> Watcher REMOVED; ${settings})`);
  console.log(`  median ${fmt(s.median)}, p99 ${fmt(s.p99)}, min ${fmt(s.min)}, max ${fmt(s.max)}`);
  console.log(`  samples: ${samples.map((x) => x.toFixed(1)).join(", ")}`);
  // the targets of issue 23 (a hung process, p99 <= 3 s) and of the crash detection row (p99 <= 1.5 s)
  const targetMs = MODE === "stop" ? 3000 : 1500;
  writeResult(
    MODE === "stop" ? "hung-detection" : "crash-detection",
    { scenario: `${what} of an SDK session process -> watcher REMOVED`, settings, trials: TRIALS, ...s, samples, target_p99_ms: targetMs },
    barChart({
      title: `${MODE === "stop" ? "Hung process (SIGSTOP)" : "Crash (SIGKILL)"} to watcher REMOVED, ${TRIALS} trials`,
      unit: "ms",
      groups: ["median", "p99", "max"],
      series: [
        { name: "Maxine", values: [s.median, s.p99, s.max] },
        { name: "target (p99)", values: [NaN, targetMs, NaN] },
      ],
    }),
  );
}
