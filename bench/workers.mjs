#!/usr/bin/env node
// Using both cores (issue 23, target 6): the same load against the same
// server started with MAXINE_WORKERS=1 and MAXINE_WORKERS=2, in the same
// run, and the ratio 2 workers / 1 worker, on the Redis store or (STORE =
// memory) on the memory store, where the registry lives in the primary and
// every write is forwarded to it over IPC:
//   1. Discover throughput, C concurrent callers for SECONDS (after 2 s of
//      warm-up), over gRPC (h2load, nghttp2's C client, when it is on PATH:
//      4 connections, C streams in all; the Go loadgen otherwise, its calls
//      spread over 4 connections) and over Connect JSON on HTTP/1.1 (h2load
//      --h1 when present, else the Go loadgen, which needs a core of its own
//      at this rate; one connection per caller). Several connections,
//      because each connection is served by one worker.
//   2. Register throughput (Go loadgen register over gRPC, C writers spread
//      over 4 connections, each Register a new instance with a lease).
//   3. Watch fan-out at N watchers (Go loadgen fanout, 4 watcher
//      connections): one Register -> ADDED on all N, p99 of TRIALS.
// Both servers run at once (on Redis: on one private redis-server, with
// registries of their own), and the runs alternate between them, so that a drift of the
// machine's speed touches both alike. Nothing is pinned: the two workers
// need both cores, and the load client shares them, so each row gives the
// client's CPU and the server's (primary and workers, from /proc), in cores.
// Writes docs/benchmarks/workers.json (STORE=redis) or workers-memory.json.
//
// Usage: node bench/workers.mjs [seconds=10] [concurrency=50] [runs=3] [watchers=1000] [trials=20] [store=redis|memory]
import { execFileSync, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { availableParallelism, loadavg } from "node:os";
import { barChart } from "./chart.mjs";
import { buildLoadgen, h2loadDiscover, loadgen, startRedis, startServer, stats, writeResult } from "./support.mjs";

const SECONDS = Number(process.argv[2] ?? 10);
const C = Number(process.argv[3] ?? 50);
const RUNS = Number(process.argv[4] ?? 3);
const N = Number(process.argv[5] ?? 1000);
const TRIALS = Number(process.argv[6] ?? 20);
const STORE = process.argv[7] ?? "redis";
if (STORE !== "redis" && STORE !== "memory") throw new Error(`store: must be redis or memory, got ${STORE}`);
const CONNS = 4;
// watchers per connection stay within MAXINE_MAX_WATCHERS_PER_CONNECTION (1,000 by default), as in fanout-vs-etcd.mjs
const WATCH_CONNS = Math.max(CONNS, Math.ceil(N / 1000));
const H2LOAD = which("h2load");
const TICKS = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim());
buildLoadgen();

