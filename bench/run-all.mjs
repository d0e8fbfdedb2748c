#!/usr/bin/env node
// Runs every benchmark scenario in turn (each starts and stops its own
// servers on loopback) and writes docs/benchmarks/README.md: each figure
// next to its target. Not part of `npm test`. Takes about 35 minutes (the
// soak alone 10).
//
// The reconnect storm, whose figure varies most from run to run on this
// machine (7–12 s), runs three times per scope; the report gives the median
// run and the range.
//
// Usage: node bench/run-all.mjs   (or: npm run bench)
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { OUT_DIR } from "./support.mjs";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const run = (script, ...args) => execFileSync(process.execPath, [`${ROOT}bench/${script}`, ...args], { stdio: "inherit" });
const read = (name) => JSON.parse(readFileSync(`${OUT_DIR}/${name}.json`, "utf8"));

/** pairsOf lists a Discover ratio's pairs (", pairs 0.84 / 0.86 / 0.93"), or nothing for a result from before the bench paired its runs. */
const pairsOf = (disc, key) => (disc.pairRatios?.[key] === undefined ? "" : `, pairs ${disc.pairRatios[key].map((x) => x.toFixed(2)).join(" / ")}`);

/** stormRuns runs the reconnect storm three times and keeps the median run (by convergence) with every run's figures. */
function stormRuns(scope) {
  const name = scope === "service" ? "reconnect-storm" : `reconnect-storm-${scope}`;
  const runs = [];
  for (let i = 0; i < 3; i++) {
    run("reconnect-storm.mjs", "10000", "100", "1024", scope);
    runs.push(read(name));
  }
  const sorted = [...runs].sort((a, b) => a.converged_ms - b.converged_ms);
  const summary = runs.map((r) => ({ converged_ms: r.converged_ms, reregistered_ms: r.reregistered_ms, peakRssMB: r.peakRssMB, lost_sessions: r.lost_sessions }));
  writeFileSync(`${OUT_DIR}/${name}.json`, `${JSON.stringify({ ...sorted[1], runs: summary }, null, 2)}\n`);
}

// --report-only rewrites docs/benchmarks/README.md from the JSON already there.
if (!process.argv.includes("--report-only")) {
  run("crash-detection.mjs", "20");
  run("crash-detection.mjs", "20", "stop");
  run("crash-detection.mjs", "5", "stall");
  run("fanout-vs-etcd.mjs", "100,1000,10000", "30");
  run("heartbeat-capacity.mjs", "1000,10000,50000", "15");
  run("discover-throughput.mjs", "10", "50", "3");
  run("register-throughput.mjs", "10", "20", "3");
  run("sdk-pick.mjs");
  run("snapshot.mjs", "10000", "10");
  run("instance-heap.mjs", "100000");
  run("slow-watchers.mjs", "1000", "20000");
  run("redis-replicas.mjs", "1000", "10000", "20");
  run("redis-failover.mjs", "3");
  run("health-checks.mjs", "10000", "20", "5000");
  run("config-watch.mjs", "1000", "50", "64", "5");
  run("xds-fanout.mjs", "1000", "20");
  run("workers.mjs", "10", "50", "3", "1000", "20");
  run("workers.mjs", "10", "50", "3", "1000", "20", "memory");
  stormRuns("service");
  stormRuns("namespace");
  run("soak.mjs", "10");
}

