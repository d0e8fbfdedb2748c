#!/usr/bin/env node
// Redis Sentinel failover, measured from a client's side: a master, its
// replica and one Sentinel (quorum 1, down-after-milliseconds 1000,
// failover-timeout 5000) on private ports; one Maxine server in Redis mode
// that finds the master through the Sentinel (MAXINE_REDIS_SENTINELS); a
// writer registering a new instance every 20 ms over Connect JSON. The
// master is SIGKILLed once its replica has caught up; the figure is the time
// from the kill to the first Register acknowledged again (what a registering
// client sees), then every instance acknowledged before and after the kill
// must be in the registry. TRIALS fresh setups; medians are printed.
//
// Usage: node bench/redis-failover.mjs [trials=3]
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { ensureCommand, startServer, stats, writeResult } from "./support.mjs";

const TRIALS = Number(process.argv[2] ?? 3);
const DOWN_AFTER_MS = 1000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
ensureCommand("redis-server", "redis-server");

async function freePort() {
  const srv = createServer().listen(0, "127.0.0.1");
  await once(srv, "listening");
  const { port } = srv.address();
  srv.close();
  await once(srv, "close");
  return port;
}

/** redisProcess runs redis-server with args in a private directory and resolves once its log shows ready (the Sentinel's: monitoring). */
async function redisProcess(args, readyLine) {
  const dir = mkdtempSync(join(tmpdir(), "maxine-bench-failover-"));
  const child = spawn("redis-server", args(dir), { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  await new Promise((resolve, reject) => {
    const onData = (d) => (out += d) && out.includes(readyLine) && resolve();
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.once("exit", (code) => reject(new Error(`redis-server exited with ${code}: ${out}`)));
  });
  return {
    kill(signal = "SIGTERM") {
      if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
      const exited = once(child, "exit");
      child.kill(signal);
      return exited;
    },
    async stop() {
      await this.kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function trial(k) {
  const masterPort = await freePort();
  const replicaPort = await freePort();
  const sentinelPort = await freePort();
  const base = (port) => (dir) => ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir];
  const master = await redisProcess(base(masterPort), "Ready to accept connections");
  const replica = await redisProcess((dir) => [...base(replicaPort)(dir), "--replicaof", "127.0.0.1", String(masterPort)], "Ready to accept connections");
  const sentinel = await redisProcess((dir) => {
    const conf = join(dir, "sentinel.conf");
    writeFileSync(
      conf,
      [`port ${sentinelPort}`, "bind 127.0.0.1", `dir ${dir}`, `sentinel monitor mymaster 127.0.0.1 ${masterPort} 1`, `sentinel down-after-milliseconds mymaster ${DOWN_AFTER_MS}`, "sentinel failover-timeout mymaster 5000", ""].join("\n"),
    );
    return [conf, "--sentinel"];
  }, "+monitor master mymaster");
  const server = await startServer({ MAXINE_STORE: "redis", MAXINE_REDIS_SENTINELS: `127.0.0.1:${sentinelPort}`, MAXINE_REDIS_URL: "redis://127.0.0.1:1" });
  const url = `http://127.0.0.1:${server.port}/maxine.registry.v1.RegistryService`;
  const acked = new Set();
  let n = 0;
  let running = true;
  let firstAfterKill;
  let killedAt = Infinity;
  const writer = (async () => {
    while (running) {
      const id = `f${k}-${n++}`;
      const sent = performance.now();
      const res = await fetch(`${url}/Register`, {
        method: "POST",
        headers: { "content-type": "application/json", "connect-timeout-ms": "2000" },
        body: JSON.stringify({ instance: { service: "failover", instanceId: id, host: "10.3.0.1", port: 80 }, leaseTtl: "600s" }),
      }).catch(() => undefined);
      if (res?.ok) {
        acked.add(id);
        // the first Register sent after the kill that is acknowledged: one already in flight does not count
        if (sent > killedAt && firstAfterKill === undefined) firstAfterKill = performance.now();
      }
      await res?.text();
      await sleep(20);
    }
  })();
  try {
    await sleep(1000);
    // kill the master once its replica holds everything it acknowledged
    const m = new Redis(masterPort, "127.0.0.1", { lazyConnect: true });
    const r = new Redis(replicaPort, "127.0.0.1", { lazyConnect: true });
    await Promise.all([m.connect(), r.connect()]);
    const offset = (info, key) => Number(new RegExp(`${key}:(\\d+)`).exec(info)?.[1] ?? -1);
    for (let i = 0; i < 100; i++) {
      if (offset(await r.info("replication"), "slave_repl_offset") >= offset(await m.info("replication"), "master_repl_offset")) break;
      await sleep(20);
    }
    m.disconnect();
    r.disconnect();
    const before = acked.size;
    killedAt = performance.now();
    await master.kill("SIGKILL");
    const deadline = killedAt + 30_000;
    while (firstAfterKill === undefined && performance.now() < deadline) await sleep(20);
    await sleep(500);
    running = false;
    await writer;
    const res = await fetch(`${url}/Discover`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ service: "failover", includeAll: true }) });
    const held = new Set(((await res.json()).instances ?? []).map((i) => i.instanceId));
    const lost = [...acked].filter((id) => !held.has(id)).length;
    return { writesAgainMs: firstAfterKill === undefined ? NaN : firstAfterKill - killedAt, ackedBefore: before, acked: acked.size, lost };
  } finally {
    running = false;
    await writer;
    await server.stop();
    await sentinel.stop();
    await replica.stop();
    await master.stop();
  }
}

const trials = [];
for (let k = 0; k < TRIALS; k++) {
  const t = await trial(k);
  trials.push(t);
  console.error(`trial ${k + 1}: writes again ${t.writesAgainMs.toFixed(0)} ms after the master's SIGKILL; ${t.acked} acknowledged, ${t.lost} missing`);
}
const s = stats(trials.map((t) => t.writesAgainMs));
const lost = trials.reduce((a, t) => a + t.lost, 0);
writeResult("redis-failover", { sentinel: { downAfterMs: DOWN_AFTER_MS, trials, writesAgainMs: s, lost } });
console.log(
  `Sentinel failover (down-after ${DOWN_AFTER_MS} ms, quorum 1): Registers acknowledged again ${s.median.toFixed(0)} ms after the master's SIGKILL (median of ${TRIALS}; min ${s.min.toFixed(0)}, max ${s.max.toFixed(0)}); ${lost} acknowledged Registers missing afterwards`,
);
if (lost > 0) process.exitCode = 1;
