#!/usr/bin/env node
// Discover throughput: 50 concurrent callers for 10 s (after 2 s of warm-up)
// against a service of 10 instances, over Connect JSON on HTTP/1.1 (what
// curl-style callers use) and over gRPC on HTTP/2. Client: bench/loadgen
// (Go net/http and grpc-go) in its own process. Writes
// docs/benchmarks/discover.{json,svg}.
//
// Usage: node bench/discover-throughput.mjs [seconds=10] [concurrency=50]
import { barChart } from "./chart.mjs";
import { buildLoadgen, loadgen, startServer, writeResult } from "./support.mjs";

const SECONDS = Number(process.argv[2] ?? 10);
const C = Number(process.argv[3] ?? 50);
buildLoadgen();

const server = await startServer();
const rows = [];
try {
  const base = `http://127.0.0.1:${server.port}/maxine.registry.v1.RegistryService/Register`;
  for (let i = 0; i < 10; i++) {
    const res = await fetch(base, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ instance: { service: "discover-bench", instanceId: `d${i}`, host: "10.7.0.1", port: 8000 + i }, leaseTtl: "3600s" }),
    });
    if (!res.ok) throw new Error(`register: HTTP ${res.status}: ${await res.text()}`);
  }
  for (const protocol of ["json", "grpc"]) {
    rows.push(await loadgen("discover", ["-addr", `127.0.0.1:${server.port}`, "-protocol", protocol, "-c", String(C), "-duration", `${SECONDS}s`]));
  }
} finally {
  await server.stop();
}

console.log(`Discover throughput, ${C} concurrent callers, ${SECONDS} s after 2 s warm-up; client: Go loadgen`);
console.log("protocol                        |   req/s | p50 ms | p99 ms | errors");
for (const r of rows) {
  const name = r.protocol === "json" ? "Connect JSON over HTTP/1.1" : "gRPC over HTTP/2";
  console.log(`${name.padEnd(31)} | ${r.per_second.toFixed(0).padStart(7)} | ${r.p50_ms.toFixed(2).padStart(6)} | ${r.p99_ms.toFixed(2).padStart(6)} | ${r.errors}`);
}
writeResult(
  "discover",
  { scenario: "Discover throughput", seconds: SECONDS, concurrency: C, rows },
  barChart({
    title: `Discover throughput, ${C} concurrent callers`,
    unit: "requests/s",
    groups: rows.map((r) => (r.protocol === "json" ? "Connect JSON, HTTP/1.1" : "gRPC, HTTP/2")),
    series: [{ name: "requests/s", values: rows.map((r) => r.per_second) }],
  }),
);
