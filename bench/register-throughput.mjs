#!/usr/bin/env node
// Register throughput against etcd (issue 23's second target): 20 concurrent
// writers for 10 s (after 2 s of warm-up), each call creating a new leased
// entry: a Maxine Register of a new instance with a lease TTL over gRPC (one
// HTTP/2 connection) and over Connect JSON (HTTP/1.1, a connection per
// writer), against etcd's equivalent over gRPC: a lease Grant, then a Put
// of a new key attached to it (clientv3, one client). RUNS runs each,
// alternating, each on a fresh server (so that every run starts empty);
// the table gives the median run and the range, and the ratios of Maxine to
// etcd in the same run.
//
// Client: bench/loadgen (Go) with GOMAXPROCS=1 on CPU 1; Maxine's main
// thread on CPU 0 (its helper threads unpinned), etcd wholly on CPU 0 (all
// its threads: a Go server would otherwise take the client's core too), as
// in bench/discover-throughput.mjs; and etcd again unpinned (free to use both
// cores, the client's too): the ratios are taken against etcd's better row.
// etcd's data dir is on /dev/shm
// (bench/etcd.mjs), so its fsyncs cost what Maxine's in-memory store costs.
// Writes docs/benchmarks/register.{json,svg}.
//
// Usage: node bench/register-throughput.mjs [seconds=10] [concurrency=20] [runs=3]
import { spawnSync } from "node:child_process";
import { barChart } from "./chart.mjs";
import { startEtcd } from "./etcd.mjs";
import { buildLoadgen, CAN_PIN, loadgen, startServer, writeResult } from "./support.mjs";

const SECONDS = Number(process.argv[2] ?? 10);
const C = Number(process.argv[3] ?? 20);
const RUNS = Number(process.argv[4] ?? 3);
const CLIENT_ENV = { GOMAXPROCS: "1" };
const SERVER_CPUS = "0";
const CLIENT_CPUS = "1";
// the run creates more instances than one principal may own by default (every caller is the one principal anonymous with authentication off)
const SERVER_ENV = { MAXINE_DATA_DIR: "off", MAXINE_MAX_INSTANCES_PER_PRINCIPAL: "10000000", MAXINE_MAX_INSTANCES: "10000000" };
const PINNING = CAN_PIN ? `servers on CPU ${SERVER_CPUS} (Maxine's main thread, etcd's every thread; etcd once more unpinned), client on CPU ${CLIENT_CPUS}` : "not pinned (no taskset)";
buildLoadgen();

const measure = (target, protocol, addr) =>
  loadgen("register", ["-target", target, "-addr", addr, "-protocol", protocol, "-c", String(C), "-duration", `${SECONDS}s`], undefined, CLIENT_ENV, { cpus: CLIENT_CPUS });

const runs = { "maxine grpc": [], "maxine json": [], "etcd grpc": [], "etcd grpc unpinned": [] };
let etcdVersion = "";
for (let i = 0; i < RUNS; i++) {
  for (const protocol of ["grpc", "json"]) {
    const server = await startServer(SERVER_ENV, [], { mainThreadCpus: SERVER_CPUS });
    try {
      runs[`maxine ${protocol}`].push(await measure("maxine", protocol, `127.0.0.1:${server.port}`));
    } finally {
      await server.stop();
    }
  }
  for (const pin of [true, false]) {
    const etcd = await startEtcd();
    etcdVersion = etcd.version;
    try {
      if (pin && CAN_PIN && spawnSync("taskset", ["-a", "-pc", SERVER_CPUS, String(etcd.pid)], { stdio: "ignore" }).status !== 0) throw new Error("taskset -a -pc failed for etcd");
      runs[pin ? "etcd grpc" : "etcd grpc unpinned"].push(await measure("etcd", "grpc", etcd.addr));
    } finally {
      await etcd.stop();
    }
  }
}

const rows = Object.entries(runs).map(([name, all]) => {
  const sorted = [...all].sort((a, b) => a.per_second - b.per_second);
  const median = sorted[Math.floor(sorted.length / 2)];
  return { name, ...median, min_per_second: sorted[0].per_second, max_per_second: sorted.at(-1).per_second, errors: all.reduce((n, r) => n + r.errors, 0), all };
});
const by = Object.fromEntries(rows.map((r) => [r.name, r]));
// the anchor is etcd's better row: pinned to the server core like Maxine, or free to use both cores (and take the client's)
const etcdBest = Math.max(by["etcd grpc"].per_second, by["etcd grpc unpinned"].per_second);
const ratios = { grpcVsEtcd: by["maxine grpc"].per_second / etcdBest, jsonVsEtcd: by["maxine json"].per_second / etcdBest };
const labels = { "maxine grpc": "Maxine Register, gRPC", "maxine json": "Maxine Register, Connect JSON", "etcd grpc": `etcd Grant + Put, gRPC, on CPU 0`, "etcd grpc unpinned": `etcd Grant + Put, gRPC, unpinned` };
console.log(`Register throughput, ${C} concurrent writers, ${SECONDS} s after 2 s warm-up, median of ${RUNS} runs; client: Go loadgen (GOMAXPROCS=1); ${PINNING}`);
console.log("row                                          | creates/s (range)        | p50 ms | p99 ms | errors | client CPU");
for (const r of rows) {
  const range = `${r.min_per_second.toFixed(0)}–${r.max_per_second.toFixed(0)}`;
  console.log(`${labels[r.name].padEnd(44)} | ${r.per_second.toFixed(0).padStart(8)} (${range.padEnd(13)}) | ${r.p50_ms.toFixed(2).padStart(6)} | ${r.p99_ms.toFixed(2).padStart(6)} | ${String(r.errors).padStart(6)} | ${r.client_cpu.toFixed(2)}`);
}
console.log(`${etcdVersion}; ratios to etcd's better row (target >= 2): gRPC ${ratios.grpcVsEtcd.toFixed(2)}, Connect JSON ${ratios.jsonVsEtcd.toFixed(2)}`);
writeResult(
  "register",
  { scenario: "Register throughput against etcd's lease grant + put", seconds: SECONDS, concurrency: C, runs: RUNS, client: "Go loadgen, GOMAXPROCS=1", pinning: PINNING, etcd: etcdVersion, rows, ratios },
  barChart({
    title: `Creates of a leased entry, ${C} concurrent writers (median of ${RUNS})`,
    unit: "creates/s",
    groups: rows.map((r) => labels[r.name]),
    series: [{ name: "creates/s", values: rows.map((r) => r.per_second) }],
  }),
);
