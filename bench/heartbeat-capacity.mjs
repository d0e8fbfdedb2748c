#!/usr/bin/env node
// Heartbeat capacity: N open Heartbeat streams (one instance each, as N
// service processes would hold), beating every TTL/3, held for a while.
// After the last stream opens, one beat interval passes untimed (the
// opening burst); then every beat sent during the hold is timed.
// Prints, per N: streams opened, ack latency p50/p99 while held, and the
// server's resident memory per stream (RSS with the streams open minus RSS
// with the same instances registered and no stream: an upper bound of the
// heap a stream costs; RSS is sampled mid-hold). Client: bench/loadgen (Go, grpc-go) in its own
// process, with GOMAXPROCS=1 (one core for the client, one for the server).
// Instances are registered with a 10-minute lease (loadgen -register-ttl) so
// that none runs out while tens of thousands of streams open; an UNKNOWN ack
// means the run measured the wrong path, and is reported as a failure.
// Writes docs/benchmarks/heartbeat.{json,svg}.
//
// Usage: node bench/heartbeat-capacity.mjs [N list=1000,10000,50000] [hold seconds=15]
import { readFileSync } from "node:fs";
import { barChart } from "./chart.mjs";
import { buildLoadgen, loadgen, startServer, writeResult } from "./support.mjs";

const SIZES = (process.argv[2] ?? "1000,10000,50000").split(",").map(Number);
const HOLD = Number(process.argv[3] ?? 15);
buildLoadgen();

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
    const result = await loadgen("heartbeat", ["-addr", `127.0.0.1:${server.port}`, "-streams", String(n), "-hold", `${HOLD}s`], (line) => {
      if (line === "REGISTERED") registered = rssBytes(server.child.pid);
      else if (line === "READY") setTimeout(() => (held = rssBytes(server.child.pid)), (HOLD * 1000) / 2); // mid-hold
      else process.stderr.write(`${line}\n`);
    }, { GOMAXPROCS: "1", GOGC: "off", GOMEMLIMIT: "6GiB", GODEBUG: process.env.LOADGEN_GODEBUG ?? "" });
    rows.push({
      n,
      opened: result.opened,
      failed: result.failed,
      unknownAcks: result.unknown_acks,
      beats: result.beats,
      ackP50: result.ack_p50_ms,
      ackP99: result.ack_p99_ms,
      ackMax: result.ack_max_ms,
      ackMaxBySecond: result.ack_max_by_second_ms,
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

console.log(`heartbeat capacity, held ${HOLD} s per size, beats every 3.3 s (TTL/3 of the default 10-s TTL); client: Go loadgen (grpc-go, GOMAXPROCS=1), 1000 streams per connection`);
console.log("       N   opened failed | ack p50 ms  p99 ms  max ms |   beats | RSS MB idle registered  held | KB per stream");
for (const r of rows) {
  console.log(
    `${String(r.n).padStart(8)} ${String(r.opened).padStart(8)} ${String(r.failed).padStart(6)} | ${r.ackP50.toFixed(2).padStart(10)} ${r.ackP99.toFixed(2).padStart(7)} ${r.ackMax.toFixed(1).padStart(7)} | ${String(r.beats).padStart(7)} | ${r.rssIdleMB.toFixed(0).padStart(11)} ${r.rssRegisteredMB.toFixed(0).padStart(10)} ${r.rssHeldMB.toFixed(0).padStart(5)} | ${r.kbPerStream.toFixed(1).padStart(9)}`,
  );
}
for (const r of rows.filter((r) => r.unknownAcks > 0 || r.failed > 0)) {
  console.error(`N = ${r.n}: ${r.unknownAcks} UNKNOWN acks and ${r.failed} failed streams: this run did not measure a healthy registry`);
  process.exitCode = 1;
}
writeResult(
  "heartbeat",
  { scenario: "heartbeat capacity", holdSeconds: HOLD, rows },
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
