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
import { spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { ensureCommand, freePort, startServer, stats, writeResult } from "./support.mjs";

const TRIALS = Number(process.argv[2] ?? 3);
const DOWN_AFTER_MS = 1000;
const NODE_TIMEOUT_MS = 2000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
ensureCommand("redis-server", "redis-server");

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

/** sentinelBackend: a master, its replica, one Sentinel; the master to kill is the one the Sentinel names. */
async function sentinelBackend() {
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
  return {
    env: { MAXINE_STORE: "redis", MAXINE_REDIS_SENTINELS: `127.0.0.1:${sentinelPort}`, MAXINE_REDIS_URL: "redis://127.0.0.1:1" },
    shard: async () => ({ master: masterPort, replica: replicaPort, kill: () => master.kill("SIGKILL") }),
    stop: async () => {
      await sentinel.stop();
      await replica.stop();
      await master.stop();
    },
  };
}

/** clusterBackend: three masters and a replica each (cluster-node-timeout NODE_TIMEOUT_MS); the master to kill serves the registry's slot. */
async function clusterBackend() {
  ensureCommand("redis-cli", "redis-tools");
  const nodes = [];
  try {
    for (let i = 0; i < 6; i++) {
      const port = await freePort();
      const bus = await freePort();
      nodes.push({
        port,
        proc: await redisProcess(
          (dir) => ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir, "--cluster-enabled", "yes", "--cluster-port", String(bus), "--cluster-node-timeout", String(NODE_TIMEOUT_MS), "--cluster-config-file", "nodes.conf"],
          "Ready to accept connections",
        ),
      });
    }
    const seeds = nodes.map((n) => `127.0.0.1:${n.port}`);
    const created = spawnSync("redis-cli", ["--cluster", "create", ...seeds, "--cluster-replicas", "1", "--cluster-yes"], { encoding: "utf8", timeout: 30_000 });
    if (created.status !== 0) throw new Error(`redis-cli --cluster create failed: ${created.stdout}${created.stderr}`);
    const deadline = Date.now() + 30_000;
    for (;;) {
      const states = await Promise.all(nodes.map((n) => command(n.port, "CLUSTER", "INFO").then(String)));
      const slots = await Promise.all(nodes.map((n) => command(n.port, "CLUSTER", "SLOTS")));
      if (states.every((x) => x.includes("cluster_state:ok")) && slots.every((sh) => sh.length === 3 && sh.every((x) => x.length >= 4))) break;
      if (Date.now() > deadline) throw new Error("Redis Cluster not ready in 30 s");
      await sleep(100);
    }
    return {
      env: { MAXINE_STORE: "redis", MAXINE_REDIS_CLUSTER: seeds.join(","), MAXINE_REDIS_URL: "redis://127.0.0.1:1" },
      shard: async () => {
        const slot = Number(await command(nodes[0].port, "CLUSTER", "KEYSLOT", "{maxine:default}:id"));
        const shard = (await command(nodes[0].port, "CLUSTER", "SLOTS")).find(([from, to]) => slot >= from && slot <= to);
        const master = Number(shard[2][1]);
        return { master, replica: Number(shard[3][1]), kill: () => nodes.find((n) => n.port === master).proc.kill("SIGKILL") };
      },
      stop: () => Promise.all(nodes.map((n) => n.proc.stop())),
    };
  } catch (err) {
    await Promise.all(nodes.map((n) => n.proc.stop()));
    throw err;
  }
}

/** command runs one command on the Redis at port. */
async function command(port, ...args) {
  const r = new Redis({ host: "127.0.0.1", port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  try {
    await r.connect();
    return await r.call(args[0], ...args.slice(1));
  } finally {
    r.disconnect();
  }
}

async function trial(k, backend) {
  const server = await startServer(backend.env);
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
    const shard = await backend.shard();
    const offset = async (port, key) => Number(new RegExp(`${key}:(\\d+)`).exec(String(await command(port, "INFO", "replication")))?.[1] ?? -1);
    for (let i = 0; i < 100; i++) {
      if ((await offset(shard.replica, "slave_repl_offset")) >= (await offset(shard.master, "master_repl_offset"))) break;
      await sleep(20);
    }
    const before = acked.size;
    killedAt = performance.now();
    await shard.kill();
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
    await backend.stop();
  }
}


/** run measures TRIALS failovers of fresh backends built by make. */
async function run(name, make) {
  const trials = [];
  for (let k = 0; k < TRIALS; k++) {
    const backend = await make();
    const t = await trial(k, backend);
    trials.push(t);
    console.error(`${name} trial ${k + 1}: writes again ${t.writesAgainMs.toFixed(0)} ms after the master's SIGKILL; ${t.acked} acknowledged, ${t.lost} missing`);
  }
  return { trials, writesAgainMs: stats(trials.map((t) => t.writesAgainMs)), lost: trials.reduce((a, t) => a + t.lost, 0) };
}

const sentinel = { downAfterMs: DOWN_AFTER_MS, ...(await run("Sentinel", sentinelBackend)) };
const cluster = { nodeTimeoutMs: NODE_TIMEOUT_MS, ...(await run("Cluster", clusterBackend)) };
writeResult("redis-failover", { sentinel, cluster });
const line = (r) => `${r.writesAgainMs.median.toFixed(0)} ms after the master's SIGKILL (median of ${TRIALS}; min ${r.writesAgainMs.min.toFixed(0)}, max ${r.writesAgainMs.max.toFixed(0)}); ${r.lost} acknowledged Registers missing afterwards`;
console.log(`Sentinel failover (down-after ${DOWN_AFTER_MS} ms, quorum 1): Registers acknowledged again ${line(sentinel)}`);
console.log(`Cluster failover (cluster-node-timeout ${NODE_TIMEOUT_MS} ms, 3 masters + 3 replicas): Registers acknowledged again ${line(cluster)}`);
if (sentinel.lost + cluster.lost > 0) process.exitCode = 1;
