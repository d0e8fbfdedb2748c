// Redis-backed replicas: three servers on one private redis-server.
// Prints:
//   1. Register on replica A -> receipt of its ADDED by a watcher on replica B,
//      p50/p99 over N registrations (one at a time);
//   2. registrations per second through Redis, spread over the 3 replicas;
//   3. Redis operations per second that keep K instances alive (heartbeat
//      sessions spread over the replicas, default TTL 10 s), from INFO
//      commandstats over a quiet window.
// Usage: node bench/redis-replicas.mjs [N=1000] [K=10000] [windowSeconds=20]
import { Http2SessionManager } from "@connectrpc/connect-node";
import { createMaxineClient, Session } from "@maxine/sdk";
import { Redis } from "ioredis";
import { fmt, startRedis, startServer, stats, writeResult } from "./support.mjs";

/** result collects the figures for docs/benchmarks/redis-replicas.json. */
const result = { scenario: "Redis mode, 3 replicas" };

const N = Number(process.argv[2] ?? 1000);
const K = Number(process.argv[3] ?? 10_000);
const WINDOW_S = Number(process.argv[4] ?? 20);

const redis = await startRedis();
const env = { MAXINE_STORE: "redis", MAXINE_REDIS_URL: redis.url, MAXINE_LOG_LEVEL: "warn" };
// support.mjs waits for the "maxine listening" info line
const replicas = await Promise.all([0, 1, 2].map(() => startServer({ ...env, MAXINE_LOG_LEVEL: "info" })));
const urls = replicas.map((r) => `http://127.0.0.1:${r.port}`);
const connections = urls.map((u) => new Http2SessionManager(u));
const clients = urls.map((baseUrl, i) => createMaxineClient({ baseUrl, sessionManager: connections[i] }));
const [a, b] = clients;

