#!/usr/bin/env node
// Heap per registered instance: N instances (each with a zone, 2 tags and 2
// metadata entries, over 100 services, one-hour leases, no heartbeat
// streams) registered through Connect JSON on one server (memory store);
// the server's V8 heap used after a forced full GC (bench/gc-probe.cjs),
// before and after, divided by N. Also: RSS growth, and a Discover of one
// service (1 % of the instances) and a namespace snapshot timed at that size
// (median of 5 each).
//
// Usage: node bench/instance-heap.mjs [instances=100000]
import { barChart } from "./chart.mjs";
import { GC_PROBE_ARGS, gcProbe, startServer, stats, writeResult } from "./support.mjs";

const N = Number(process.argv[2] ?? 100000);
const SERVICES = 100;
const CONCURRENCY = 64;

const server = await startServer(
  { MAXINE_MAX_INSTANCES_PER_SERVICE: String(N), MAXINE_MAX_INSTANCES_PER_PRINCIPAL: String(N), MAXINE_MAX_INSTANCES: String(N) },
  GC_PROBE_ARGS,
);
const base = `http://127.0.0.1:${server.port}/maxine.registry.v1.RegistryService`;

const probe = () => gcProbe(server);

async function call(method, body) {
  const res = await fetch(`${base}/${method}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method}: HTTP ${res.status}: ${text}`);
  return JSON.parse(text);
}

const instance = (i) => ({
  service: `heap-${i % SERVICES}`,
  instanceId: `instance-${i}`,
  host: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
  port: 8000 + (i % 1000),
  zone: `zone-${i % 3}`,
  tags: ["http", `v${i % 7}`],
  metadata: { team: `team-${i % 50}`, build: `b${i % 1000}` },
});

let result;
try {
  await call("ListServices", {}); // the JSON path warmed up before the first probe
  const before = await probe();
  const t0 = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      for (let i = next++; i < N; i = next++) await call("Register", { instance: instance(i), leaseTtl: "3600s" });
    }),
  );
  const registerSec = (performance.now() - t0) / 1000;
  const after = await probe();
  const discoverMs = [];
  for (let i = 0; i < 5; i++) {
    const t = performance.now();
    const r = await call("Discover", { service: "heap-1", includeAll: true });
    discoverMs.push(performance.now() - t);
    if (r.instances.length !== N / SERVICES) throw new Error(`Discover: ${r.instances.length} instances, want ${N / SERVICES}`);
  }
  const heapPer = (after.heapUsed - before.heapUsed) / N;
  const externalPer = (after.external + after.arrayBuffers - before.external - before.arrayBuffers) / N;
  result = {
    instances: N,
    services: SERVICES,
    heap_used_before_mb: before.heapUsed / 2 ** 20,
    heap_used_after_mb: after.heapUsed / 2 ** 20,
    heap_bytes_per_instance: heapPer,
    external_bytes_per_instance: externalPer,
    rss_bytes_per_instance: (after.rss - before.rss) / N,
    register_per_second: N / registerSec,
    discover_1pct_ms: stats(discoverMs),
    target_kb: 0.75,
  };
} finally {
  await server.stop();
}

console.log(`heap per instance: ${N} instances (zone, 2 tags, 2 metadata entries each) over ${SERVICES} services, memory store`);
console.log(`  V8 heap used after a full GC: ${result.heap_used_before_mb.toFixed(1)} MB -> ${result.heap_used_after_mb.toFixed(1)} MB`);
console.log(`  per instance: heap ${(result.heap_bytes_per_instance / 1024).toFixed(2)} KB (target <= ${result.target_kb} KB: ${result.heap_bytes_per_instance / 1024 <= result.target_kb ? "met" : "not met"}), off-heap ${(result.external_bytes_per_instance / 1024).toFixed(2)} KB, RSS ${(result.rss_bytes_per_instance / 1024).toFixed(2)} KB`);
console.log(`  registered at ${result.register_per_second.toFixed(0)}/s (Connect JSON, ${CONCURRENCY} concurrent); Discover of ${N / SERVICES} instances (include_all, JSON) median ${result.discover_1pct_ms.median.toFixed(1)} ms`);
writeResult(
  "instance-heap",
  result,
  barChart({
    title: `Memory per registered instance at ${N} instances (target: V8 heap <= ${result.target_kb} KB)`,
    unit: "KB per instance",
    groups: ["V8 heap (after a full GC)", "off the heap", "RSS growth"],
    series: [
      { name: "Maxine", values: [result.heap_bytes_per_instance / 1024, result.external_bytes_per_instance / 1024, result.rss_bytes_per_instance / 1024] },
      { name: "target", values: [result.target_kb, NaN, NaN] },
    ],
  }),
);
