#!/usr/bin/env node
// Soak: `minutes` of churn on one server (memory store), then a check that
// every watcher ends equal to the registry. Load, all on loopback:
//   - 2,000 SDK sessions (20 worker processes of 100, bench/soak-worker.mjs)
//     starting and stopping: each registers one instance, lives 10-60 s,
//     closes (deregisters), rests 0-2 s;
//   - every 30 s one worker (5 % of the sessions) is SIGKILLed and started
//     again: its instances leave by stream-bound liveness, then come back;
//   - 50 Registers/s through Connect JSON unary calls (as curl sends them),
//     500 instance ids with 5-s leases, so they also expire;
//   - 200 namespace-wide watchers (gRPC, 4 connections) that drop their
//     stream every 20-60 s and resume from their last revision. Every
//     change in the namespace is theirs, so revisions must come one by
//     one: each watcher counts duplicates, gaps and going back, and keeps
//     its own copy of the registry.
// Every 10 s: server RSS, V8 heap used, open handles, event-loop lag p99
// (from /proc and /metrics). At the end the load stops (the sessions open
// then stay, the unary leases run out), and each watcher's copy is compared
// with a fresh snapshot of the registry.
// Targets (issue 17): RSS and handles flat within 10 % after warm-up (the
// median of the last third against the first third, after the first two
// minutes), no lost or duplicated change on any watcher, every copy equal
// to the registry, 0 error logs (level >= 50) from the server.
//
// Usage: node bench/soak.mjs [minutes=10] [sessions=2000] [watchers=200]
import { fork } from "node:child_process";
import { readFileSync } from "node:fs";
import { setMaxListeners } from "node:events";
import { fileURLToPath } from "node:url";
import { equals } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { InstanceSchema, RegistryService, ResetReason } from "../sdks/typescript/dist/gen/maxine/registry/v1/registry_pb.js";
import { lineChart } from "./chart.mjs";
import { startServer, writeResult } from "./support.mjs";

const MINUTES = Number(process.argv[2] ?? 10);
const SESSIONS = Number(process.argv[3] ?? 2000);
const WATCHERS = Number(process.argv[4] ?? 200);
const WORKERS = 20;
const WARMUP_S = Math.min(120, (MINUTES * 60) / 5);
const SAMPLE_MS = 10_000;
const KILL_EVERY_MS = 30_000;
const UNARY_PER_S = 50;
const WORKER = fileURLToPath(new URL("./soak-worker.mjs", import.meta.url));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const MB = (b) => b / 2 ** 20;

const server = await startServer({ MAXINE_MAX_INSTANCES_PER_SERVICE: "100000" });
const base = `http://127.0.0.1:${server.port}`;
// Server log lines at error or fatal (pino levels 50, 60): the target is none.
const errorLogs = [];
let logTail = "";
server.child.stdout.on("data", (d) => {
  logTail += d;
  const lines = logTail.split("\n");
  logTail = lines.pop();
  for (const line of lines) if (/"level":(5|6)0\b/.test(line)) errorLogs.push(line.slice(0, 500));
});
const metricsText = async () => (await fetch(`${base}/metrics`)).text();
const metric = (text, name) => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(text)?.[1] ?? NaN);
const rssOf = (pid) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))[1]) * 1024;