try {
  // 1. Register on A -> watcher on B.
  const ac = new AbortController();
  const waiting = new Map();
  const ready = new Promise((resolve) => {
    void (async () => {
      try {
        for await (const m of b.watchServices({ services: ["latency"] }, { signal: ac.signal })) {
          if (m.message.case === "snapshotEnd") resolve();
          if (m.message.case === "event") waiting.get(m.message.value.instance.instanceId)?.(performance.now());
        }
      } catch (err) {
        if (!ac.signal.aborted) throw err;
      }
    })();
  });
  await ready;
  const samples = [];
  for (let i = 0; i < N; i++) {
    const id = `l-${i}`;
    const got = new Promise((resolve) => waiting.set(id, resolve));
    const t0 = performance.now();
    await a.register({ instance: { service: "latency", instanceId: id, host: "10.0.0.1", port: 80 }, leaseTtl: { seconds: 600n, nanos: 0 } });
    samples.push((await got) - t0);
    waiting.delete(id);
  }
  ac.abort();
  const s1 = stats(samples);
  console.log(`register on A -> watcher on B: p50 ${fmt(s1.median)}, p99 ${fmt(s1.p99)}, min ${fmt(s1.min)}, max ${fmt(s1.max)} over ${s1.n}`);
  result.crossReplica = { p50: s1.median, p99: s1.p99, min: s1.min, max: s1.max, n: s1.n };

  // 2. Registrations per second, 3 replicas, 64 in flight per replica.
  const TOTAL = 30_000;
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    clients.flatMap((client) =>
      Array.from({ length: 64 }, async () => {
        for (let i = next++; i < TOTAL; i = next++) {
          await client.register({ instance: { service: `rate-${i % 100}`, instanceId: `r-${i}`, host: "10.0.0.2", port: 80 }, leaseTtl: { seconds: 600n, nanos: 0 } });
        }
      }),
    ),
  );
  const secs = (performance.now() - t0) / 1000;
  console.log(`registrations through Redis, 3 replicas: ${Math.round(TOTAL / secs)}/s (${TOTAL} in ${secs.toFixed(1)} s, 192 in flight)`);
  result.registrationsPerSecond = TOTAL / secs;
  {
    // For scale on this machine: the same load on ONE server with the memory store.
    const mem = await startServer({ MAXINE_LOG_LEVEL: "info" });
    const conn = new Http2SessionManager(`http://127.0.0.1:${mem.port}`);
    const client = createMaxineClient({ baseUrl: `http://127.0.0.1:${mem.port}`, sessionManager: conn });
    const M = 10_000;
    let n = 0;
    const tm = performance.now();
    await Promise.all(
      Array.from({ length: 192 }, async () => {
        for (let i = n++; i < M; i = n++) {
          await client.register({ instance: { service: `rate-${i % 100}`, instanceId: `m-${i}`, host: "10.0.0.2", port: 80 }, leaseTtl: { seconds: 600n, nanos: 0 } });
        }
      }),
    );
    const ms = (performance.now() - tm) / 1000;
    console.log(`  (baseline, one memory-store server, same client: ${Math.round(M / ms)}/s)`);
    result.memoryBaselinePerSecond = M / ms;
    conn.abort();
    await mem.stop();
  }

  // 3. Keep K instances alive with heartbeat sessions (10 per replica), default TTL 10 s.
  const sessions = [];
  const sessionErrors = new Map();
  let phase = "setup";
  for (let i = 0; i < 30; i++) {
    const s = new Session(clients[i % 3], { closeTimeoutMs: 30_000 });
    s.on("error", (err) => {
      const k = `${phase}: ${err.message}`;
      sessionErrors.set(k, (sessionErrors.get(k) ?? 0) + 1);
    });
    sessions.push(s);
  }
  await Promise.all(
    sessions.map(async (s, si) => {
      for (let i = si; i < K; i += sessions.length) {
        await s.register({ service: `alive-${i % 50}`, instanceId: `k-${i}`, host: "10.0.0.3", port: 80 }, { ttlMs: 10_000 });
      }
    }),
  );
  await new Promise((r) => setTimeout(r, 12_000)); // one TTL: steady state
  const info = new Redis(redis.url);
  const statsOf = async () => {
    const text = await info.info("commandstats");
    const out = {};
    for (const m of text.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) out[m[1]] = Number(m[2]);
    return out;
  };
  phase = "measured window";
  const before = await statsOf();
  const tw = performance.now();
  await new Promise((r) => setTimeout(r, WINDOW_S * 1000));
  const after = await statsOf();
  const span = (performance.now() - tw) / 1000;
  const per = Object.fromEntries(
    Object.keys(after)
      .map((k) => [k, (after[k] - (before[k] ?? 0)) / span])
      .filter(([k, v]) => v > 0 && k !== "info"),
  );
  const total = Object.values(per).reduce((x, y) => x + y, 0);
  const scripts = (per.evalsha ?? 0) + (per.eval ?? 0);
  console.log(
    `keeping ${K} instances alive (TTL 10 s, beats every 3.3 s, 3 replicas): ${Math.round(total)} Redis commands/s in total ` +
      `(counting the commands run inside scripts), of which ${scripts.toFixed(1)} script calls/s (round trips) and ${(per.zadd ?? 0).toFixed(0)} ZADD/s; ` +
      `per command: ${Object.entries(per)
        .sort((x, y) => y[1] - x[1])
        .map(([k, v]) => `${k} ${v.toFixed(1)}`)
        .join(", ")}`,
  );
  result.keepAlive = { instances: K, commandsPerSecond: total, scriptCallsPerSecond: scripts, perCommand: per };
  phase = "close";
  info.disconnect();
  if (sessionErrors.size > 0) console.log(`session errors (retried by the SDK): ${[...sessionErrors].map(([k, n]) => `${k} x${n}`).join("; ")}`);
  await Promise.all(sessions.map((s) => s.close()));
} finally {
  for (const c of connections) c.abort();
  await Promise.all(replicas.map((r) => r.stop()));
  await redis.stop();
}
writeResult("redis-replicas", result);
