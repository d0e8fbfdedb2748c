// Redis failover under a Maxine server: how long Register is refused when
// Redis's master dies, and whether any acknowledged registration is lost.
// Two set-ups, each started fresh per run on loopback ports:
//   sentinel: a master, a replica and one Sentinel (down-after 2000 ms),
//             Maxine with MAXINE_REDIS_SENTINELS;
//   cluster:  three masters and three replicas (cluster-node-timeout
//             2000 ms), Maxine with MAXINE_REDIS_CLUSTER.
// A client registers a new instance every 10 ms (Connect over HTTP/2, one at
// a time); once the replica has caught up, the master of the registry's keys
// is SIGKILLed. Printed per set-up, medians over the runs: the time until
// Redis promoted the replica (polling ROLE), the time until Maxine accepted
// a Register again, and the acknowledged registrations missing afterwards.
// Usage: node bench/redis-failover.mjs [runs=3]
import { spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Http2SessionManager } from "@connectrpc/connect-node";
import { createMaxineClient } from "@maxine/sdk";
import { Redis } from "ioredis";
import { ensureCommand, fmt, startServer, stats, writeResult } from "./support.mjs";

const RUNS = Number(process.argv[2] ?? 3);
const DOWN_AFTER_MS = 2000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

ensureCommand("redis-server", "redis-server");
ensureCommand("redis-cli", "redis-tools");

async function freePort() {
  const srv = createServer().listen(0, "127.0.0.1");
  await once(srv, "listening");
  const { port } = srv.address();
  srv.close();
  await once(srv, "close");
  return port;
}

