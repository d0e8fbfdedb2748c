#!/usr/bin/env node
// Reconnect storm: 10,000 Go SDK sessions (one instance each) and 100
// namespace-wide Go SDK watchers on one server; the server is stopped
// (SIGTERM) and a fresh one started on the same port, with nothing kept.
// Times, from the stop: the new server answering, every instance
// re-registered by its session, and every watcher's view complete again.
// The server runs with a V8 heap limit (--max-old-space-size, default
// 1024 MB); its peak RSS during the recovery is reported against it.
// Client: bench/loadgen storm (Go SDK) in its own process.
//
// Usage: node bench/reconnect-storm.mjs [sessions=10000] [watchers=100] [heap MB=1024]
import { readFileSync } from "node:fs";
import { freePort } from "./etcd.mjs";
import { buildLoadgen, fmt, loadgen, startServer, writeResult } from "./support.mjs";

const N = Number(process.argv[2] ?? 10000);
const W = Number(process.argv[3] ?? 100);
const HEAP_MB = Number(process.argv[4] ?? 1024);
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
let result;
try {
  result = await loadgen("storm", ["-addr", `127.0.0.1:${port}`, "-sessions", String(N), "-watchers", String(W)], (line, child) => {
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
    })();
  });
} finally {
  clearInterval(sampler);
  await server.stop();
}

console.log(`reconnect storm: ${N} Go SDK sessions, ${W} watchers, server restarted on the same port (heap limit ${HEAP_MB} MB)`);
console.log(`  new server answering ${fmt(result.back_ms)}, all re-registered ${fmt(result.reregistered_ms)}, all watchers converged ${fmt(result.converged_ms)} (from the stop)`);
console.log(`  the old server took ${fmt(timing.stoppedMs)} to drain and exit; the new one listened at ${fmt(timing.listeningMs)}`);
console.log(`  sessions lost: ${result.lost_sessions}; peak RSS of the new server during recovery ${(peak / 2 ** 20).toFixed(0)} MB`);
writeResult("reconnect-storm", { scenario: "reconnect storm", heapLimitMB: HEAP_MB, peakRssMB: peak / 2 ** 20, ...timing, ...result });
