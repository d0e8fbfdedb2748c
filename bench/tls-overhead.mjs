#!/usr/bin/env node
// TLS overhead: Discover throughput and p99 over cleartext and over TLS
// (certificates from scripts/make-test-certs.sh, EC P-256), same server
// build, same client, one after the other: Connect JSON on HTTP/1.1 (one
// keep-alive connection per caller) and gRPC on HTTP/2 (one connection),
// C concurrent callers for SECONDS after 2 s of warm-up, RUNS times each;
// each row is the median run, with the range. Client: bench/loadgen
// (GOMAXPROCS=1), pinned like discover-throughput.mjs where taskset exists.
// Writes docs/benchmarks/tls.json.
//
// Usage: node bench/tls-overhead.mjs [seconds=5] [concurrency=50] [runs=3]
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { buildLoadgen, CAN_PIN, loadgen, startServer, writeResult } from "./support.mjs";

const SECONDS = Number(process.argv[2] ?? 5);
const C = Number(process.argv[3] ?? 50);
const RUNS = Number(process.argv[4] ?? 3);
const CLIENT_ENV = { GOMAXPROCS: "1" };
const SERVER_CPUS = "0";
const CLIENT_CPUS = "1";
buildLoadgen();

const dir = mkdtempSync(join(tmpdir(), "maxine-tls-bench-"));
execFileSync("bash", [fileURLToPath(new URL("../scripts/make-test-certs.sh", import.meta.url)), dir], { stdio: "ignore" });
const ca = join(dir, "ca.pem");
const modes = [
  { mode: "cleartext", env: {}, args: [] },
  { mode: "TLS", env: { MAXINE_TLS_CERT: join(dir, "server.pem"), MAXINE_TLS_KEY: join(dir, "server-key.pem") }, args: ["-cacert", ca] },
];

const results = [];
try {
  for (const { mode, env, args } of modes) {
    const server = await startServer(env, [], { mainThreadCpus: SERVER_CPUS });
    try {
      const scheme = mode === "TLS" ? "https" : "http";
      const register = `${scheme}://127.0.0.1:${server.port}/maxine.registry.v1.RegistryService/Register`;
      for (let i = 0; i < 10; i++) {
        const body = JSON.stringify({ instance: { service: "discover-bench", instanceId: `d${i}`, host: "10.7.0.1", port: 8000 + i }, leaseTtl: "3600s" });
        execFileSync("curl", ["-sf", ...(mode === "TLS" ? ["--cacert", ca] : []), register, "-H", "content-type: application/json", "-d", body], { stdio: "ignore" });
      }
      for (const protocol of ["json", "grpc"]) {
        const runs = [];
        for (let i = 0; i < RUNS; i++) {
          const a = ["-addr", `127.0.0.1:${server.port}`, "-protocol", protocol, "-c", String(C), "-duration", `${SECONDS}s`, ...args];
          runs.push(await loadgen("discover", a, undefined, CLIENT_ENV, { cpus: CLIENT_CPUS }));
        }
        const sorted = [...runs].sort((x, y) => x.per_second - y.per_second);
        const median = sorted[Math.floor(sorted.length / 2)];
        results.push({ mode, protocol, ...median, min_per_second: sorted[0].per_second, max_per_second: sorted.at(-1).per_second, all: runs });
      }
    } finally {
      await server.stop();
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

const names = { json: "Connect JSON, HTTP/1.1", grpc: "gRPC, HTTP/2" };
console.log(`Discover, ${C} callers, ${SECONDS} s after 2 s warm-up, median of ${RUNS} runs; Go loadgen (GOMAXPROCS=1); ${CAN_PIN ? "pinned" : "not pinned"}`);
console.log("| protocol | transport | req/s (range) | p50 | p99 | errors |\n|---|---|---|---|---|---|");
for (const r of results) {
  const k = (n) => Math.round(n).toLocaleString("en-US");
  console.log(`| ${names[r.protocol]} | ${r.mode} | ${k(r.per_second)} (${k(r.min_per_second)}–${k(r.max_per_second)}) | ${r.p50_ms.toFixed(2)} ms | ${r.p99_ms.toFixed(2)} ms | ${r.errors} |`);
}
writeResult("tls", { seconds: SECONDS, concurrency: C, runs: RUNS, results });
