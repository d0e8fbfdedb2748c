#!/usr/bin/env node
// Discover throughput: 50 concurrent callers for 10 s (after 2 s of warm-up)
// against a service of 10 instances, over Connect JSON on HTTP/1.1 (what
// curl-style callers use) and over gRPC on HTTP/2, RUNS times each; the
// table gives the median run and the range. The reference row is a plain
// node:http server that parses the JSON body and answers a fixed JSON of the
// same size (bench/plain-http-server.mjs): what one Node.js process with
// HTTP/1.1 reaches here with no registry work at all.
//
// Client: bench/loadgen (Go net/http and grpc-go) in its own process, with
// GOMAXPROCS=1: on this 2-core machine the client gets one core and the
// server (one event loop) the other. With GOMAXPROCS=2 the client's threads
// preempt the server's event loop and both servers measure lower and
// noisier. Where taskset is available (util-linux), the client runs on CPU 1
// and each server's main thread (Maxine's and the reference's alike) on CPU
// 0, its helper threads (GC, libuv) unpinned: unpinned, the scheduler at
// times put the client and the event loop on one core, and Maxine over
// Connect JSON measured 12,900–17,100 req/s in four runs in a row (pinned:
// 17,200–21,100). With the whole server process on CPU 0, its GC threads
// took the event loop's core and gRPC's p99 rose to 15 ms. Writes
// docs/benchmarks/discover.{json,svg}.
//
// A second gRPC row drives the same calls with h2load (nghttp2's C client,
// Debian's nghttp2-client, installed when missing): one connection, the
// same concurrency in streams, pinned like the Go client. It costs far less
// CPU per call than grpc-go, so it shows the server's own figure; h2load
// checks the HTTP status only (not grpc-status), so the Go row is the one
// that checks answers. A second JSON row does the same over HTTP/1.1
// (h2load --h1, C connections, one request at a time on each, as the Go
// client's callers): the Go client spends about a core at this rate, so
// the JSON ratio is taken from the h2load rows.
//
// The references for each protocol: bench/plain-http-server.mjs (JSON over
// HTTP/1.1) and bench/plain-http2-server.mjs (gRPC over HTTP/2, driven by the
// same two clients), answering the same bytes: Maxine's own answer, saved
// before the reference servers start;
// the ratios of Maxine to them are issue 23's first target. Each row gives
// its client's CPU (cores used while measuring) to show whether the client,
// not the server, was the bottleneck.
//
// Usage: node bench/discover-throughput.mjs [seconds=10] [concurrency=50] [runs=3]
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { create, toBinary } from "@bufbuild/protobuf";
import { DiscoverRequestSchema } from "@maxine/sdk/gen/maxine/registry/v1/registry_pb";
import { barChart } from "./chart.mjs";
import { buildLoadgen, CAN_PIN, ensureCommand, h2loadDiscover, loadgen, pinMainThread, startServer, writeResult } from "./support.mjs";

const SECONDS = Number(process.argv[2] ?? 10);
const C = Number(process.argv[3] ?? 50);
const RUNS = Number(process.argv[4] ?? 3);
const CLIENT_ENV = { GOMAXPROCS: "1" };
const SERVER_CPUS = "0";
const CLIENT_CPUS = "1";
const PINNING = CAN_PIN ? `servers' main threads on CPU ${SERVER_CPUS}, client on CPU ${CLIENT_CPUS}` : "not pinned (no taskset)";
buildLoadgen();
const answers = mkdtempSync(join(tmpdir(), "maxine-answer-"));
const ANSWER_JSON = join(answers, "discover.json");
const ANSWER_PROTO = join(answers, "discover.binpb");
process.on("exit", () => rmSync(answers, { recursive: true, force: true }));

/** goRun drives Discover calls with the Go loadgen once (GOMAXPROCS=1, pinned). */
const goRun = (target, protocol) =>
  loadgen("discover", ["-addr", target, "-protocol", protocol, "-c", String(C), "-duration", `${SECONDS}s`], undefined, CLIENT_ENV, { cpus: CLIENT_CPUS });

