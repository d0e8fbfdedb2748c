#!/usr/bin/env node
// Service configuration, Maxine side by side with etcd in the same run,
// both driven by the Go loadgen (grpc-go for Maxine's ConfigService, etcd's
// clientv3):
// - fan-out: N config watchers (ConfigService.Watch on one service; etcd
//   watches on one prefix), then one Put; each trial times the Put call to
//   its receipt on the last of the N watchers;
// - Put throughput with durability on: C writers putting for a few seconds;
//   Maxine's embedded store (LevelDB, MAXINE_CONFIG_FSYNC=on: a batch of
//   writes is fsynced before any is acknowledged) and etcd (its WAL fsynced
//   per commit) with their data directories on the same disk.
// Writes docs/benchmarks/config.json.
//
// Usage: node bench/config-watch.mjs [N=1000] [trials=20] [writers=64] [seconds=5]
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startEtcd } from "./etcd.mjs";
import { buildLoadgen, loadgen, startServer, stats, writeResult } from "./support.mjs";

const N = Number(process.argv[2] ?? 1000);
const TRIALS = Number(process.argv[3] ?? 20);
const WRITERS = Number(process.argv[4] ?? 64);
const SECONDS = Number(process.argv[5] ?? 5);
buildLoadgen();

// a directory on the machine's disk (not tmpfs): where both stores keep their data
const diskBase = process.env.BENCH_DISK_DIR ?? tmpdir();
const conns = Math.max(4, Math.ceil(N / 1000));

async function maxine(fn) {
  const dir = mkdtempSync(join(diskBase, "maxine-bench-config-"));
  const server = await startServer({ MAXINE_DATA_DIR: dir, MAXINE_CONFIG_FSYNC: "on", MAXINE_MAX_WATCHERS_PER_CONNECTION: "1000", MAXINE_MAX_STREAMS_PER_CONNECTION: "1000" });
  try {
    return await fn(`127.0.0.1:${server.port}`);
  } finally {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function etcd(fn) {
  const e = await startEtcd({ dataBase: diskBase });
  try {
    return { ...(await fn(e.addr)), version: e.version };
  } finally {
    await e.stop();
  }
}

const fanArgs = ["-n", String(N), "-conns", String(conns), "-trials", String(TRIALS)];
const putArgs = ["-c", String(WRITERS), "-conns", "4", "-duration", `${SECONDS}s`, "-size", "256"];
const fanMaxine = await maxine((addr) => loadgen("fanout", ["-target", "maxine-config", "-addr", addr, ...fanArgs]));
const fanEtcd = await etcd((addr) => loadgen("fanout", ["-target", "etcd", "-addr", addr, ...fanArgs]));
const putMaxine = await maxine((addr) => loadgen("put", ["-target", "maxine", "-addr", addr, ...putArgs]));
const putEtcd = await etcd((addr) => loadgen("put", ["-target", "etcd", "-addr", addr, ...putArgs]));

const fan = (r) => {
  const all = stats(r.all_ms);
  return { median: all.median, p99: all.p99, max: all.max, samples: r.all_ms };
};
const put = (r) => ({ perSecond: Math.round(r.per_second), puts: r.puts, latencyMs: { p50: r.latency_ms[0], p99: r.latency_ms[1], max: r.latency_ms[2] } });
const result = {
  scenario: "service configuration: a Put seen by N config watchers; Put throughput with durability on",
  watchers: N,
  trials: TRIALS,
  writers: WRITERS,
  seconds: SECONDS,
  disk: diskBase,
  fanout: { maxine: fan(fanMaxine), etcd: { ...fan(fanEtcd), version: fanEtcd.version } },
  put: { maxine: put(putMaxine), etcd: { ...put(putEtcd), version: putEtcd.version } },
};
const f = (x) => x.toFixed(1);
console.log(`config fan-out, ${N} watchers, ${TRIALS} trials (Go loadgen; ${conns} connections): Maxine median ${f(result.fanout.maxine.median)} ms, p99 ${f(result.fanout.maxine.p99)} ms | etcd median ${f(result.fanout.etcd.median)} ms, p99 ${f(result.fanout.etcd.p99)} ms`);
console.log(`Put throughput, ${WRITERS} writers for ${SECONDS} s, data on ${diskBase}, fsync on: Maxine ${result.put.maxine.perSecond}/s (p99 ${f(result.put.maxine.latencyMs.p99)} ms) | etcd ${result.put.etcd.perSecond}/s (p99 ${f(result.put.etcd.latencyMs.p99)} ms)`);
writeResult("config", result);
