#!/usr/bin/env node
// Slow watchers: what watchers that never read cost the server, and whether
// a healthy watcher beside them notices. One server process; this Node.js
// process is the client. Phases:
//   0. Warm-up: changes until the shared watch history is full (history + 1,000),
//      so that every later phase runs in the same steady state.
//   A. 1 healthy watcher (gRPC, connect-node): `changes / 4` changes, one at a
//      time: the fan-out latency without slow watchers (the control before).
//   B. `slow` watchers that never read (raw HTTP/2 streams, paused once
//      their snapshot has arrived; 250 per connection, on their own
//      connections) join, then `changes` changes: the healthy watcher must
//      get every one, in order, and its latency is compared with the
//      controls' (same run, same server). Server RSS is sampled.
//   C. The slow watchers go (their connections are closed); after a forced
//      full GC the live heap and RSS again (do they return?), then another
//      `changes / 4` changes without them: the control after. The ratio is
//      B against A and C together, so that a drift of the run in either
//      direction (the process warming up, the heap growing) is not counted
//      for or against the slow watchers; C against A is printed as the
//      control's own spread.
// Each change updates one of 1,000 instances (its metadata counts changes,
// 300 bytes of padding), so the registry's size stays put.
//
// Usage: node bench/slow-watchers.mjs [slow=1000] [changes=20000]
import http2 from "node:http2";
import { readFileSync } from "node:fs";
import { setMaxListeners } from "node:events";
import { create, toBinary } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { RegistryService, WatchServicesRequestSchema } from "../sdks/typescript/dist/gen/maxine/registry/v1/registry_pb.js";
import { GC_PROBE_ARGS, fmt, gcProbe, startServer, stats, writeResult } from "./support.mjs";

const SLOW = Number(process.argv[2] ?? 1000);
const CHANGES = Number(process.argv[3] ?? 20000);
const BASELINE = Math.max(1, Math.floor(CHANGES / 4));
const POOL = 1000;
const PER_CONNECTION = 250;
const SERVICE = "churn";
const PAD = "p".repeat(300);

const rssBytes = (pid) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))[1]) * 1024;
const MB = (b) => b / 2 ** 20;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const HISTORY = 10000; // MAXINE_WATCH_HISTORY's default, set explicitly: the warm-up fills it
const server = await startServer({ MAXINE_MAX_WATCHERS_PER_CONNECTION: String(PER_CONNECTION), MAXINE_WATCH_HISTORY: String(HISTORY) }, GC_PROBE_ARGS);
const pid = server.child.pid;
const base = `http://127.0.0.1:${server.port}`;
const heapUsed = async () => Number(/^maxine_nodejs_heap_size_used_bytes (\S+)$/m.exec(await (await fetch(`${base}/metrics`)).text())[1]);
const metric = async (name) => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(await (await fetch(`${base}/metrics`)).text())[1]);
const memory = async () => ({ rssMB: MB(rssBytes(pid)), heapMB: MB(await heapUsed()), externalMB: MB(await metric("maxine_nodejs_external_memory_bytes")) });
/** collected is the server's memory after a forced full GC: what is live, not what waits for the collector. */
const collected = async () => {
  const m = await gcProbe(server);
  return { rssMB: MB(m.rss), heapMB: MB(m.heapUsed), externalMB: MB(m.external + m.arrayBuffers) };
};

const client = createClient(RegistryService, createGrpcTransport({ baseUrl: base }));
const watchClient = createClient(RegistryService, createGrpcTransport({ baseUrl: base }));
const ac = new AbortController();
setMaxListeners(0, ac.signal);

// The registry: POOL instances.
let n = 0;
const change = () => {
  const i = n++;
  return client.register({ instance: { service: SERVICE, instanceId: `c${i % POOL}`, host: "10.9.0.1", port: 80, metadata: { n: String(i), pad: PAD } } });
};
for (let i = 0; i < POOL; i += 100) await Promise.all(Array.from({ length: 100 }, change));

