#!/usr/bin/env node
// Active health checks at scale: N instances (default 10,000), each with an
// HTTP check every INTERVAL (5 s) against one local target (a node:http
// server in a child process of its own, answering 200 on /p/<i>), all run
// by one registry process. Figures:
// - the registry's CPU while it runs the checks (from /proc/<pid>/stat,
//   user + system, over WINDOW seconds; target: under half a core);
// - schedule slip: how late each probe started after it was due, p99 from
//   the server's own histogram (maxine_check_schedule_slip_seconds, bucket
//   bound) and, independently, at the target: each path's gaps between
//   arrivals minus the interval (target: p99 ≤ 100 ms);
// - Discover latency (gRPC over one HTTP/2 connection, 1,000 calls a second,
//   open loop, against a service of 10 instances without checks) before
//   the checks are registered and while they run, in the same process run:
//   the ratio of the medians and of the p99s (target: within 20 %).
// Writes docs/benchmarks/health-checks.json, with the machine's load
// average at the end: figures taken on a loaded machine are indicative.
//
// Usage: node bench/health-checks.mjs [instances=10000] [window seconds=20] [interval ms=5000]
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import http2 from "node:http2";
import { create, toBinary } from "@bufbuild/protobuf";
import { DiscoverRequestSchema } from "@maxine/sdk/gen/maxine/registry/v1/registry_pb";
import { startServer, stats, writeResult } from "./support.mjs";

const N = Number(process.argv[2] ?? 10_000);
const WINDOW_S = Number(process.argv[3] ?? 20);
const INTERVAL_MS = Number(process.argv[4] ?? 5_000);
const DISCOVER_S = 10;
const RATE = 1_000;
const SVC = "/maxine.registry.v1.RegistryService";
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** startTarget runs the probes' target in a child process: it answers 200 and reports, per path, the arrival times (ms) when asked. */
function startTarget() {
  const source = `
    const http = require("node:http");
    const arrivals = new Map();
    let recording = false;
    const server = http.createServer((req, res) => {
      if (req.url === "/__arrivals") {
        res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify([...arrivals]));
        return;
      }
      if (req.url === "/__record") { recording = true; arrivals.clear(); res.end("ok"); return; }
      if (req.url === "/__stop") { recording = false; res.end("ok"); return; }
      if (recording) {
        let a = arrivals.get(req.url);
        if (a === undefined) arrivals.set(req.url, (a = []));
        a.push(Math.round(performance.timeOrigin + performance.now()));
      }
      res.writeHead(200, { "content-type": "text/plain" }).end("ok");
    });
    server.keepAliveTimeout = 1000;
    server.listen(0, "127.0.0.1", () => process.stdout.write(server.address().port + "\\n"));
  `;
  const child = spawn(process.execPath, ["-e", source], { stdio: ["ignore", "pipe", "inherit"] });
  return new Promise((resolve, reject) => {
    child.stdout.once("data", (d) => resolve({ port: Number(String(d).trim()), child }));
    child.once("exit", (code) => reject(new Error(`target exited with ${code}`)));
  });
}

function cpuSeconds(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime, clock ticks (USER_HZ 100)
}

