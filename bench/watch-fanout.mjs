#!/usr/bin/env node
// Watch fan-out: N WatchServices streams on one service, then one Register;
// measures the time from the Register call to the ADDED event having arrived
// on all N streams, over several trials. Server: the built server in its own
// process. Client: this Node.js process (connect-node, gRPC over HTTP/2,
// streams spread over several connections), which also does the Register.
//
// Usage: node bench/watch-fanout.mjs [watchers=1000] [trials=5]
import { setMaxListeners } from "node:events";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { RegistryService } from "../sdks/typescript/dist/gen/maxine/registry/v1/registry_pb.js";
import { fmt, startServer, stats } from "./support.mjs";

const N = Number(process.argv[2] ?? 1000);
const TRIALS = Number(process.argv[3] ?? 5);
const PER_CONNECTION = 250;

const server = await startServer({ MAXINE_MAX_WATCHERS_PER_CONNECTION: String(PER_CONNECTION) });
const base = `http://127.0.0.1:${server.port}`;
const clients = Array.from({ length: Math.ceil(N / PER_CONNECTION) }, () =>
  createClient(RegistryService, createGrpcTransport({ baseUrl: base })),
);
const ac = new AbortController();
setMaxListeners(0, ac.signal); // one listener per stream
let waiting = 0;
let onAll = () => {};
let target = "";

async function watch(client) {
  let synced = false;
  for await (const m of client.watchServices({ services: ["fanout"] }, { signal: ac.signal })) {
    if (m.message.case === "snapshotEnd" && !synced) {
      synced = true;
      if (--waiting === 0) onAll();
    } else if (m.message.case === "event" && m.message.value.instance?.instanceId === target) {
      if (--waiting === 0) onAll();
    }
  }
}

waiting = N;
const ready = new Promise((r) => (onAll = r));
const streams = Array.from({ length: N }, (_, i) => watch(clients[i % clients.length]).catch((e) => e));
await ready;

const samples = [];
for (let t = 0; t < TRIALS; t++) {
  target = `fan-${t}`;
  waiting = N;
  const all = new Promise((r) => (onAll = r));
  const start = performance.now();
  await clients[0].register({ instance: { service: "fanout", instanceId: target, host: "10.9.0.1", port: 80 } });
  await all;
  samples.push(performance.now() - start);
  await new Promise((r) => setTimeout(r, 200));
}
ac.abort();
await Promise.all(streams);
await server.stop();

const s = stats(samples);
console.log(`watch fan-out, ${N} streams, ${TRIALS} trials (client: Node.js connect-node gRPC/HTTP2, ${clients.length} connections)`);
console.log(`  Register -> ADDED on all streams: median ${fmt(s.median)}, min ${fmt(s.min)}, max ${fmt(s.max)}`);
console.log(`  samples: ${samples.map((x) => x.toFixed(1)).join(", ")}`);