// Workers.
const workers = new Map();
const workerCounts = new Map();
let killed = 0;
function startWorker(i) {
  const child = fork(WORKER, [base, String(SESSIONS / WORKERS), String(i)], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  child.on("message", (m) => {
    if (m.ready) return;
    const prev = workerCounts.get(i) ?? { opened: 0, closed: 0, errors: {}, past: { opened: 0, closed: 0, errors: {} } };
    workerCounts.set(i, { ...m, past: prev.past });
  });
  workers.set(i, child);
}
function killWorker(i) {
  const child = workers.get(i);
  child.kill("SIGKILL");
  killed++;
  // keep what the killed process had counted
  const c = workerCounts.get(i);
  if (c !== undefined) {
    const past = { opened: c.past.opened + c.opened, closed: c.past.closed + c.closed, errors: { ...c.past.errors } };
    for (const [k, v] of Object.entries(c.errors)) past.errors[k] = (past.errors[k] ?? 0) + v;
    workerCounts.set(i, { opened: 0, closed: 0, errors: {}, past });
  }
  return new Promise((r) => child.once("exit", r));
}
for (let i = 0; i < WORKERS; i++) startWorker(i);

// Watchers.
const stop = new AbortController();
setMaxListeners(0, stop.signal);
const transports = Array.from({ length: 4 }, () => createGrpcTransport({ baseUrl: base }));
const clients = transports.map((t) => createClient(RegistryService, t));
const keyOf = (i) => `${i.namespace}/${i.service}/${i.instanceId}`;

class CheckedWatcher {
  last = 0n;
  registryId = "";
  state = new Map();
  // a snapshot's chunks until its end
  pending = [];
  duplicates = 0;
  gaps = 0;
  backwards = 0;
  resets = 0;
  resetReasons = {};
  reconnects = 0;
  errors = 0;

  constructor(client) {
    this.client = client;
  }

  async run() {
    while (!stop.signal.aborted) {
      const round = new AbortController();
      const cut = setTimeout(() => round.abort(), 20_000 + Math.random() * 40_000);
      const onStop = () => round.abort();
      stop.signal.addEventListener("abort", onStop, { once: true });
      try {
        this.pending = [];
        const stream = this.client.watchServices({ namespace: "default", resumeRevision: this.last, registryId: this.registryId }, { signal: round.signal });
        for await (const m of stream) this.apply(m.message);
      } catch (err) {
        if (!round.signal.aborted) this.errors++;
      } finally {
        clearTimeout(cut);
        stop.signal.removeEventListener("abort", onStop);
      }
      if (!stop.signal.aborted) this.reconnects++;
    }
  }

  apply(msg) {
    switch (msg.case) {
      case "snapshot":
        this.pending.push(...msg.value.instances);
        break;
      case "snapshotEnd": {
        const end = msg.value;
        if (this.last !== 0n) {
          // a resume within the history never needs a snapshot; a watcher that fell behind gets one flagged OVERFLOW
          this.resets++;
          this.resetReasons[ResetReason[end.reason]] = (this.resetReasons[ResetReason[end.reason]] ?? 0) + 1;
        }
        this.state = new Map(this.pending.map((i) => [keyOf(i), i]));
        this.pending = [];
        this.last = end.revision;
        this.registryId = end.registryId;
        break;
      }
      case "event": {
        const e = msg.value;
        if (e.revision <= this.last) this.duplicates++;
        else if (e.revision !== this.last + 1n) this.gaps++;
        if (e.revision > this.last) this.last = e.revision;
        if (e.type === 3) this.state.delete(keyOf(e.instance));
        else this.state.set(keyOf(e.instance), e.instance);
        break;
      }
      case "progress":
        // every change of the namespace is this watcher's: a bookmark never runs ahead of what it got
        if (msg.value.revision < this.last) this.backwards++;
        else if (msg.value.revision > this.last) this.gaps++;
        break;
    }
  }
}
const watchers = Array.from({ length: WATCHERS }, (_, i) => new CheckedWatcher(clients[i % clients.length]));
const watching = watchers.map((w) => w.run());

// Unary Registers through Connect JSON.
const unary = { ok: 0, errors: {} };
const unaryTimer = setInterval(() => {
  for (let k = 0; k < UNARY_PER_S / 10; k++) {
    const id = Math.floor(Math.random() * 500);
    fetch(`${base}/maxine.registry.v1.RegistryService/Register`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ instance: { service: `unary-${id % 10}`, instanceId: `u${id}`, host: "10.2.0.1", port: 9000 + id }, leaseTtl: "5s" }),
    })
      .then(async (res) => {
        const text = await res.text();
        if (res.ok) unary.ok++;
        else unary.errors[`HTTP ${res.status} ${text.slice(0, 120)}`] = (unary.errors[`HTTP ${res.status} ${text.slice(0, 120)}`] ?? 0) + 1;
      })
      .catch((err) => (unary.errors[err.message] = (unary.errors[err.message] ?? 0) + 1));
  }
}, 100);

// Kills.
let nextVictim = 0;
let stopping = false;
const killTimer = setInterval(async () => {
  const i = nextVictim++ % WORKERS;
  await killWorker(i);
  if (!stopping) startWorker(i);
}, KILL_EVERY_MS);

