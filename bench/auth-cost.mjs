#!/usr/bin/env node
// The cost of authentication: Discover over gRPC (h2load, one connection,
// 50 streams) and heartbeat ack latency (2,000 Heartbeat streams beating
// every second, over raw node:http2), against a server without
// authentication and one with a tokens file and a policy (every call
// carries `authorization: Bearer <token>`; each call is authenticated and
// authorized). The two servers run one after the other, RUNS times,
// alternating, so that both see the same machine; the table gives medians
// and the ratio on/off. h2load checks HTTP statuses only: after each run
// the server's own counters (maxine_rpc_requests_total, code "ok") prove
// that the calls were answered, not refused. Writes docs/benchmarks/auth.json.
//
// Usage: node bench/auth-cost.mjs [seconds=10] [runs=3]
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http2 from "node:http2";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create, toBinary } from "@bufbuild/protobuf";
import { DiscoverRequestSchema, HeartbeatRequestSchema } from "@maxine/sdk/gen/maxine/registry/v1/registry_pb";
import { CAN_PIN, ensureCommand, pinned, startServer, stats, writeResult } from "./support.mjs";

const SECONDS = Number(process.argv[2] ?? 10);
const RUNS = Number(process.argv[3] ?? 3);
const STREAMS = 2000;
const TOKEN = "bench-token-7c1f0e5d9a";
const dir = mkdtempSync(join(tmpdir(), "maxine-auth-bench-"));
writeFileSync(join(dir, "tokens"), `bench sha256:${createHash("sha256").update(TOKEN).digest("hex")} bench\n`);
writeFileSync(join(dir, "policy.yaml"), 'roles:\n  bench:\n    - { permissions: [register], namespaces: ["*"], services: ["*"] }\n');
const AUTH_ENV = { MAXINE_AUTH_TOKENS_FILE: join(dir, "tokens"), MAXINE_AUTH_POLICY_FILE: join(dir, "policy.yaml"), MAXINE_AUTH_METRICS: "off" };
const SERVER_CPUS = "0";
const CLIENT_CPUS = "1";
const h2load = ensureCommand("h2load", "nghttp2-client");
const SVC = "/maxine.registry.v1.RegistryService";

function frame(bytes) {
  const f = Buffer.alloc(5 + bytes.length);
  f.writeUInt32BE(bytes.length, 1);
  f.set(bytes, 5);
  return f;
}

async function okCount(port, method) {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const m = new RegExp(`maxine_rpc_requests_total\\{method="${method}",protocol="grpc",code="ok"\\} (\\d+)`).exec(text);
  return m === null ? 0 : Number(m[1]);
}

async function discoverRun(port, auth) {
  const body = join(dir, "body");
  writeFileSync(body, frame(toBinary(DiscoverRequestSchema, create(DiscoverRequestSchema, { service: "auth-bench" }))));
  const before = await okCount(port, "Discover");
  const args = ["-c", "1", "-m", "50", "-t", "1", "-D", String(SECONDS), "--warm-up-time=2", "-d", body, "-H", "content-type: application/grpc", "-H", "te: trailers"];
  if (auth) args.push("-H", `authorization: Bearer ${TOKEN}`);
  args.push(`http://127.0.0.1:${port}${SVC}/Discover`);
  const r = spawnSync(...pinned(CLIENT_CPUS, h2load, args), { encoding: "utf8" });
  const done = /requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded/.exec(r.stdout);
  if (r.status !== 0 || done === null) throw new Error(`h2load failed (${r.status}): ${r.stdout}${r.stderr}`);
  const answered = (await okCount(port, "Discover")) - before;
  if (answered < Number(done[3])) throw new Error(`only ${answered} of ${done[3]} Discover calls were answered ok (refused?)`);
  return Number(done[3]) / SECONDS;
}

