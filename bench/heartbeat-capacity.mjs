#!/usr/bin/env node
// Heartbeat capacity: N open Heartbeat streams (one instance each, as N
// service processes would hold), beating every TTL/3, held for a while.
// Prints, per N: streams opened, ack latency p50/p99 while held, and the
// server's resident memory per stream (RSS with the streams open minus RSS
// with the same instances registered and no stream: an upper bound of the
// heap a stream costs; RSS is sampled mid-hold). Client: bench/loadgen (Go, grpc-go) in its own
// process. Writes docs/benchmarks/heartbeat.{json,svg}.
//
// Usage: node bench/heartbeat-capacity.mjs [N list=1000,10000,50000] [hold seconds=15]
import { execFileSync, spawn } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { barChart } from "./chart.mjs";
import { startServer } from "./support.mjs";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const SIZES = (process.argv[2] ?? "1000,10000,50000").split(",").map(Number);
const HOLD = Number(process.argv[3] ?? 15);
const LOADGEN = `${ROOT}.tmp/bin/loadgen`;
execFileSync("go", ["-C", `${ROOT}bench/loadgen`, "build", "-o", LOADGEN, "."], { stdio: "inherit" });

/** rssBytes reads a process's resident set size from /proc. */
function rssBytes(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(m[1]) * 1024;
}

const rows = [];
for (const n of SIZES) {
  const server = await startServer({
    MAXINE_MAX_HEARTBEATS_PER_CONNECTION: "1000",
    MAXINE_MAX_STREAMS_PER_CONNECTION: "1000",
    MAXINE_MAX_HEARTBEAT_STREAMS: String(Math.max(100000, n)),
  });
  try {
    const idle = rssBytes(server.child.pid);
    let registered = 0;
    let held = 0;
    const result = await new Promise((resolve, reject) => {
      const child = spawn(LOADGEN, ["heartbeat", "-addr", `127.0.0.1:${server.port}`, "-streams", String(n), "-hold", `${HOLD}s`], {
        stdio: ["ignore", "pipe", "pipe"],
      });
      let out = "";
      child.stdout.on("data", (d) => (out += d));
      child.stderr.on("data", (d) => {
        const text = String(d);
        if (text.includes("REGISTERED")) registered = rssBytes(server.child.pid);
        if (text.includes("READY")) {
          // measured mid-hold: every stream open and beating
          setTimeout(() => (held = rssBytes(server.child.pid)), (HOLD * 1000) / 2);
        }
        const rest = text.replace(/^(REGISTERED|READY)\n/gm, "");
        if (rest !== "") process.stderr.write(rest);
      });
      child.once("exit", (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`loadgen exited with ${code}`))));
    });
    rows.push({
      n,
      opened: result.opened,
      failed: result.failed,
      unknownAcks: result.unknown_acks,
      beats: result.beats,
      ackP50: result.ack_p50_ms,
      ackP99: result.ack_p99_ms,
      ackMax: result.ack_max_ms,
      rssIdleMB: idle / 2 ** 20,
      rssRegisteredMB: registered / 2 ** 20,
      rssHeldMB: held / 2 ** 20,
      kbPerStream: (held - registered) / n / 1024,
      registerSec: result.register_s,
      openSec: result.open_s,
    });
  } finally {
    await server.stop();
  }
}

console.log(`heartbeat capacity, held ${HOLD} s per size, TTL 10 s (beats every 3.3 s); client: Go loadgen (grpc-go), 1000 streams per connection`);
console.log("       N   opened failed | ack p50 ms  p99 ms  max ms |   beats | RSS MB idle registered  held | KB per stream");
for (const r of rows) {
  console.log(
    `${String(r.n).padStart(8)} ${String(r.opened).padStart(8)} ${String(r.failed).padStart(6)} | ${r.ackP50.toFixed(2).padStart(10)} ${r.ackP99.toFixed(2).padStart(7)} ${r.ackMax.toFixed(1).padStart(7)} | ${String(r.beats).padStart(7)} | ${r.rssIdleMB.toFixed(0).padStart(11)} ${r.rssRegisteredMB.toFixed(0).padStart(10)} ${r.rssHeldMB.toFixed(0).padStart(5)} | ${r.kbPerStream.toFixed(1).padStart(9)}`,
  );
}
const outDir = `${ROOT}docs/benchmarks`;
mkdirSync(outDir, { recursive: true });
writeFileSync(`${outDir}/heartbeat.json`, JSON.stringify({ scenario: "heartbeat capacity", holdSeconds: HOLD, date: new Date().toISOString(), rows }, null, 2) + "\n");
writeFileSync(
  `${outDir}/heartbeat.svg`,
  barChart({
    title: "Heartbeat capacity: ack latency while N streams beat every TTL/3",
    unit: "ms",
    log: true,
    groups: rows.map((r) => `N = ${r.n}`),
    series: [
      { name: "ack p50", values: rows.map((r) => r.ackP50) },
      { name: "ack p99", values: rows.map((r) => r.ackP99) },
    ],
  }),
);
console.log(`wrote ${outDir}/heartbeat.json and heartbeat.svg`);
