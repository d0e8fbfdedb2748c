#!/usr/bin/env node
// xDS fan-out beside the WatchServices fan-out, in the same run, same Go
// client (bench/loadgen, grpc-go with go-control-plane's generated types):
// N raw ADS subscribers (StreamAggregatedResources, each a node of its own
// subscribed to the EDS resource of one service, ACKing every response, as
// a proxyless gRPC client or Envoy does), then one Register of a new
// instance; each trial times the Register call to the last subscriber
// holding a ClusterLoadAssignment that lists the new address. Then the same
// with N WatchServices streams on that service (the ADDED event) on a fresh
// server with the same settings. Each side first makes 2 unmeasured changes
// (loadgen's -warmup, as fanout-vs-etcd.mjs): the first change after a start
// runs code not yet compiled; its time is printed apart ("first change").
// Writes docs/benchmarks/xds-fanout.{json,svg}.
//
// Usage: node bench/xds-fanout.mjs [N=1000] [trials=20]   (or: npm run bench:xds)
import { cpus, loadavg } from "node:os";
import { barChart } from "./chart.mjs";
import { buildLoadgen, loadgen, startServer, stats, writeResult } from "./support.mjs";

const N = Number(process.argv[2] ?? 1000);
const TRIALS = Number(process.argv[3] ?? 20);
if (!(N >= 1) || !(TRIALS >= 1)) throw new Error(`usage: node bench/xds-fanout.mjs [N=1000] [trials=20], got N=${process.argv[2]} trials=${process.argv[3]}`);
buildLoadgen();

const conns = Math.max(4, Math.ceil(N / 1000));
// configuration in memory: the xDS server reads policies from the configuration store, which
// otherwise opens ./maxine-data (one server per directory)
const env = { MAXINE_MAX_WATCHERS_PER_CONNECTION: "1000", MAXINE_MAX_STREAMS_PER_CONNECTION: "1000", MAXINE_DATA_DIR: "off" };
const args = ["-n", String(N), "-conns", String(conns), "-warmup", "2", "-trials", String(TRIALS)];

async function run(target) {
  const server = await startServer(env);
  try {
    return await loadgen("fanout", ["-target", target, "-addr", `127.0.0.1:${server.port}`, ...args]);
  } finally {
    await server.stop();
  }
}

function summarize(r) {
  const all = stats(r.all_ms);
  const each = stats(r.receipts_ms);
  return { all: { median: all.median, p99: all.p99, max: all.max }, receipt: { p50: each.median, p99: each.p99 }, setupMs: r.setup_ms, firstChangeMs: r.warmup_ms?.[0], samples: r.all_ms };
}

const xds = summarize(await run("maxine-xds"));
const watch = summarize(await run("maxine"));
const f = (x) => x.toFixed(1);
console.log(`change -> last of ${N} subscribers, ${TRIALS} trials (Go loadgen, ${conns} connections, server and client on loopback)`);
console.log(`  xDS (ADS, EDS, ACKed):  median ${f(xds.all.median)} ms, p99 ${f(xds.all.p99)} ms; every receipt p99 ${f(xds.receipt.p99)} ms; ${N} streams open in ${xds.setupMs} ms; first change ${f(xds.firstChangeMs ?? NaN)} ms`);
console.log(`  WatchServices:          median ${f(watch.all.median)} ms, p99 ${f(watch.all.p99)} ms; every receipt p99 ${f(watch.receipt.p99)} ms; ${N} streams open in ${watch.setupMs} ms; first change ${f(watch.firstChangeMs ?? NaN)} ms`);
console.log(`  xDS / WatchServices p99: ${(xds.all.p99 / watch.all.p99).toFixed(2)}`);

writeResult(
  "xds-fanout",
  { scenario: "a Register seen by N xDS (ADS/EDS) subscribers, beside N WatchServices watchers: change call -> receipt on the last", subscribers: N,
    conns,
    trials: TRIALS,
    xds,
    watch,
    // the machine's 1-minute load average at the end, against its cores: above about half, the figures are indicative only
    load_average: loadavg()[0],
    cores: cpus().length,
  },
  barChart({
    title: `Register -> last of ${N} subscribers, ${TRIALS} trials`,
    unit: "ms",
    groups: ["median", "p99"],
    series: [
      { name: "xDS (ADS, EDS)", values: [xds.all.median, xds.all.p99] },
      { name: "WatchServices", values: [watch.all.median, watch.all.p99] },
    ],
  }),
);