/** heartbeatRun holds STREAMS Heartbeat streams beating every second for SECONDS and returns ack latencies (ms). */
async function heartbeatRun(port, auth) {
  const session = http2.connect(`http://127.0.0.1:${port}`, { settings: { initialWindowSize: 1 << 20 } });
  const headers = { ":method": "POST", ":path": `${SVC}/Heartbeat`, "content-type": "application/grpc", te: "trailers", ...(auth ? { authorization: `Bearer ${TOKEN}` } : {}) };
  const lat = [];
  const streams = [];
  let failed = 0;
  for (let i = 0; i < STREAMS; i++) {
    const s = session.request(headers);
    const beat = (seq) => frame(toBinary(HeartbeatRequestSchema, create(HeartbeatRequestSchema, { sequence: BigInt(seq), beats: [{ key: { service: "auth-hb", instanceId: `h${i}` } }] })));
    const st = { s, beat, sentAt: 0, seq: 0 };
    s.on("data", () => {
      if (st.sentAt > 0) lat.push(performance.now() - st.sentAt);
      st.sentAt = 0;
    });
    s.on("error", () => failed++);
    streams.push(st);
  }
  const timing = { on: false };
  const tick = () => {
    for (const st of streams) {
      st.sentAt = timing.on ? performance.now() : 0;
      st.s.write(st.beat(++st.seq));
    }
  };
  tick();
  await new Promise((r) => setTimeout(r, 1000));
  timing.on = true;
  for (let t = 0; t < SECONDS; t++) {
    tick();
    await new Promise((r) => setTimeout(r, 1000));
  }
  for (const st of streams) st.s.close();
  session.close();
  if (failed > 0) throw new Error(`${failed} heartbeat streams failed`);
  return lat;
}

async function register(port, auth) {
  for (let i = 0; i < 10; i++) {
    const res = await fetch(`http://127.0.0.1:${port}${SVC}/Register`, {
      method: "POST",
      headers: { "content-type": "application/json", ...(auth ? { authorization: `Bearer ${TOKEN}` } : {}) },
      body: JSON.stringify({ instance: { service: "auth-bench", instanceId: `d${i}`, host: "10.7.0.1", port: 8000 + i }, leaseTtl: "3600s" }),
    });
    if (!res.ok) throw new Error(`register: HTTP ${res.status}: ${await res.text()}`);
  }
  for (let i = 0; i < STREAMS; i++) {
    const res = await fetch(`http://127.0.0.1:${port}${SVC}/Register`, {
      method: "POST",
      headers: { "content-type": "application/json", ...(auth ? { authorization: `Bearer ${TOKEN}` } : {}) },
      body: JSON.stringify({ instance: { service: "auth-hb", instanceId: `h${i}`, host: "10.7.0.2", port: 9000 }, leaseTtl: "600s" }),
    });
    if (!res.ok) throw new Error(`register: HTTP ${res.status}`);
  }
}

const results = { off: { discover: [], hb: [] }, on: { discover: [], hb: [] } };
try {
  for (let run = 0; run < RUNS; run++) {
    for (const mode of run % 2 === 0 ? ["off", "on"] : ["on", "off"]) {
      const auth = mode === "on";
      const server = await startServer({ ...(auth ? AUTH_ENV : {}), MAXINE_AUDIT_LOG: "off", MAXINE_MAX_HEARTBEATS_PER_CONNECTION: "10000" }, [], { mainThreadCpus: SERVER_CPUS });
      try {
        await register(server.port, auth);
        results[mode].discover.push(await discoverRun(server.port, auth));
        const lat = await heartbeatRun(server.port, auth);
        results[mode].hb.push(stats(lat).p99);
      } finally {
        await server.stop();
      }
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const row = (mode) => ({ mode, discover_per_second: median(results[mode].discover), heartbeat_ack_p99_ms: median(results[mode].hb), runs: results[mode] });
const off = row("off");
const on = row("on");
console.log(`Authentication cost, median of ${RUNS} alternating runs (${SECONDS} s each; ${CAN_PIN ? "server main thread on CPU 0, client on CPU 1" : "not pinned"})`);
console.log(`                      Discover gRPC req/s (h2load)   heartbeat ack p99 (${STREAMS} streams, 1 beat/s)`);
for (const r of [off, on]) console.log(`  tokens ${r.mode.padEnd(4)}            ${r.discover_per_second.toFixed(0).padStart(10)}          ${r.heartbeat_ack_p99_ms.toFixed(2).padStart(8)} ms`);
console.log(`  ratio on/off          ${(on.discover_per_second / off.discover_per_second).toFixed(3).padStart(10)}          ${(on.heartbeat_ack_p99_ms / off.heartbeat_ack_p99_ms).toFixed(3).padStart(8)}`);
writeResult("auth", { scenario: "authentication cost", seconds: SECONDS, runs: RUNS, streams: STREAMS, rows: [off, on] });