async function post(base, method, body) {
  const res = await fetch(`${base}${SVC}/${method}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  const json = await res.json();
  if (res.status !== 200) throw new Error(`${method}: HTTP ${res.status} ${JSON.stringify(json)}`);
  return json;
}

async function metric(base, re) {
  const text = await (await fetch(`${base}/metrics`)).text();
  return text;
}

/** slipBuckets reads the slip histogram's cumulative buckets {le: count}. */
async function slipBuckets(base) {
  const text = await metric(base);
  const out = new Map();
  for (const m of text.matchAll(/^maxine_check_schedule_slip_seconds_bucket\{le="([^"]+)"\} (\d+)$/gm)) out.set(m[1], Number(m[2]));
  return out;
}

/** p99Bound is the upper bound (s) of the bucket holding the 99th percentile of the observations between two readings. */
function p99Bound(before, after) {
  const les = [...after.keys()];
  const total = after.get("+Inf") - before.get("+Inf");
  for (const le of les) {
    if (after.get(le) - (before.get(le) ?? 0) >= 0.99 * total) return { le, total };
  }
  return { le: "+Inf", total };
}

/**
 * discoverLoad calls Discover at RATE calls a second for seconds (open
 * loop: a call starts on time whether or not earlier ones have answered,
 * so a busier server shows as latency, not as fewer calls) on one HTTP/2
 * connection and returns the latencies (ms).
 */
async function discoverLoad(port, seconds) {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  const msg = toBinary(DiscoverRequestSchema, create(DiscoverRequestSchema, { service: "lookup" }));
  const frame = Buffer.alloc(5 + msg.length);
  frame.writeUInt32BE(msg.length, 1);
  frame.set(msg, 5);
  const call = () =>
    new Promise((resolve, reject) => {
      const t0 = performance.now();
      const s = session.request({ ":method": "POST", ":path": `${SVC}/Discover`, "content-type": "application/grpc", te: "trailers" });
      let status;
      s.on("trailers", (t) => (status = t["grpc-status"]));
      s.on("data", () => {});
      s.on("end", () => (status === "0" ? resolve(performance.now() - t0) : reject(new Error(`grpc-status ${status}`))));
      s.on("error", reject);
      s.end(frame);
    });
  const pending = [];
  const start = performance.now();
  let sent = 0;
  while (performance.now() - start < seconds * 1000) {
    const due = Math.floor(((performance.now() - start) / 1000) * RATE);
    for (; sent < due; sent++) pending.push(call());
    await sleep(2);
  }
  const samples = await Promise.all(pending);
  session.close();
  return samples;
}

const target = await startTarget();
const server = await startServer({ MAXINE_MAX_INSTANCES_PER_SERVICE: String(Math.max(10_000, N)) });
const base = `http://127.0.0.1:${server.port}`;
try {
  for (let i = 0; i < 10; i++) await post(base, "Register", { instance: { service: "lookup", instanceId: `l-${i}`, host: "10.0.0.1", port: 8000 + i }, leaseTtl: "3600s" });
  await discoverLoad(server.port, 2); // warm-up
  const baseline = stats(await discoverLoad(server.port, DISCOVER_S));
  const idleCpu0 = cpuSeconds(server.child.pid);
  await sleep(5_000);
  const idleCpu = (cpuSeconds(server.child.pid) - idleCpu0) / 5;

  const t0 = performance.now();
  for (let i = 0; i < N; i += 100) {
    await Promise.all(
      Array.from({ length: Math.min(100, N - i) }, (_, j) =>
        post(base, "Register", {
          instance: {
            service: "checked",
            instanceId: `c-${i + j}`,
            host: "127.0.0.1",
            port: target.port,
            healthCheck: { http: { path: `/p/${i + j}` }, interval: `${INTERVAL_MS / 1000}s`, timeout: `${Math.min(2, INTERVAL_MS / 1000)}s` },
          },
        }),
      ),
    );
  }
  const registeredMs = performance.now() - t0;
  for (;;) {
    const list = await post(base, "ListServices", {});
    if (list.services.find((s) => s.service === "checked")?.servingCount === N) break;
    if (performance.now() - t0 > registeredMs + 4 * INTERVAL_MS + 30_000) throw new Error("the checks did not all pass");
    await sleep(200);
  }
  const passingMs = performance.now() - t0;
  await sleep(INTERVAL_MS); // first probes were spread over the first interval; now at their steady rate

  // checks alone: CPU and slip over WINDOW_S
  await fetch(`http://127.0.0.1:${target.port}/__record`);
  const slip0 = await slipBuckets(base);
  const cpu0 = cpuSeconds(server.child.pid);
  const w0 = performance.now();
  await sleep(WINDOW_S * 1000);
  const cpu = (cpuSeconds(server.child.pid) - cpu0) / ((performance.now() - w0) / 1000);
  const slip = p99Bound(slip0, await slipBuckets(base));
  await fetch(`http://127.0.0.1:${target.port}/__stop`);
  const arrivals = await (await fetch(`http://127.0.0.1:${target.port}/__arrivals`)).json();
  const deviations = [];
  let probes = 0;
  for (const [, times] of arrivals) {
    probes += times.length;
    for (let i = 1; i < times.length; i++) deviations.push(Math.abs(times[i] - times[i - 1] - INTERVAL_MS));
  }
  const gap = stats(deviations);

  // Discover while the checks run
  const withChecks = stats(await discoverLoad(server.port, DISCOVER_S));
  const metricsText = await metric(base);
  const count = (kind, result) => Number(new RegExp(`^maxine_check_probes_total\\{kind="${kind}",result="${result}"\\} (\\d+)$`, "m").exec(metricsText)?.[1] ?? 0);
  const result = {
    instances: N,
    interval_ms: INTERVAL_MS,
    window_s: WINDOW_S,
    // the machine's 1-minute load average at the end, against its cores: above about half, the figures are indicative only
    load_average: loadavg()[0],
    cores: cpus().length,
    registered_ms: Math.round(registeredMs),
    all_passing_ms: Math.round(passingMs),
    probes_per_second: probes / WINDOW_S,
    expected_probes_per_second: N / (INTERVAL_MS / 1000),
    registry_cpu_cores: cpu,
    registry_idle_cpu_cores: idleCpu,
    slip_p99_bucket_s: slip.le,
    slip_observations: slip.total,
    target_gap_deviation_ms: gap,
    discover: {
      calls_per_second: RATE,
      without_checks: { n: baseline.n, median_ms: baseline.median, p99_ms: baseline.p99 },
      with_checks: { n: withChecks.n, median_ms: withChecks.median, p99_ms: withChecks.p99 },
      median_ratio: withChecks.median / baseline.median,
      p99_ratio: withChecks.p99 / baseline.p99,
    },
    probes: { pass: count("http", "pass"), fail: count("http", "fail"), timeout: count("http", "timeout") },
  };
  console.log(JSON.stringify(result, null, 2));
  writeResult("health-checks", result);
} finally {
  await server.stop();
  target.child.kill();
}