// Samples.
const samples = [];
const t0 = performance.now();
async function sample() {
  const text = await metricsText();
  const s = {
    t: Math.round((performance.now() - t0) / 1000),
    rssMB: MB(rssOf(server.child.pid)),
    heapMB: MB(metric(text, "maxine_nodejs_heap_size_used_bytes")),
    handles: metric(text, "maxine_nodejs_active_handles_total"),
    lagP99Ms: metric(text, "maxine_nodejs_eventloop_lag_p99_seconds") * 1000,
    heartbeatStreams: metric(text, "maxine_heartbeat_streams"),
    watchers: metric(text, "maxine_watchers"),
  };
  samples.push(s);
  console.error(
    `t=${s.t}s rss ${s.rssMB.toFixed(0)} MB heap ${s.heapMB.toFixed(0)} MB handles ${s.handles} lag p99 ${s.lagP99Ms.toFixed(1)} ms streams ${s.heartbeatStreams} watchers ${s.watchers} unary ${unary.ok} killed ${killed}`,
  );
}
const end = t0 + MINUTES * 60_000;
while (performance.now() < end) {
  await sleep(Math.min(SAMPLE_MS, end - performance.now()));
  await sample();
}

// Stop the load; let the registry settle: the open sessions stay and beat, a killed worker's
// instances leave by liveness, the unary leases run out.
stopping = true;
clearInterval(killTimer);
clearInterval(unaryTimer);
for (const child of workers.values()) if (child.exitCode === null && child.signalCode === null) child.send("freeze");
await sleep(8000);

// A fresh watcher's snapshot is the registry; every checked watcher must reach its revision and hold the same.
async function reference() {
  const ac = new AbortController();
  const got = [];
  for await (const m of clients[0].watchServices({ namespace: "default" }, { signal: ac.signal })) {
    if (m.message.case === "snapshot") got.push(...m.message.value.instances);
    if (m.message.case === "snapshotEnd") {
      ac.abort();
      return { revision: m.message.value.revision, state: new Map(got.map((i) => [keyOf(i), i])) };
    }
  }
  throw new Error("reference watch ended before its snapshot");
}
// The registry must hold still at one revision that every watcher reached: a session that
// reconnected late can still change it, so take the reference again until it does (bounded).
let ref;
let caughtUp = false;
for (let attempt = 0; attempt < 10 && !caughtUp; attempt++) {
  ref = await reference();
  const deadline = performance.now() + 30_000;
  while (watchers.some((w) => w.last < ref.revision) && performance.now() < deadline) await sleep(100);
  caughtUp = watchers.every((w) => w.last === ref.revision);
  if (!caughtUp) await sleep(2000);
}
stop.abort();
await Promise.all(watching);
const stillOpen = [...workers.entries()].filter(([, c]) => c.exitCode === null && c.signalCode === null);
await Promise.all(stillOpen.map(([i]) => killWorker(i)));
killed -= stillOpen.length; // the closing kills are not part of the 5 %
const behind = watchers.filter((w) => w.last !== ref.revision).length;
let mismatched = 0;
for (const w of watchers) {
  if (w.last !== ref.revision) continue;
  const same = w.state.size === ref.state.size && [...ref.state].every(([k, i]) => w.state.has(k) && equals(InstanceSchema, w.state.get(k), i));
  if (!same) mismatched++;
}
await server.stop();