const results = [];
const server = await startServer({}, [], { mainThreadCpus: SERVER_CPUS });
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
  await saveAnswers(server.port);
  // The reference servers run beside Maxine (each idle while another is
  // measured), and every run of Maxine is followed by the same run against
  // its protocol's reference: on this VM one server's throughput moved by a
  // fifth between runs a minute apart (gRPC, h2load: 31,500–39,100 req/s in
  // five runs of the same process), so the ratio is taken run by run.
  await reference("./plain-http-server.mjs", async (httpPort) => {
    await reference("./plain-http2-server.mjs", async (http2Port) => {
      const refOf = { json: ["plain node:http (reference)", httpPort], grpc: ["plain node:http2 (reference)", http2Port] };
      /** paired runs run(port) RUNS times against Maxine, each time followed by the same run against protocol's reference. */
      const paired = async (protocol, label, run) => {
        const [refName, refPort] = refOf[protocol];
        const mine = { server: "maxine", protocol: label, runs: [] };
        const ref = { server: refName, protocol: label, runs: [] };
        for (let i = 0; i < RUNS; i++) {
          mine.runs.push(await run(server.port));
          ref.runs.push(await run(refPort));
        }
        results.push(mine, ref);
      };
      for (const protocol of ["json", "grpc"]) await paired(protocol, protocol, (port) => goRun(`127.0.0.1:${port}`, protocol));
      for (const protocol of ["grpc", "json"]) await paired(protocol, `${protocol}-h2load`, (port) => h2loadRun(port, protocol));
    });
  });
} finally {
  await server.stop();
}

/**
 * saveAnswers keeps the bytes Maxine answers a Discover with, as Connect
 * JSON and as protobuf, for the reference servers to send: the same bytes
 * (round robin changes only the instance, of the same size).
 */
async function saveAnswers(port) {
  for (const [type, file] of [["application/json", ANSWER_JSON], ["application/proto", ANSWER_PROTO]]) {
    const body = type === "application/json" ? JSON.stringify({ service: "discover-bench" }) : toBinary(DiscoverRequestSchema, create(DiscoverRequestSchema, { service: "discover-bench" }));
    const res = await fetch(`http://127.0.0.1:${port}/maxine.registry.v1.RegistryService/Discover`, { method: "POST", headers: { "content-type": type }, body });
    if (!res.ok) throw new Error(`discover (${type}): HTTP ${res.status}: ${await res.text()}`);
    writeFileSync(file, Buffer.from(await res.arrayBuffer()));
  }
}

/** reference runs a bare reference server (its script prints its port) answering Maxine's saved answer, pinned like Maxine, for the duration of f(port). */
async function reference(script, f) {
  const env = { ...process.env, BENCH_ANSWER_JSON: ANSWER_JSON, BENCH_ANSWER_PROTO: ANSWER_PROTO };
  const child = spawn(process.execPath, [fileURLToPath(new URL(script, import.meta.url))], { stdio: ["ignore", "pipe", "inherit"], env });
  try {
    const port = await new Promise((resolve, reject) => {
      child.stdout.once("data", (d) => {
        pinMainThread(SERVER_CPUS, child.pid);
        resolve(Number(String(d).trim()));
      });
      child.once("exit", (code) => reject(new Error(`${script} exited with ${code}`)));
    });
    await f(port);
  } finally {
    await new Promise((resolve) => (child.exitCode !== null ? resolve() : (child.once("exit", resolve), child.kill("SIGTERM"))));
  }
}

/**
 * h2loadRun drives Discover calls with h2load once, pinned like the Go client: gRPC on one connection
 * with C streams, Connect JSON on C HTTP/1.1 connections one request at a time (as the Go client's callers).
 */
function h2loadRun(port, protocol) {
  const h2load = ensureCommand("h2load", "nghttp2-client");
  return h2loadDiscover(h2load, port, { seconds: SECONDS, connections: protocol === "json" ? C : 1, streams: C, cpus: CLIENT_CPUS, protocol });
}

// Each row is the run with the median throughput, with the range of all runs.
const rows = results.map(({ server, protocol, runs }) => {
  const sorted = [...runs].sort((a, b) => a.per_second - b.per_second);
  const median = sorted[Math.floor(sorted.length / 2)];
  return {
    ...median,
    server,
    protocol,
    runs: runs.length,
    min_per_second: sorted[0].per_second,
    max_per_second: sorted.at(-1).per_second,
    max_p99_ms: Math.max(...runs.map((r) => r.p99_ms)),
    all: runs,
  };
});