/** redis starts one redis-server (or a Sentinel with a config file) and resolves when it is ready. */
async function redis(args, ready = "Ready to accept connections", port) {
  const dir = mkdtempSync(join(tmpdir(), "maxine-bench-failover-"));
  port ??= await freePort();
  const argv = typeof args === "function" ? args(dir, port) : ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir, ...args];
  const child = spawn("redis-server", argv, { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`redis-server did not start: ${out}`)), 15_000);
    const on = (d) => {
      out += d;
      if (out.includes(ready)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout.on("data", on);
    child.stderr.on("data", on);
  });
  return {
    port,
    kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = once(child, "exit");
        child.kill("SIGKILL");
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function call(port, ...args) {
  const r = new Redis({ host: "127.0.0.1", port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  try {
    await r.connect();
    return await r.call(...args);
  } finally {
    r.disconnect();
  }
}

const offset = async (port, field) => String(await call(port, "INFO", "replication")).match(new RegExp(`${field}:(\\d+)`))?.[1];

async function sentinelSetup() {
  const master = await redis([]);
  const replica = await redis(["--replicaof", "127.0.0.1", String(master.port)]);
  const sentinel = await redis(
    (dir, port) => {
      const conf = join(dir, "sentinel.conf");
      writeFileSync(
        conf,
        [`port ${port}`, "bind 127.0.0.1", `dir ${dir}`, `sentinel monitor mymaster 127.0.0.1 ${master.port} 1`, `sentinel down-after-milliseconds mymaster ${DOWN_AFTER_MS}`, "sentinel failover-timeout mymaster 10000", ""].join("\n"),
      );
      return [conf, "--sentinel"];
    },
    "+monitor master mymaster",
  );
  return {
    env: { MAXINE_REDIS_URL: "redis://127.0.0.1:1", MAXINE_REDIS_SENTINELS: `127.0.0.1:${sentinel.port}` },
    master: master.port,
    replica: replica.port,
    kill: () => master.kill(),
    close: () => Promise.all([sentinel, replica, master].map((p) => p.stop())),
  };
}

async function clusterSetup() {
  const nodes = [];
  for (let i = 0; i < 6; i++) {
    const bus = await freePort();
    nodes.push(await redis(["--cluster-enabled", "yes", "--cluster-port", String(bus), "--cluster-node-timeout", String(DOWN_AFTER_MS), "--cluster-config-file", "nodes.conf"]));
  }
  const seeds = nodes.map((n) => `127.0.0.1:${n.port}`);
  const created = spawnSync("redis-cli", ["--cluster", "create", ...seeds, "--cluster-replicas", "1", "--cluster-yes"], { encoding: "utf8" });
  if (created.status !== 0) throw new Error(`redis-cli --cluster create: ${created.stdout}${created.stderr}`);
  const slot = Number(await call(nodes[0].port, "CLUSTER", "KEYSLOT", "{maxine:default}:id"));
  let shard;
  for (const deadline = Date.now() + 30_000; ; await sleep(100)) {
    const states = await Promise.all(nodes.map((n) => call(n.port, "CLUSTER", "INFO")));
    const slots = await call(nodes[0].port, "CLUSTER", "SLOTS");
    shard = slots.find(([from, to]) => slot >= from && slot <= to);
    if (states.every((s) => String(s).includes("cluster_state:ok")) && shard?.length >= 4) break;
    if (Date.now() > deadline) throw new Error("cluster not ready in 30 s");
  }
  const master = Number(shard[2][1]);
  return {
    env: { MAXINE_REDIS_URL: "redis://127.0.0.1:1", MAXINE_REDIS_CLUSTER: seeds.join(",") },
    master,
    replica: Number(shard[3][1]),
    kill: () => nodes.find((n) => n.port === master).kill(),
    close: () => Promise.all(nodes.map((n) => n.stop())),
  };
}

async function run(setup) {
  const s = await setup();
  const server = await startServer({ MAXINE_STORE: "redis", MAXINE_LOG_LEVEL: "warn", ...s.env, MAXINE_LEASE_TTL_DEFAULT: "60s" });
  const connection = new Http2SessionManager(`http://127.0.0.1:${server.port}`);
  const client = createMaxineClient({ baseUrl: `http://127.0.0.1:${server.port}`, sessionManager: connection });
  const acked = [];
  let refused = 0;
  let firstAfterKill;
  let killedAt;
  let running = true;
  const writer = (async () => {
    for (let i = 0; running; i++) {
      const id = `i-${i}`;
      try {
        await client.register({ instance: { service: "failover", instanceId: id, host: "10.0.0.1", port: 1 } }, { timeoutMs: 2000 });
        acked.push(id);
        if (killedAt !== undefined && firstAfterKill === undefined) firstAfterKill = performance.now();
      } catch {
        refused++;
      }
      await sleep(10);
    }
  })();
  try {
    await sleep(1000);
    for (const deadline = Date.now() + 10_000; (await offset(s.replica, "slave_repl_offset")) !== (await offset(s.master, "master_repl_offset")); await sleep(5)) {
      if (Date.now() > deadline) throw new Error("replica did not catch up");
    }
    killedAt = performance.now();
    s.kill();
    let promotedAt;
    for (const deadline = Date.now() + 60_000; firstAfterKill === undefined || promotedAt === undefined; await sleep(20)) {
      if (promotedAt === undefined && (await call(s.replica, "ROLE").catch(() => ["?"]))[0] === "master") promotedAt = performance.now();
      if (Date.now() > deadline) throw new Error("no write accepted within 60 s of the kill");
    }
    await sleep(500);
    running = false;
    await writer;
    const listed = await client.discover({ service: "failover", includeAll: true });
    const have = new Set(listed.instances.map((i) => i.instanceId));
    return {
      promotedMs: promotedAt - killedAt,
      writableMs: firstAfterKill - killedAt,
      acked: acked.length,
      lost: acked.filter((id) => !have.has(id)).length,
      refused,
    };
  } finally {
    running = false;
    await writer;
    connection.abort();
    await server.stop();
    await s.close();
  }
}

const result = { scenario: `SIGKILL of Redis's master under a Maxine server registering every 10 ms; failure detection after ${DOWN_AFTER_MS} ms`, runs: RUNS };
console.log(`Redis failover, ${RUNS} runs each (SIGKILL of the master; Sentinel down-after and cluster-node-timeout ${DOWN_AFTER_MS} ms):`);
console.log("  set-up   | replica promoted (median) | Register accepted again (median, max) | acked registrations lost | refused during");
for (const [name, setup] of [["sentinel", sentinelSetup], ["cluster", clusterSetup]]) {
  const runs = [];
  for (let i = 0; i < RUNS; i++) runs.push(await run(setup));
  const promoted = stats(runs.map((r) => r.promotedMs));
  const writable = stats(runs.map((r) => r.writableMs));
  const lost = runs.reduce((n, r) => n + r.lost, 0);
  const acked = runs.reduce((n, r) => n + r.acked, 0);
  console.log(
    `  ${name.padEnd(8)} | ${fmt(promoted.median).padStart(25)} | ${fmt(writable.median).padStart(17)}, ${fmt(writable.max).padStart(10)}         | ${String(lost).padStart(6)} of ${acked} | ${runs.map((r) => r.refused).join(", ")}`,
  );
  result[name] = { promotedMedianMs: promoted.median, writableMedianMs: writable.median, writableMaxMs: writable.max, lost, acked, runs };
}
writeResult("redis-failover", result);