function which(cmd) {
  const r = spawnSync("sh", ["-c", `command -v ${cmd}`], { encoding: "utf8" });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

/** cpuOf is the CPU seconds (user and system, every thread) the given processes have used so far (Linux /proc). */
function cpuOf(pids) {
  let ticks = 0;
  for (const pid of pids) {
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").replace(/^.*\) /s, "").split(" ");
    ticks += Number(fields[11]) + Number(fields[12]); // utime, stime
  }
  return ticks / TICKS;
}

/** measured runs f() and adds the server's CPU, in cores, over its wall time, to its result. */
async function measured(server, f) {
  const cpu0 = cpuOf(server.pids);
  const t0 = performance.now();
  const r = await f();
  const seconds = (performance.now() - t0) / 1000;
  return { ...r, server_cpu: (cpuOf(server.pids) - cpu0) / seconds };
}

const redis = STORE === "redis" ? await startRedis() : undefined;
const servers = [];
try {
  for (const workers of [1, 2]) {
    const s = await startServer({
      ...(redis !== undefined
        ? { MAXINE_STORE: "redis", MAXINE_REDIS_URL: redis.url, MAXINE_REDIS_REGISTRY: `bench-workers-${workers}` }
        : { MAXINE_STORE: "memory", MAXINE_DATA_DIR: "off" }),
      // the Register runs create more instances than one principal may own by default
      MAXINE_MAX_INSTANCES_PER_PRINCIPAL: "10000000",
      MAXINE_MAX_INSTANCES: "10000000",
      MAXINE_WORKERS: String(workers),
      MAXINE_LOG_LEVEL: "info",
    });
    servers.push({ workers, ...s, pids: [s.child.pid, ...(s.listening.pids ?? [])] });
    for (let i = 0; i < 10; i++) {
      const res = await fetch(`http://127.0.0.1:${s.port}/maxine.registry.v1.RegistryService/Register`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ instance: { service: "discover-bench", instanceId: `d${i}`, host: "10.7.0.1", port: 8000 + i }, leaseTtl: "3600s" }),
      });
      if (!res.ok) throw new Error(`register: HTTP ${res.status}: ${await res.text()}`);
    }
  }

  const discover = { grpc: { 1: [], 2: [] }, json: { 1: [], 2: [] } };
  for (let i = 0; i < RUNS; i++) {
    for (const server of servers) {
      const addr = `127.0.0.1:${server.port}`;
      discover.grpc[server.workers].push(
        await measured(server, async () =>
          H2LOAD !== undefined ? h2loadDiscover(H2LOAD, server.port, { seconds: SECONDS, connections: CONNS, streams: Math.ceil(C / CONNS) }) : loadgen("discover", ["-addr", addr, "-protocol", "grpc", "-conns", String(CONNS), "-c", String(C), "-duration", `${SECONDS}s`]),
        ),
      );
      discover.json[server.workers].push(
        await measured(server, async () =>
          H2LOAD !== undefined
            ? h2loadDiscover(H2LOAD, server.port, { seconds: SECONDS, connections: C, streams: 1, protocol: "json" })
            : loadgen("discover", ["-addr", addr, "-protocol", "json", "-c", String(C), "-duration", `${SECONDS}s`]),
        ),
      );
    }
  }
  const register = { 1: [], 2: [] };
  for (let i = 0; i < RUNS; i++) {
    for (const server of servers) {
      const addr = `127.0.0.1:${server.port}`;
      register[server.workers].push(
        await measured(server, () => loadgen("register", ["-target", "maxine", "-addr", addr, "-protocol", "grpc", "-conns", String(CONNS), "-c", String(C), "-duration", `${SECONDS}s`])),
      );
    }
  }
  const fanout = {};
  for (const server of servers) {
    const r = await measured(server, () => loadgen("fanout", ["-target", "maxine", "-addr", `127.0.0.1:${server.port}`, "-n", String(N), "-conns", String(WATCH_CONNS), "-warmup", "2", "-trials", String(TRIALS)]));
    const all = stats(r.all_ms);
    fanout[server.workers] = { median_ms: all.median, p99_ms: all.p99, max_ms: all.max, receipt_p99_ms: stats(r.receipts_ms).p99, server_cpu: r.server_cpu, samples: r.all_ms };
  }

  // Each row is the run with the median throughput, with the range of all runs.
  const row = (runs) => {
    const sorted = [...runs].sort((a, b) => a.per_second - b.per_second);
    const m = sorted[Math.floor(sorted.length / 2)];
    return { per_second: m.per_second, p50_ms: m.p50_ms, p99_ms: m.p99_ms, errors: m.errors, client_cpu: m.client_cpu, server_cpu: m.server_cpu, min_per_second: sorted[0].per_second, max_per_second: sorted.at(-1).per_second, all: runs };
  };
  const result = {
    scenario: `MAXINE_WORKERS=2 against MAXINE_WORKERS=1, same ${STORE === "redis" ? "Redis-backed server" : "memory-store server (the registry in the primary with workers)"}, same load, same run`,
    store: STORE,
    seconds: SECONDS,
    concurrency: C,
    runs: RUNS,
    watchers: N,
    trials: TRIALS,
    connections: CONNS,
    cores: availableParallelism(),
    load_average: loadavg()[0],
    grpc_client: H2LOAD !== undefined ? "h2load (nghttp2's C client)" : "Go loadgen (grpc-go)",
    json_client: H2LOAD !== undefined ? "h2load --h1 (nghttp2's C client)" : "Go loadgen (net/http)",
    discover: {},
    register: {},
    fanout: { w1: fanout[1], w2: fanout[2], p99_ratio: fanout[2].p99_ms / fanout[1].p99_ms, median_ratio: fanout[2].median_ms / fanout[1].median_ms },
  };
  for (const protocol of ["grpc", "json"]) {
    const w1 = row(discover[protocol][1]);
    const w2 = row(discover[protocol][2]);
    result.discover[protocol] = { w1, w2, ratio: w2.per_second / w1.per_second };
  }
  {
    const w1 = row(register[1]);
    const w2 = row(register[2]);
    result.register = { w1, w2, ratio: w2.per_second / w1.per_second };
  }

  const f = (x, d = 0) => x.toFixed(d);
  console.log(`Discover, ${C} concurrent callers, ${SECONDS} s after 2 s warm-up, median of ${RUNS} runs each (alternating); gRPC client: ${result.grpc_client}, ${CONNS} connections; JSON client: ${result.json_client}, ${C} connections`);
  console.log("protocol | workers |   req/s (range)        | p50 ms | p99 ms | errors | client CPU | server CPU");
  for (const protocol of ["grpc", "json"]) {
    for (const w of ["w1", "w2"]) {
      const r = result.discover[protocol][w];
      console.log(
        `${protocol.padEnd(8)} | ${w.slice(1).padStart(7)} | ${f(r.per_second).padStart(7)} (${`${f(r.min_per_second)}–${f(r.max_per_second)}`.padEnd(13)}) | ${f(r.p50_ms, 2).padStart(6)} | ${f(r.p99_ms, 2).padStart(6)} | ${String(r.errors).padStart(6)} | ${f(r.client_cpu ?? NaN, 2).padStart(10)} | ${f(r.server_cpu, 2).padStart(10)}`,
      );
    }
    console.log(`${protocol}: 2 workers / 1 worker = ${f(result.discover[protocol].ratio, 2)}`);
  }
  console.log(`Register (gRPC, Go loadgen, ${C} writers on ${CONNS} connections), ${SECONDS} s, median of ${RUNS} runs:`);
  for (const w of ["w1", "w2"]) {
    const r = result.register[w];
    console.log(`  ${w.slice(1)} worker(s): ${f(r.per_second)} req/s (${f(r.min_per_second)}–${f(r.max_per_second)}), p99 ${f(r.p99_ms, 2)} ms, errors ${r.errors}, client CPU ${f(r.client_cpu ?? NaN, 2)}, server CPU ${f(r.server_cpu, 2)}`);
  }
  console.log(`  Register: 2 workers / 1 worker = ${f(result.register.ratio, 2)}`);
  console.log(`watch fan-out, ${N} watchers on ${WATCH_CONNS} connections, ${TRIALS} trials after 2 unmeasured:`);
  for (const w of ["w1", "w2"]) {
    const r = result.fanout[w];
    console.log(`  ${w.slice(1)} worker(s): median ${f(r.median_ms, 1)} ms, p99 ${f(r.p99_ms, 1)} ms (server CPU ${f(r.server_cpu, 2)} cores)`);
  }
  console.log(`  p99 2 workers / 1 worker = ${f(result.fanout.p99_ratio, 2)} (lower is better)`);
  writeResult(
    STORE === "redis" ? "workers" : "workers-memory",
    result,
    barChart({
      title: `2 workers against 1 process, ${STORE} store (median of ${RUNS})`,
      unit: "requests/s",
      groups: ["Discover, gRPC", "Discover, Connect JSON", "Register, gRPC"],
      series: ["w1", "w2"].map((w) => ({
        name: w === "w1" ? "1 process" : "2 workers",
        values: [result.discover.grpc[w].per_second, result.discover.json[w].per_second, result.register[w].per_second],
      })),
    }),
  );
} finally {
  for (const s of servers) await s.stop();
  await redis?.stop();
}