const protocols = { json: "Connect JSON, HTTP/1.1", "json-h2load": "Connect JSON, HTTP/1.1, h2load", grpc: "gRPC, HTTP/2", "grpc-h2load": "gRPC, HTTP/2, h2load" };
const label = (r) => `${r.server === "maxine" ? "Maxine" : r.server.replace(" (reference)", "")}, ${protocols[r.protocol]}`;
console.log(`Discover throughput, ${C} concurrent callers, ${SECONDS} s after 2 s warm-up, median of ${RUNS} runs; client: Go loadgen (GOMAXPROCS=1) unless the row says h2load; ${PINNING}`);
console.log("server, protocol                              |   req/s (range)         | p50 ms | p99 ms | errors | client CPU");
for (const r of rows) {
  const range = `${r.min_per_second.toFixed(0)}–${r.max_per_second.toFixed(0)}`;
  console.log(`${label(r).padEnd(45)} | ${r.per_second.toFixed(0).padStart(7)} (${range.padEnd(13)}) | ${r.p50_ms.toFixed(2).padStart(6)} | ${r.p99_ms.toFixed(2).padStart(6)} | ${String(r.errors).padStart(6)} | ${(r.client_cpu ?? NaN).toFixed(2)}`);
}
// Issue 23's first target: Maxine against the bare server of its protocol,
// same bytes, same client; each run of Maxine against the reference's run
// right after it, and the median of those ratios (pairs gives each).
const row = (server, protocol) => rows.find((r) => r.server.startsWith(server) && r.protocol === protocol);
const ratio = (a, b) => (a === undefined || b === undefined ? NaN : a.per_second / b.per_second);
const pairs = (protocol, reference) => {
  const a = row("maxine", protocol);
  const b = row(reference, protocol);
  return a === undefined || b === undefined ? [] : a.all.map((r, i) => r.per_second / b.all[i].per_second);
};
const median = (xs) => (xs.length === 0 ? NaN : [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]);
const pairRatios = {
  grpcVsBareHttp2: pairs("grpc-h2load", "plain node:http2"),
  grpcVsBareHttp2GoClient: pairs("grpc", "plain node:http2"),
  jsonVsBareHttp: pairs("json-h2load", "plain node:http "),
  jsonVsBareHttpGoClient: pairs("json", "plain node:http "),
};
const ratios = {
  ...Object.fromEntries(Object.entries(pairRatios).map(([k, v]) => [k, median(v)])),
  grpcVsJson: ratio(row("maxine", "grpc-h2load"), row("maxine", "json-h2load")),
  bareHttp2VsBareHttp: ratio(row("plain node:http2", "grpc-h2load"), row("plain node:http ", "json-h2load")),
};
const each = (k) => pairRatios[k].map((x) => x.toFixed(2)).join(", ");
console.log(
  `ratios (median of ${RUNS} runs, each against the reference's run right after it): gRPC / bare node:http2 ${ratios.grpcVsBareHttp2.toFixed(2)} (h2load: ${each("grpcVsBareHttp2")}; Go client ${ratios.grpcVsBareHttp2GoClient.toFixed(2)}), Connect JSON / bare node:http ${ratios.jsonVsBareHttp.toFixed(2)} (h2load: ${each("jsonVsBareHttp")}; Go client ${ratios.jsonVsBareHttpGoClient.toFixed(2)}); beside them: Maxine gRPC / JSON ${ratios.grpcVsJson.toFixed(2)}, bare node:http2 / bare node:http ${ratios.bareHttp2VsBareHttp.toFixed(2)}`,
);
writeResult(
  "discover",
  { scenario: "Discover throughput", seconds: SECONDS, concurrency: C, runs: RUNS, client: "Go loadgen, GOMAXPROCS=1 (rows with protocol grpc-h2load and json-h2load: h2load, nghttp2's C client)", pinning: PINNING, rows, ratios, pairRatios, pairing: "each Maxine run followed by the same run against its protocol's reference; ratios are the median of those pairs" },
  barChart({
    title: `Discover throughput, ${C} concurrent callers (median of ${RUNS})`,
    unit: "requests/s",
    groups: rows.map(label),
    series: [{ name: "requests/s", values: rows.map((r) => r.per_second) }],
  }),
);
