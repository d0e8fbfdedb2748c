#!/usr/bin/env node
// Snapshot: a service of 10,000 instances (with tags and metadata, like real
// ones), then new watchers one after the other; each is timed from its
// WatchServices call to its end-of-snapshot marker. Client: bench/loadgen
// (Go, grpc-go). Writes docs/benchmarks/snapshot.json.
//
// Usage: node bench/snapshot.mjs [instances=10000] [trials=10]
import { buildLoadgen, fmt, loadgen, startServer, stats, writeResult } from "./support.mjs";

const N = Number(process.argv[2] ?? 10000);
const TRIALS = Number(process.argv[3] ?? 10);
buildLoadgen();
const server = await startServer({ MAXINE_MAX_INSTANCES_PER_SERVICE: String(Math.max(10000, N)) });
let r;
try {
  r = await loadgen("snapshot", ["-addr", `127.0.0.1:${server.port}`, "-instances", String(N), "-trials", String(TRIALS)]);
} finally {
  await server.stop();
}
if (r.received !== N) throw new Error(`the snapshot held ${r.received} instances, expected ${N}`);
const s = stats(r.samples_ms);
console.log(`snapshot of a ${N}-instance service to a new watcher, ${TRIALS} trials; client: Go loadgen (grpc-go)`);
console.log(`  median ${fmt(s.median)}, p99 ${fmt(s.p99)}, min ${fmt(s.min)}`);
writeResult("snapshot", { scenario: "snapshot to a new watcher", instances: N, trials: TRIALS, ...s, samples: r.samples_ms });