// The healthy watcher checks order and records when each revision arrived.
let last = 0;
let outOfOrder = 0;
let resets = 0;
const arrived = new Map();
let wake = () => {};
const healthy = (async () => {
  for await (const m of watchClient.watchServices({ services: [SERVICE] }, { signal: ac.signal })) {
    if (m.message.case === "snapshotEnd") {
      if (m.message.value.reset) resets++;
      last = Number(m.message.value.revision);
    } else if (m.message.case === "event") {
      const rev = Number(m.message.value.revision);
      if (rev !== last + 1) outOfOrder++;
      last = rev;
      arrived.set(rev, performance.now());
    }
    wake();
  }
})().catch((e) => (ac.signal.aborted ? undefined : e));
while (last === 0) await new Promise((r) => (wake = r));

/** churn makes count changes one at a time; each one's latency is from the Register call to the healthy watcher's event. */
async function churn(count) {
  const samples = [];
  for (let k = 0; k < count; k++) {
    const start = performance.now();
    const r = await change();
    const rev = Number(r.revision);
    while (!arrived.has(rev)) await new Promise((res) => (wake = res));
    samples.push(arrived.get(rev) - start);
    arrived.delete(rev);
  }
  return samples;
}

// 0 and A. The warm-up fills the watch history (shared by every watcher), so that what grows in
// phase B is the slow watchers' own, and every phase runs with a full history.
await churn(HISTORY + 1000);
const controlBefore = await churn(BASELINE);
const before = await memory();
const beforeCollected = await collected();
console.error(`control before done: median ${fmt(stats(controlBefore).median)}; opening ${SLOW} slow watchers`);

// B. Slow watchers join: raw HTTP/2 gRPC streams that stop reading once their snapshot has arrived.
const requestFrame = (() => {
  const body = toBinary(WatchServicesRequestSchema, create(WatchServicesRequestSchema, { services: [SERVICE] }));
  const f = Buffer.alloc(5 + body.length);
  f.writeUInt32BE(body.length, 1);
  f.set(body, 5);
  return f;
})();
// Each paused stream holds up to its 64 KB window unread on the client, which also holds back the
// connection's window: open that wide (and allow the memory), so that one paused stream never stalls another.
const sessions = Array.from({ length: Math.ceil(SLOW / PER_CONNECTION) }, () => {
  const session = http2.connect(base, { maxSessionMemory: 64 });
  session.on("connect", () => session.setLocalWindowSize(2 ** 31 - 1));
  return session;
});
const slowStreams = [];
let firstData = 0;
const progress = setInterval(() => process.env.BENCH_DEBUG === "1" && console.error(`slow streams with data: ${firstData}/${SLOW}`), 1000);
await Promise.all(
  Array.from({ length: SLOW }, (_, i) => {
    const s = sessions[i % sessions.length].request({
      ":method": "POST",
      ":path": "/maxine.registry.v1.RegistryService/WatchServices",
      "content-type": "application/grpc",
      te: "trailers",
    });
    s.on("error", (e) => process.env.BENCH_DEBUG === "1" && console.error(`slow stream ${i}: ${e.message}`));
    s.end(requestFrame);
    slowStreams.push(s);
    return new Promise((resolve) => {
      s.once("data", () => {
        s.pause(); // never read again: flow control stops the server's writes to it
        firstData++;
        resolve();
      });
    });
  }),
);
clearInterval(progress);
await sleep(1000);
const slowOpen = await memory();
console.error(`slow watchers open; ${CHANGES} changes`);
let peakRss = rssBytes(pid);
const sampler = setInterval(() => (peakRss = Math.max(peakRss, rssBytes(pid))), 100);
const t0 = performance.now();
const withSlow = stats(await churn(CHANGES));
const churnSeconds = (performance.now() - t0) / 1000;
clearInterval(sampler);
peakRss = Math.max(peakRss, rssBytes(pid));
const afterChurn = await memory();
const overflows = Number(/^maxine_watch_overflows_total (\S+)$/m.exec(await (await fetch(`${base}/metrics`)).text())[1]);