const crash = read("crash-detection");
const hung = read("hung-detection");
const stall = read("stall-removals");
const fanout = read("fanout");
const hb = read("heartbeat");
const disc = read("discover");
const reg = read("register");
const pick = read("sdk-pick");
const snap = read("snapshot");
const heap = read("instance-heap");
const slow = read("slow-watchers");
const redis = read("redis-replicas");
const soak = read("soak");
const failover = read("redis-failover");
const checks = read("health-checks");
const storm = read("reconnect-storm");
const stormNs = read("reconnect-storm-namespace");
const config = read("config");
const xdsFan = read("xds-fanout");
// written by bench/workers.mjs since MAXINE_WORKERS came; absent from older runs
const workers = existsSync(`${OUT_DIR}/workers.json`) ? read("workers") : undefined;
// the same with the memory store (the registry in the primary), since it could run with workers
const workersMemory = existsSync(`${OUT_DIR}/workers-memory.json`) ? read("workers-memory") : undefined;
const ms = (x) => `${x.toFixed(1)} ms`;
const met = (ok) => (ok ? "met" : "**not met**");
const json = disc.rows.find((r) => r.server === "maxine" && r.protocol === "json");
const grpc = disc.rows.find((r) => r.server === "maxine" && r.protocol === "grpc");
const grpcH2load = disc.rows.find((r) => r.server === "maxine" && r.protocol === "grpc-h2load");
const plainHttp = disc.rows.find((r) => r.server !== "maxine");
const range = (r) => `${r.min_per_second.toFixed(0)}–${r.max_per_second.toFixed(0)}`;
const pickMin = Math.min(...pick.rows.filter((r) => r.strategy !== "RENDEZVOUS").map((r) => r.perSecond));
const rows = [
  ["Crash detection, p99 of 20 (SIGKILL → watcher REMOVED)", "≤ 1.5 s", `${ms(crash.p99)} (median ${ms(crash.median)})`, met(crash.p99 <= 1500)],
  ["Hung process, p99 of 20 (SIGSTOP, socket left open → watcher REMOVED; keepalive PINGs)", "≤ 3 s", `${ms(hung.p99)} (median ${ms(hung.median)}; ${hung.settings})`, met(hung.p99 <= 3000)],
  [`False removals: ${stall.trials} sessions whose event loop stalls 500 ms every 1 s`, "0 removed", `${stall.removed} removed in ${stall.pauses} pauses`, met(stall.removed === 0 && stall.pauses > 0)],
  ...fanout.rows.map((r) => [
    `Watch fan-out, N = ${r.n}: p99 of change → last watcher`,
    r.n === 10000 ? "≤ etcd, ≤ 50 ms" : "≤ etcd",
    `${ms(r.maxine.all.p99)} vs etcd ${ms(r.etcd.all.p99)} (ratio ${(r.maxine.all.p99 / r.etcd.all.p99).toFixed(2)})`,
    met(r.maxine.all.p99 <= r.etcd.all.p99 && (r.n !== 10000 || r.maxine.all.p99 <= 50)),
  ]),
  ...hb.rows.map((r) => [
    `Heartbeat capacity, ${r.n} streams`,
    r.n === 50000 ? "held; ≤ 20 KB/stream; ack p99 ≤ 50 ms" : "ack p99 ≤ 50 ms",
    `${r.opened} held, ack p99 ${ms(r.ackP99)}, ${r.kbPerStream.toFixed(1)} KB/stream (RSS)`,
    met(r.opened === r.n && r.ackP99 <= 50 && (r.n !== 50000 || r.kbPerStream <= 20)),
  ]),
  ["Discover, Connect JSON over HTTP/1.1, 50 concurrent", "≥ 16,000 req/s, p99 ≤ 10 ms", `${json.per_second.toFixed(0)} req/s (median of ${disc.runs}, range ${range(json)}), p99 ${ms(json.p99_ms)}; plain node:http reference ${plainHttp.per_second.toFixed(0)} req/s`, met(json.per_second >= 16000 && json.p99_ms <= 10)],
  ["Discover, gRPC, 50 concurrent", "p99 ≤ 10 ms", `${grpc.per_second.toFixed(0)} req/s (median of ${disc.runs}, range ${range(grpc)}), p99 ${ms(grpc.p99_ms)}`, met(grpc.p99_ms <= 10)],
  ...(grpcH2load === undefined
    ? []
    : [["Discover, gRPC, 50 concurrent, h2load (C) client: cross-check of the server without the Go client", "p99 ≤ 10 ms", `${grpcH2load.per_second.toFixed(0)} req/s (median of ${disc.runs}, range ${range(grpcH2load)}), p99 ${ms(grpcH2load.p99_ms)}`, met(grpcH2load.p99_ms <= 10)]]),
  ...(disc.ratios === undefined
    ? []
    : [
        [
          "Discover against a bare Node.js server of the same protocol answering the same bytes (bench/plain-http*-server.mjs), same client, same run, each Maxine run paired with the reference's run right after it (median of the pairs)",
          "gRPC ≥ 0.9 of bare node:http2, Connect JSON ≥ 0.9 of bare node:http",
          `gRPC ${disc.ratios.grpcVsBareHttp2.toFixed(2)} (h2load${pairsOf(disc, "grpcVsBareHttp2")}; Go client ${disc.ratios.grpcVsBareHttp2GoClient.toFixed(2)}), JSON ${disc.ratios.jsonVsBareHttp.toFixed(2)} (h2load${pairsOf(disc, "jsonVsBareHttp")}; Go client ${(disc.ratios.jsonVsBareHttpGoClient ?? NaN).toFixed(2)}); Maxine gRPC / JSON ${disc.ratios.grpcVsJson.toFixed(2)}, bare http2 / bare http ${disc.ratios.bareHttp2VsBareHttp.toFixed(2)}; client CPU (cores): ${disc.rows.map((r) => `${r.protocol} ${(r.client_cpu ?? NaN).toFixed(2)}`).join(", ")}`,
          met(disc.ratios.grpcVsBareHttp2 >= 0.9 && disc.ratios.jsonVsBareHttp >= 0.9),
        ],
      ]),
  [
    `Register (a new instance with a lease), ${reg.concurrency} concurrent, against etcd's lease Grant + Put over gRPC, same run`,
    "≥ 2 × etcd, gRPC and Connect JSON",
    `gRPC ${reg.rows.find((r) => r.name === "maxine grpc").per_second.toFixed(0)}/s, Connect JSON ${reg.rows.find((r) => r.name === "maxine json").per_second.toFixed(0)}/s; etcd ${reg.rows.find((r) => r.name === "etcd grpc").per_second.toFixed(0)}/s on the server's core, ${reg.rows.find((r) => r.name === "etcd grpc unpinned").per_second.toFixed(0)}/s unpinned (${reg.etcd}); ratios to etcd's better row: gRPC ${reg.ratios.grpcVsEtcd.toFixed(2)}, JSON ${reg.ratios.jsonVsEtcd.toFixed(2)} (median of ${reg.runs})`,
    met(reg.ratios.grpcVsEtcd >= 2 && reg.ratios.jsonVsEtcd >= 2),
  ],
  ["TypeScript SDK local pick (RR, random, weighted, consistent hash)", "≥ 1,000,000/s", `≥ ${(pickMin / 1e6).toFixed(2)} M/s (RENDEZVOUS: ${(pick.rows.find((r) => r.strategy === "RENDEZVOUS").perSecond / 1e6).toFixed(2)} M/s)`, met(pickMin >= 1e6)],
  ["Snapshot of 10,000 instances to a new watcher, p99", "≤ 200 ms", `${ms(snap.p99)} (median ${ms(snap.median)})`, met(snap.p99 <= 200)],
  [
    `Heap per registered instance at ${heap.instances.toLocaleString("en-US")} (zone, 2 tags, 2 metadata entries; memory store; V8 heap after a forced GC)`,
    `≤ ${heap.target_kb} KB`,
    `${(heap.heap_bytes_per_instance / 1024).toFixed(2)} KB (off the heap ${(heap.external_bytes_per_instance / 1024).toFixed(2)} KB); Discover of ${heap.instances / heap.services} instances (include_all, JSON) median ${ms(heap.discover_1pct_ms.median)}`,
    met(heap.heap_bytes_per_instance / 1024 <= heap.target_kb),
  ],
  [
    `Slow watchers: ${slow.slow} never reading + 1 healthy, ${slow.changes} changes`,
    "RSS growth ≤ 100 MB (≤ 100 KB per slow watcher); healthy watcher gets every change in order, latency unchanged (≤ 1.2 × the controls without them, before and after, same run); memory returns once they go",
    `RSS growth ${slow.rssGrowthMB.toFixed(0)} MB (${slow.kbPerSlowWatcher.toFixed(0)} KB per slow watcher), live heap + buffers ${slow.liveGrowthMB.toFixed(0)} MB; healthy: ${slow.healthy.outOfOrder} out of order, ${slow.healthy.resets} resets, latency median ${ms(slow.latency.withSlow.median)} vs ${ms(slow.latency.baseline.median)} without them (ratio ${slow.latency.medianRatio.toFixed(2)}, p99 ratio ${slow.latency.p99Ratio.toFixed(2)}; controls before/after ${ms(slow.latency.controls.before.median)} / ${ms(slow.latency.controls.after.median)}); live after they went, full GC: ${slow.retainedMB.toFixed(1)} MB retained`,
    met(slow.rssGrowthMB <= 100 && slow.healthy.outOfOrder === 0 && slow.healthy.resets === 0 && slow.latency.medianRatio <= 1.2 && slow.retainedMB <= 10),
  ],
  [
    `Redis Sentinel failover: the master SIGKILLed under a writer registering every 20 ms (down-after ${failover.sentinel.downAfterMs} ms, quorum 1)`,
    "writes accepted again (measured); no acknowledged write lost",
    `first Register sent after the kill acknowledged ${ms(failover.sentinel.writesAgainMs.median)} after it (median of ${failover.sentinel.trials.length}; ${ms(failover.sentinel.writesAgainMs.min)}–${ms(failover.sentinel.writesAgainMs.max)}); ${failover.sentinel.lost} acknowledged Registers missing`,
    met(failover.sentinel.lost === 0),
  ],
  ...(failover.cluster === undefined
    ? []
    : [
        [
          `Redis Cluster failover: the master of the registry's slot SIGKILLed under the same writer (cluster-node-timeout ${failover.cluster.nodeTimeoutMs} ms, 3 masters + 3 replicas)`,
          "writes accepted again (measured); no acknowledged write lost",
          `first Register sent after the kill acknowledged ${ms(failover.cluster.writesAgainMs.median)} after it (median of ${failover.cluster.trials.length}; ${ms(failover.cluster.writesAgainMs.min)}–${ms(failover.cluster.writesAgainMs.max)}); ${failover.cluster.lost} acknowledged Registers missing`,
          met(failover.cluster.lost === 0),
        ],
      ]),
  ["Redis mode: Register on replica A → watcher on replica B, p99 of 1,000", "≤ 20 ms", `${ms(redis.crossReplica.p99)} (p50 ${ms(redis.crossReplica.p50)}); ${redis.registrationsPerSecond.toFixed(0)} registrations/s; ${redis.keepAlive.commandsPerSecond.toFixed(0)} Redis commands/s keep 10,000 alive`, met(redis.crossReplica.p99 <= 20)],
  [
    `Soak: ${soak.minutes} min on one server, ${soak.sessions} SDK sessions opening and closing, ${soak.workersKilled} SIGKILLs of 5 % of them, ${soak.unaryRegisters} Connect JSON Registers, ${soak.watchers} resuming watchers`,
    "RSS and handles flat within 10 % after warm-up; no lost or duplicated change; every watcher equal to the registry; 0 error logs",
    `after ${soak.warmupSeconds} s, last third against first: RSS ${((soak.rssDrift - 1) * 100).toFixed(1)} %, handles ${((soak.handlesDrift - 1) * 100).toFixed(1)} %, heap ${((soak.heapDrift - 1) * 100).toFixed(1)} %; event-loop lag p99 ≤ ${ms(soak.lagP99MaxMs)}; watchers: ${soak.watch.gaps} lost, ${soak.watch.duplicates} duplicated, ${soak.watch.mismatched} unequal (${soak.watch.reconnects} resumes, ${soak.watch.resets} resets); ${soak.errorLogs} error logs`,
    met(soak.met),
  ],
  [
    `Active health checks: ${checks.instances.toLocaleString("en-US")} HTTP checks every ${checks.interval_ms / 1000} s against a local target, one registry process`,
    "registry CPU < 0.5 core; schedule slip p99 ≤ 100 ms; Discover latency within 20 % of a run without checks",
    `${checks.registry_cpu_cores.toFixed(2)} cores (${checks.probes_per_second.toFixed(0)} probes/s); slip p99 ≤ ${Number(checks.slip_p99_bucket_s) * 1000} ms (server histogram bucket), arrival gap deviation at the target p99 ${checks.target_gap_deviation_ms.p99} ms; Discover (gRPC, ${checks.discover.calls_per_second}/s) median ${ms(checks.discover.with_checks.median_ms)} vs ${ms(checks.discover.without_checks.median_ms)} without checks (ratio ${checks.discover.median_ratio.toFixed(2)}), p99 ratio ${checks.discover.p99_ratio.toFixed(2)}${checks.load_average > checks.cores / 2 ? ` (taken under load: load average ${checks.load_average.toFixed(1)} on ${checks.cores} cores, indicative)` : ""}`,
    met(checks.registry_cpu_cores < 0.5 && Number(checks.slip_p99_bucket_s) <= 0.1 && checks.discover.median_ratio <= 1.2),
  ],
  [
    `Service configuration: a Put seen by ${config.watchers.toLocaleString("en-US")} config watchers, p99 of ${config.trials} (side by side with etcd's watchers)`,
    "≤ 50 ms",
    `${ms(config.fanout.maxine.p99)} (median ${ms(config.fanout.maxine.median)}); etcd ${ms(config.fanout.etcd.p99)} (median ${ms(config.fanout.etcd.median)})`,
    met(config.fanout.maxine.p99 <= 50),
  ],
  [
    `Service configuration: Put throughput, ${config.writers} writers, durability on (fsync per group commit; data on ${config.disk}, etcd's too)`,
    "≥ 2,000/s",
    `${config.put.maxine.perSecond.toLocaleString("en-US")}/s (p99 ${ms(config.put.maxine.latencyMs.p99)}); etcd ${config.put.etcd.perSecond.toLocaleString("en-US")}/s (p99 ${ms(config.put.etcd.latencyMs.p99)})`,
    met(config.put.maxine.perSecond >= 2000),
  ],
  [
    `xDS: a Register seen by ${xdsFan.subscribers.toLocaleString("en-US")} raw ADS subscribers (EDS, ACKing), p99 of ${xdsFan.trials} (beside ${xdsFan.subscribers.toLocaleString("en-US")} WatchServices watchers, same run, same Go client)`,
    "≤ 50 ms",
    `${ms(xdsFan.xds.all.p99)} (median ${ms(xdsFan.xds.all.median)}); WatchServices ${ms(xdsFan.watch.all.p99)} (median ${ms(xdsFan.watch.all.median)}), ratio ${(xdsFan.xds.all.p99 / xdsFan.watch.all.p99).toFixed(2)}${xdsFan.load_average > xdsFan.cores / 2 ? ` (taken under load: load average ${xdsFan.load_average.toFixed(1)} on ${xdsFan.cores} cores, indicative)` : ""}`,
    met(xdsFan.xds.all.p99 <= 50),
  ],
  ...(workers === undefined
    ? []
    : [
        [
          `Both cores (MAXINE_WORKERS=2 against 1, Redis store, same run): Discover ${workers.concurrency} concurrent; watch fan-out at N = ${workers.watchers.toLocaleString("en-US")}`,
          "a gain: 2 workers / 1 worker > 1 for Discover; fan-out p99 reported",
          `gRPC ${workers.discover.grpc.w2.per_second.toFixed(0)} vs ${workers.discover.grpc.w1.per_second.toFixed(0)} req/s (ratio ${workers.discover.grpc.ratio.toFixed(2)}, ${workers.grpc_client}), Connect JSON ${workers.discover.json.w2.per_second.toFixed(0)} vs ${workers.discover.json.w1.per_second.toFixed(0)} req/s (ratio ${workers.discover.json.ratio.toFixed(2)}, ${workers.json_client ?? "Go loadgen"}); client CPU ${workers.discover.grpc.w2.client_cpu.toFixed(2)} / ${workers.discover.json.w2.client_cpu.toFixed(2)} cores of ${workers.cores} (median of ${workers.runs}); fan-out p99 ${ms(workers.fanout.w2.p99_ms)} vs ${ms(workers.fanout.w1.p99_ms)} (ratio ${workers.fanout.p99_ratio.toFixed(2)})`,
          met(workers.discover.grpc.ratio > 1 && workers.discover.json.ratio > 1),
        ],
      ]),
  ...(workersMemory === undefined
    ? []
    : [
        [
          `Both cores on the memory store (MAXINE_WORKERS=2 against 1, the registry in the primary, same run): Discover ${workersMemory.concurrency} concurrent; Register; watch fan-out at N = ${workersMemory.watchers.toLocaleString("en-US")}`,
          "a gain: 2 workers / 1 worker > 1 for Discover; Register and fan-out p99 reported",
          `gRPC ${workersMemory.discover.grpc.w2.per_second.toFixed(0)} vs ${workersMemory.discover.grpc.w1.per_second.toFixed(0)} req/s (ratio ${workersMemory.discover.grpc.ratio.toFixed(2)}), Connect JSON ${workersMemory.discover.json.w2.per_second.toFixed(0)} vs ${workersMemory.discover.json.w1.per_second.toFixed(0)} req/s (ratio ${workersMemory.discover.json.ratio.toFixed(2)}); client CPU ${workersMemory.discover.grpc.w2.client_cpu.toFixed(2)} / ${workersMemory.discover.json.w2.client_cpu.toFixed(2)} cores (median of ${workersMemory.runs}); Register ${workersMemory.register.w2.per_second.toFixed(0)} vs ${workersMemory.register.w1.per_second.toFixed(0)} /s (ratio ${workersMemory.register.ratio.toFixed(2)}: every write is committed by the primary); fan-out p99 ${ms(workersMemory.fanout.w2.p99_ms)} vs ${ms(workersMemory.fanout.w1.p99_ms)} (ratio ${workersMemory.fanout.p99_ratio.toFixed(2)})`,
          met(workersMemory.discover.grpc.ratio > 1 && workersMemory.discover.json.ratio > 1),
        ],
      ]),
  ...[storm, stormNs].map((st) => {
    const runs = st.runs ?? [st];
    const converged = runs.map((r) => r.converged_ms);
    const lost = runs.reduce((n, r) => n + r.lost_sessions, 0);
    const peak = Math.max(...runs.map((r) => r.peakRssMB));
    return [
      `Reconnect storm: restart under ${st.sessions} SDK sessions, ${st.watchers} watchers (${st.watch_scope === "namespace" ? "each on all instances" : "each on one service"})`,
      "all re-registered and converged ≤ 10 s, memory under the limit",
      `converged ${ms(st.converged_ms)} after the stop (median of ${runs.length}, range ${ms(Math.min(...converged))}–${ms(Math.max(...converged))}; median run: old server exited ${ms(st.stoppedMs)}, new one listening ${ms(st.listeningMs)}, all re-registered ${ms(st.reregistered_ms)}, sessions' downtime p99 ${ms(st.downtime_p99_ms ?? NaN)}); peak RSS ${peak.toFixed(0)} MB, heap limit ${st.heapLimitMB} MB; ${lost} sessions lost`,
      met(st.converged_ms <= 10000 && lost === 0 && peak < st.heapLimitMB),
    ];
  }),
];
const md = `# Benchmark results

Written by \`npm run bench\` (bench/run-all.mjs) on ${new Date().toISOString().slice(0, 10)}; the JSON files
beside this page hold every sample, the SVG files chart them. Machine: 2 cores,
servers and load clients on loopback; load clients are Go (bench/loadgen) unless
said otherwise. See bench/README.md for what each scenario does.

| scenario | target | result | |
|---|---|---|---|
${rows.map((r) => `| ${r.join(" | ")} |`).join("\n")}

When each scenario's figures were taken (a scenario run alone, or \`--report-only\`, leaves the others' older figures in the table): ${Object.entries({ crash, hung, stall, fanout, hb, disc, register: reg, pick, snap, heap, slow, redis, failover, soak, checks, config, xds: xdsFan, ...(workers !== undefined ? { workers } : {}), ...(workersMemory !== undefined ? { workersMemory } : {}), storm, stormNs })
  .map(([k, v]) => `${k} ${String(v.date ?? "unknown").slice(0, 16).replace("T", " ")}`)
  .join(", ")}.

![watch fan-out](fanout.svg) ![heartbeat capacity](heartbeat.svg) ![Discover throughput](discover.svg) ![xDS fan-out](xds-fanout.svg)

Where the time goes and what would move each target not met:
[docs/performance.md](../performance.md).
`;
writeFileSync(`${OUT_DIR}/README.md`, md);
console.log(md);