// Figures.
const sum = (f) => watchers.reduce((a, w) => a + f(w), 0);
const after = samples.filter((s) => s.t > WARMUP_S);
const third = Math.max(1, Math.floor(after.length / 3));
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const drift = (f) => median(after.slice(-third).map(f)) / median(after.slice(0, third).map(f));
const spread = (f) => Math.max(...after.map(f)) / Math.min(...after.map(f));
const totals = { opened: 0, closed: 0, errors: {} };
for (const c of workerCounts.values()) {
  totals.opened += c.opened + c.past.opened;
  totals.closed += c.closed + c.past.closed;
  for (const src of [c.errors, c.past.errors]) for (const [k, v] of Object.entries(src)) totals.errors[k] = (totals.errors[k] ?? 0) + v;
}
const result = {
  minutes: MINUTES,
  sessions: SESSIONS,
  watchers: WATCHERS,
  warmupSeconds: WARMUP_S,
  sessionsOpened: totals.opened,
  sessionsClosed: totals.closed,
  sessionErrors: totals.errors,
  workersKilled: killed,
  unaryRegisters: unary.ok,
  unaryErrors: unary.errors,
  watch: {
    finalRevision: Number(ref.revision),
    registryInstances: ref.state.size,
    reconnects: sum((w) => w.reconnects),
    duplicates: sum((w) => w.duplicates),
    gaps: sum((w) => w.gaps),
    backwards: sum((w) => w.backwards),
    resets: sum((w) => w.resets),
    resetReasons: watchers.reduce((acc, w) => {
      for (const [k, v] of Object.entries(w.resetReasons)) acc[k] = (acc[k] ?? 0) + v;
      return acc;
    }, {}),
    behindAtEnd: behind,
    streamErrors: sum((w) => w.errors),
    mismatched,
  },
  rssDrift: drift((s) => s.rssMB),
  heapDrift: drift((s) => s.heapMB),
  handlesDrift: drift((s) => s.handles),
  rssSpread: spread((s) => s.rssMB),
  handlesSpread: spread((s) => s.handles),
  lagP99MaxMs: Math.max(...samples.map((s) => s.lagP99Ms)),
  errorLogs: errorLogs.length,
  errorLogSamples: errorLogs.slice(0, 5),
  samples,
};
result.met =
  result.rssDrift <= 1.1 &&
  result.handlesDrift <= 1.1 &&
  result.watch.duplicates === 0 &&
  result.watch.gaps === 0 &&
  result.watch.backwards === 0 &&
  result.watch.mismatched === 0 &&
  result.watch.behindAtEnd === 0 &&
  result.errorLogs === 0;
const chart = lineChart({
  title: `Soak: ${MINUTES} min, ${SESSIONS} sessions, ${WATCHERS} watchers`,
  x: samples.map((s) => s.t),
  xUnit: "s",
  series: [
    { name: "RSS (MB)", values: samples.map((s) => s.rssMB) },
    { name: "V8 heap used (MB)", values: samples.map((s) => s.heapMB) },
    { name: "open handles", values: samples.map((s) => s.handles) },
    { name: "event-loop lag p99 (ms)", values: samples.map((s) => s.lagP99Ms) },
  ],
});
writeResult("soak", result, chart);
const pct = (r) => `${((r - 1) * 100).toFixed(1)} %`;
console.log(`soak: ${MINUTES} min, ${SESSIONS} sessions (${totals.opened} opened, ${totals.closed} closed, ${killed} workers of ${SESSIONS / WORKERS} SIGKILLed), ${WATCHERS} watchers (${result.watch.reconnects} resumes), ${unary.ok} unary Registers`);
console.log(`  after the ${WARMUP_S}-s warm-up, last third against first third: RSS ${pct(result.rssDrift)}, heap ${pct(result.heapDrift)}, handles ${pct(result.handlesDrift)} (max/min: RSS ${pct(result.rssSpread)}, handles ${pct(result.handlesSpread)}); event-loop lag p99 at most ${result.lagP99MaxMs.toFixed(1)} ms`);
console.log(`  watchers: ${result.watch.duplicates} duplicated, ${result.watch.gaps} lost, ${result.watch.backwards} going back, ${result.watch.resets} resets (by reason: ${JSON.stringify(result.watch.resetReasons)}), ${mismatched} of ${WATCHERS} unequal to the registry at revision ${ref.revision} (${ref.state.size} instances), ${behind} never reached it`);
console.log(`  server error logs: ${errorLogs.length}; session errors: ${JSON.stringify(totals.errors)}; unary errors: ${JSON.stringify(unary.errors)}`);
console.log(`  targets (flat within 10 %, nothing lost or duplicated, copies equal, no error logs): ${result.met ? "met" : "NOT met"}`);
// a lost, duplicated or wrong change is a bug, not a figure: the run fails
if (result.watch.duplicates + result.watch.gaps + result.watch.backwards + result.watch.mismatched > 0) process.exitCode = 1;
