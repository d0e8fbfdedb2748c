#!/usr/bin/env node
// Watch fan-out, Maxine side by side with etcd in the same run: N watchers on
// one service (Maxine WatchServices streams) or one key prefix (etcd watches),
// then one change (Register / Put); each trial times the change call to the
// receipt on the last of the N watchers, and every watcher's receipt. Both
// are driven by the same Go client (bench/loadgen, grpc-go; etcd's official
// clientv3), in a process of its own, with the watchers spread over the
// same number of connections. Each side first makes 2 unmeasured changes
// (loadgen's -warmup): the first change after a server starts runs code not
// yet compiled (Node's JIT; etcd's too), which is a start-up cost, not the
// fan-out's; its time is printed apart ("first change"). Writes
// docs/benchmarks/fanout.{json,svg}.
//
// Usage: node bench/fanout-vs-etcd.mjs [N list=100,1000,10000] [trials=10]
import { barChart } from "./chart.mjs";
import { startEtcd } from "./etcd.mjs";
import { buildLoadgen, loadgen, startServer, stats, writeResult } from "./support.mjs";

const SIZES = (process.argv[2] ?? "100,1000,10000").split(",").map(Number);
const TRIALS = Number(process.argv[3] ?? 10);
buildLoadgen();

const rows = [];
for (const n of SIZES) {
  const conns = Math.max(4, Math.ceil(n / 1000));
  const common = ["-n", String(n), "-conns", String(conns), "-trials", String(TRIALS)];

  const maxine = await startServer({ MAXINE_MAX_WATCHERS_PER_CONNECTION: "1000", MAXINE_MAX_STREAMS_PER_CONNECTION: "1000" });
  let m;
  try {
    m = await loadgen("fanout", ["-target", "maxine", "-addr", `127.0.0.1:${maxine.port}`, ...common]);
  } finally {
    await maxine.stop();
  }

  const etcd = await startEtcd();
  let e;
  try {
    e = await loadgen("fanout", ["-target", "etcd", "-addr", etcd.addr, ...common]);
  } finally {
    await etcd.stop();
  }
  rows.push({ n, conns, maxine: summarize(m), etcd: { ...summarize(e), version: etcd.version } });
}

function summarize(r) {
  const all = stats(r.all_ms);
  const each = stats(r.receipts_ms);
  return { all: { median: all.median, p99: all.p99, max: all.max }, receipt: { p50: each.median, p99: each.p99 }, setupMs: r.setup_ms, firstChangeMs: r.warmup_ms?.[0], samples: r.all_ms };
}

const f = (x) => x.toFixed(1).padStart(8);
console.log(`watch fan-out, ${TRIALS} trials per size; client: Go loadgen (grpc-go for Maxine, etcd clientv3 for ${rows[0]?.etcd.version ?? "etcd"}), server and client on loopback`);
console.log("       N  conns | last receipt ms: Maxine med   p99 |   etcd med   p99 | ratio p99 | every receipt p99: Maxine   etcd | first change: Maxine   etcd");
for (const r of rows) {
  const ratio = r.maxine.all.p99 / r.etcd.all.p99;
  console.log(
    `${String(r.n).padStart(8)} ${String(r.conns).padStart(6)} |            ${f(r.maxine.all.median)} ${f(r.maxine.all.p99)} | ${f(r.etcd.all.median)} ${f(r.etcd.all.p99)} | ${ratio.toFixed(2).padStart(9)} |             ${f(r.maxine.receipt.p99)} ${f(r.etcd.receipt.p99)} |         ${f(r.maxine.firstChangeMs ?? NaN)} ${f(r.etcd.firstChangeMs ?? NaN)}`,
  );
}

writeResult(
  "fanout",
  { scenario: "watch fan-out: change call -> receipt on all N watchers", trials: TRIALS, rows },
  barChart({
    title: `Watch fan-out, p99 of ${TRIALS} trials: change -> last of N watchers`,
    unit: "ms",
    log: true,
    groups: rows.map((r) => `N = ${r.n}`),
    series: [
      { name: "Maxine", values: rows.map((r) => r.maxine.all.p99) },
      { name: "etcd", values: rows.map((r) => r.etcd.all.p99) },
    ],
  }),
);
