#!/usr/bin/env node
// SDK local pick: the TypeScript SDK's Picker over a watched view of 100
// SERVING instances, each strategy for 1 s in this process, no network.
// Writes docs/benchmarks/sdk-pick.json.
//
// Usage: node bench/sdk-pick.mjs [instances=100]
import { create } from "@bufbuild/protobuf";
import { WatchServicesResponseSchema } from "../sdks/typescript/dist/gen/maxine/registry/v1/registry_pb.js";
import { InstanceView, Picker, Strategy } from "../sdks/typescript/dist/index.js";
import { writeResult } from "./support.mjs";

const N = Number(process.argv[2] ?? 100);
const view = new InstanceView();
const instances = Array.from({ length: N }, (_, i) => ({ service: "pick", instanceId: `p${i}`, host: "10.5.0.1", port: 8000 + i, weight: 1 + (i % 5) * 50, status: 1 }));
view.apply(create(WatchServicesResponseSchema, { message: { case: "snapshot", value: { instances } } }));
view.apply(create(WatchServicesResponseSchema, { message: { case: "snapshotEnd", value: { revision: 1n, registryId: "bench" } } }));
const picker = new Picker(view);
if (picker.pick("pick") === undefined) throw new Error("the view has no SERVING instance: the bench set-up is wrong");

const keys = Array.from({ length: 1024 }, (_, i) => `user-${i}`);
const rows = [];
for (const [name, strategy] of [["ROUND_ROBIN", Strategy.ROUND_ROBIN], ["RANDOM", Strategy.RANDOM], ["WEIGHTED", Strategy.WEIGHTED], ["CONSISTENT_HASH", Strategy.CONSISTENT_HASH], ["RENDEZVOUS", Strategy.RENDEZVOUS]]) {
  const hashed = strategy === Strategy.CONSISTENT_HASH || strategy === Strategy.RENDEZVOUS;
  let n = 0;
  let sink = 0;
  const end = performance.now() + 1000;
  while (performance.now() < end) {
    for (let i = 0; i < 1000; i++) sink += picker.pick("pick", strategy, hashed ? keys[(n + i) & 1023] : "").port;
    n += 1000;
  }
  if (sink === 0) throw new Error("no pick returned an instance");
  rows.push({ strategy: name, perSecond: n });
}
console.log(`TypeScript SDK local pick over ${N} instances, 1 s per strategy, one core (Node.js ${process.version})`);
for (const r of rows) console.log(`  ${r.strategy.padEnd(16)} ${(r.perSecond / 1e6).toFixed(2)} M picks/s`);
writeResult("sdk-pick", { scenario: "TypeScript SDK local pick", instances: N, rows });
