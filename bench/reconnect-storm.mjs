#!/usr/bin/env node
// Reconnect storm: 10,000 Go SDK sessions (one instance each, over 100
// services) and 100 Go SDK watchers, each on one service (scope "service",
// how SDK watchers are used: a live copy of the instances to pick from) or
// each on the whole namespace (scope "namespace": 100 copies of all 10,000
// instances, a million events to deliver after the restart) on one server;
// the server is stopped
// (SIGTERM) and a fresh one started on the same port, with nothing kept.
// Times, from the stop: the new server answering, every instance
// re-registered by its session, and every watcher's view complete again.
// The server runs with a V8 heap limit (--max-old-space-size, default
// 1024 MB); its peak RSS during the recovery is reported against it.
// Client: bench/loadgen storm (Go SDK) in its own process.
//
// Usage: node bench/reconnect-storm.mjs [sessions=10000] [watchers=100] [heap MB=1024] [scope=service|namespace]
import { readFileSync } from "node:fs";
import { buildLoadgen, fmt, freePort, loadgen, startServer, writeResult } from "./support.mjs";

const N = Number(process.argv[2] ?? 10000);
const W = Number(process.argv[3] ?? 100);
const HEAP_MB = Number(process.argv[4] ?? 1024);
const SCOPE = process.argv[5] ?? "service";
buildLoadgen();

const port = await freePort();
const env = { MAXINE_PORT: String(port), MAXINE_MAX_HEARTBEATS_PER_CONNECTION: "1000", MAXINE_MAX_HEARTBEAT_STREAMS: String(Math.max(100000, N)) };
const nodeArgs = [`--max-old-space-size=${HEAP_MB}`];
const rss = (pid) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))[1]) * 1024;

let server = await startServer(env, nodeArgs);
/** timing: when the old server had exited and the new one listened, from the stop. */
const timing = { stoppedMs: 0, listeningMs: 0 };
let peak = 0;
let sampler;
let scraper;
/** counters: the new server's /metrics counters, sampled every 500 ms from its start. */
const counters = [];
let result;
try {
  result = await loadgen("storm", ["-addr", `127.0.0.1:${port}`, "-sessions", String(N), "-watchers", String(W), "-watch-scope", SCOPE], (line, child) => {
    if (line !== "READY") return void process.stderr.write(`${line}\n`);
    peak = rss(server.child.pid);
    console.log(`  ${N} sessions and ${W} watchers up; server RSS ${(peak / 2 ** 20).toFixed(0)} MB; restarting the server on port ${port}`);
    child.stdin.write("GO\n");
    void (async () => {
      const t0 = performance.now();
      await server.stop();
      timing.stoppedMs = performance.now() - t0;
      server = await startServer(env, nodeArgs);
      timing.listeningMs = performance.now() - t0;
      peak = 0;
      sampler = setInterval(() => {
        try {
          peak = Math.max(peak, rss(server.child.pid));
        } catch {
          // exited
        }
      }, 50);
      // The new server's call counters every 500 ms: what the recovery cost it.
      const scrape = async () => {
        const at = performance.now() - t0;
        try {
          const text = await (await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(2000) })).text();
          const row = { atMs: Math.round(at) };
          row.register_total = 0; // Register calls, over protocols and codes
          for (const m of text.matchAll(/^maxine_rpc_requests_total\{method="Register",[^}]*\} ([0-9.e+]+)$/gm)) row.register_total += Number(m[1]);
          for (const m of text.matchAll(/^maxine_(heartbeat_streams_opened_total|heartbeat_messages_total|beats_unknown_total|beats_registered_total|watchers_opened_total|watch_overflows_total|watch_snapshot_instances_total|watch_snapshot_kept_total|heartbeat_streams|instances) ([0-9.e+]+)$/gm)) {
            row[m[1]] = Number(m[2]);
          }
          counters.push(row);
        } catch {
          counters.push({ atMs: Math.round(at), error: "no answer within 2 s" });
        }
      };
      scraper = setInterval(() => void scrape(), 500);
    })();
  }, { GOMAXPROCS: "1" });
} finally {
  clearInterval(sampler);
  clearInterval(scraper);
  await server.stop();
}

console.log(`reconnect storm: ${N} Go SDK sessions, ${W} watchers (scope: ${SCOPE}), server restarted on the same port (heap limit ${HEAP_MB} MB)`);
console.log(`  new server answering ${fmt(result.back_ms)}, all re-registered ${fmt(result.reregistered_ms)}, all watchers converged ${fmt(result.converged_ms)} (from the stop)`);
console.log(`  the old server took ${fmt(timing.stoppedMs)} to drain and exit; the new one listened at ${fmt(timing.listeningMs)}`);
console.log(`  sessions lost: ${result.lost_sessions}; peak RSS of the new server during recovery ${(peak / 2 ** 20).toFixed(0)} MB`);
console.log(
  `  sessions' downtime p50 ${fmt(result.downtime_p50_ms)}, p99 ${fmt(result.downtime_p99_ms)}, max ${fmt(result.downtime_max_ms)}; failed attempts before reconnecting: ${JSON.stringify(result.reconnect_attempts)}; failures: ${JSON.stringify(result.errors)}`,
);
console.log(
  "  new server, from the stop: ms | instances | heartbeat streams open | streams opened | heartbeat messages | unknown beats | registered by a beat | registers | watchers opened | watch overflows | instances sent in snapshots | held instances kept (not sent again)",
);
for (const c of counters) {
  if (c.error !== undefined) console.log(`  ${String(c.atMs).padStart(6)} | ${c.error}`);
  else {
    const row = [c.instances, c.heartbeat_streams, c.heartbeat_streams_opened_total, c.heartbeat_messages_total, c.beats_unknown_total, c.beats_registered_total, c.register_total];
    row.push(c.watchers_opened_total, c.watch_overflows_total, c.watch_snapshot_instances_total, c.watch_snapshot_kept_total);
    console.log(`  ${String(c.atMs).padStart(6)} | ${row.join(" | ")}`);
  }
}
writeResult(SCOPE === "service" ? "reconnect-storm" : `reconnect-storm-${SCOPE}`, { scenario: "reconnect storm", heapLimitMB: HEAP_MB, peakRssMB: peak / 2 ** 20, ...timing, ...result, counters });