// C. The slow watchers go; the control after.
for (const s of sessions) s.destroy();
await sleep(3000);
const gone = await memory();
const goneCollected = await collected();
const controlAfter = await churn(BASELINE);
const baseline = stats([...controlBefore, ...controlAfter]);
const before1 = stats(controlBefore);
const after1 = stats(controlAfter);

ac.abort();
await healthy;
await server.stop();

const growthMB = MB(peakRss) - before.rssMB;
const result = {
  slow: SLOW,
  changes: CHANGES,
  baselineChanges: BASELINE,
  latency: {
    baseline,
    withSlow,
    medianRatio: withSlow.median / baseline.median,
    p99Ratio: withSlow.p99 / baseline.p99,
    controls: { before: before1, after: after1, medianRatio: after1.median / before1.median },
  },
  healthy: { outOfOrder, resets, lastRevision: last },
  memory: { before, slowOpen, peakRssMB: MB(peakRss), afterChurn, gone, collected: { before: beforeCollected, gone: goneCollected } },
  rssGrowthMB: growthMB,
  liveGrowthMB: afterChurn.heapMB + afterChurn.externalMB - before.heapMB - before.externalMB,
  // what stays live once they went, after a full GC on both sides: RSS returns when this is ~0
  retainedMB: goneCollected.heapMB + goneCollected.externalMB - beforeCollected.heapMB - beforeCollected.externalMB,
  kbPerSlowWatcher: (growthMB * 1024) / SLOW,
  overflows,
  churnSeconds,
};
writeResult("slow-watchers", result);
console.log(`slow watchers: ${SLOW} never reading + 1 healthy, ${CHANGES} changes (${(CHANGES / churnSeconds).toFixed(0)}/s, one at a time)`);
console.log(`  healthy watcher: ${outOfOrder} out of order or missing, ${resets} resets`);
console.log(`  fan-out latency to the healthy watcher: median ${fmt(withSlow.median)}, p99 ${fmt(withSlow.p99)}; without them (${BASELINE} changes before and ${BASELINE} after, same run): median ${fmt(baseline.median)}, p99 ${fmt(baseline.p99)}; ratio median ${result.latency.medianRatio.toFixed(2)}, p99 ${result.latency.p99Ratio.toFixed(2)} (the controls against each other: median ${fmt(before1.median)} before, ${fmt(after1.median)} after, ratio ${result.latency.controls.medianRatio.toFixed(2)})`);
console.log(`  server RSS: ${before.rssMB.toFixed(0)} MB before, ${slowOpen.rssMB.toFixed(0)} MB with the slow watchers open, peak ${MB(peakRss).toFixed(0)} MB during the changes (growth ${growthMB.toFixed(1)} MB, ${result.kbPerSlowWatcher.toFixed(1)} KB per slow watcher), ${gone.rssMB.toFixed(0)} MB after they went`);
const live = (m) => m.heapMB + m.externalMB;
console.log(`  live memory (V8 heap used + external buffers): ${live(before).toFixed(0)} MB before, ${live(slowOpen).toFixed(0)} MB open, ${live(afterChurn).toFixed(0)} MB after the changes (growth ${(live(afterChurn) - live(before)).toFixed(1)} MB, ${(((live(afterChurn) - live(before)) * 1024) / SLOW).toFixed(1)} KB per slow watcher), ${live(gone).toFixed(0)} MB after they went; watch overflows ${overflows}`);
console.log(`  after a full GC: live ${live(beforeCollected).toFixed(1)} MB before they came, ${live(goneCollected).toFixed(1)} MB after they went (retained ${result.retainedMB.toFixed(1)} MB); RSS ${beforeCollected.rssMB.toFixed(0)} / ${goneCollected.rssMB.toFixed(0)} MB`);
if (outOfOrder > 0 || resets > 0) process.exitCode = 1;
