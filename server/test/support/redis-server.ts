import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { freePortForTest } from "./free-port.js";

/**
 * RedisProcess is a redis-server this test started on 127.0.0.1 and a free
 * port, with no persistence, in its own temporary directory. It is never a
 * Redis someone else left running.
 */
export interface RedisProcess {
  readonly port: number;
  readonly url: string;
  /** stop ends the server (SIGTERM to its PID) and waits for it to exit; its data is gone. */
  stop(): Promise<void>;
  /** start runs it again on the same port, empty. */
  start(): Promise<void>;
  /** pause freezes the server (SIGSTOP): connections stay open, nothing answers. */
  pause(): void;
  /** resume unfreezes it (SIGCONT), data intact. */
  resume(): void;
  /** close stops it and removes its directory. */
  close(): Promise<void>;
}

/** redisServerPath finds redis-server or fails loudly: Redis-mode tests never skip. */
export function redisServerPath(): string {
  const r = spawnSync("sh", ["-c", "command -v redis-server"], { encoding: "utf8" });
  const path = r.stdout.trim();
  if (r.status !== 0 || path === "") {
    throw new Error("redis-server not found on PATH: install it (apt-get install -y redis-server); the Redis-mode tests need it and never skip");
  }
  return path;
}

/** startRedis starts a private redis-server (plus extra arguments, e.g. --replicaof) and resolves once it accepts connections. */
export async function startRedis(extra: readonly string[] = []): Promise<RedisProcess> {
  const bin = redisServerPath();
  const dir = mkdtempSync(join(tmpdir(), "maxine-redis-"));
  const port = await freePortForTest();
  let child: ChildProcess | undefined;

  const start = async (): Promise<void> => {
    const c = spawn(bin, ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir, ...extra], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    child = c;
    let out = "";
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`redis-server did not start in 10 s: ${out}`)), 10_000);
      const onData = (d: Buffer): void => {
        out += d.toString();
        if (out.includes("Ready to accept connections")) {
          clearTimeout(timer);
          resolve();
        }
      };
      c.stdout!.on("data", onData);
      c.stderr!.on("data", onData);
      c.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`redis-server exited with ${code}: ${out}`));
      });
    });
  };

  const stop = async (): Promise<void> => {
    const c = child;
    child = undefined;
    if (c === undefined || c.exitCode !== null || c.signalCode !== null) return;
    const exited = once(c, "exit");
    process.kill(c.pid!, "SIGCONT"); // in case a test paused it
    process.kill(c.pid!, "SIGTERM");
    await exited;
  };

  await start();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    stop,
    start,
    pause() {
      if (child !== undefined) process.kill(child.pid!, "SIGSTOP");
    },
    resume() {
      if (child !== undefined) process.kill(child.pid!, "SIGCONT");
    },
    async close() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** SentinelProcess is a Redis Sentinel this test started on 127.0.0.1, monitoring one master as "mymaster". */
export interface SentinelProcess {
  readonly address: string;
  close(): Promise<void>;
}

/** startSentinel runs redis-server in Sentinel mode (a private config file) monitoring 127.0.0.1:masterPort. */
export async function startSentinel(masterPort: number): Promise<SentinelProcess> {
  const bin = redisServerPath();
  const dir = mkdtempSync(join(tmpdir(), "maxine-sentinel-"));
  const port = await freePortForTest();
  const conf = join(dir, "sentinel.conf");
  writeFileSync(
    conf,
    [
      `port ${port}`,
      "bind 127.0.0.1",
      `dir ${dir}`,
      `sentinel monitor mymaster 127.0.0.1 ${masterPort} 1`,
      "sentinel down-after-milliseconds mymaster 1000",
      "sentinel failover-timeout mymaster 5000",
      "",
    ].join("\n"),
  );
  const child = spawn(bin, [conf, "--sentinel"], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`redis sentinel did not start in 10 s: ${out}`)), 10_000);
    const onData = (d: Buffer): void => {
      out += d.toString();
      if (out.includes("+monitor master mymaster")) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`redis sentinel exited with ${code}: ${out}`));
    });
  });
  return {
    address: `127.0.0.1:${port}`,
    async close() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = once(child, "exit");
        process.kill(child.pid!, "SIGTERM");
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** RedisClusterProcess is a Redis Cluster this test started: private redis-servers on 127.0.0.1, masters and one replica each. */
export interface RedisClusterProcess {
  /** seeds are every node's "host:port" (MAXINE_REDIS_CLUSTER). */
  readonly seeds: string[];
  readonly nodes: RedisProcess[];
  /** command runs one command on the node at port and returns its reply. */
  command(port: number, ...args: string[]): Promise<unknown>;
  /** shardOf is the port of the master serving key's slot, and the port of one of its replicas. */
  shardOf(key: string): Promise<{ master: number; replica: number }>;
  close(): Promise<void>;
}

/**
 * startRedisCluster starts masters * 2 redis-servers with --cluster-enabled
 * (each with its own bus port, so no port + 10000 arithmetic), joins them with
 * `redis-cli --cluster create --cluster-replicas 1`, and resolves once every
 * node reports cluster_state:ok and every replica is in sync.
 */
export async function startRedisCluster(masters = 3): Promise<RedisClusterProcess> {
  const cli = spawnSync("sh", ["-c", "command -v redis-cli"], { encoding: "utf8" }).stdout.trim();
  if (cli === "") throw new Error("redis-cli not found on PATH: install it (apt-get install -y redis-tools); the Redis Cluster tests need it and never skip");
  const nodes: RedisProcess[] = [];
  const close = async (): Promise<void> => {
    await Promise.all(nodes.map((n) => n.close()));
  };
  try {
    for (let i = 0; i < masters * 2; i++) {
      const bus = await freePortForTest();
      nodes.push(await startRedis(["--cluster-enabled", "yes", "--cluster-port", String(bus), "--cluster-node-timeout", "2000", "--cluster-config-file", "nodes.conf"]));
    }
    const seeds = nodes.map((n) => `127.0.0.1:${n.port}`);
    const created = spawnSync(cli, ["--cluster", "create", ...seeds, "--cluster-replicas", "1", "--cluster-yes"], { encoding: "utf8", timeout: 30_000 });
    if (created.status !== 0) throw new Error(`redis-cli --cluster create failed (${created.status}): ${created.stdout}${created.stderr}`);
    const command = async (port: number, ...args: string[]): Promise<unknown> => {
      const r = new Redis({ host: "127.0.0.1", port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      try {
        await r.connect();
        return await r.call(args[0]!, ...args.slice(1));
      } finally {
        r.disconnect();
      }
    };
    const deadline = Date.now() + 30_000;
    for (;;) {
      const states = await Promise.all(nodes.map((n) => command(n.port, "CLUSTER", "INFO").then(String)));
      const replication = await Promise.all(nodes.map((n) => command(n.port, "INFO", "replication").then(String)));
      // ... and every node lists a replica for every shard (what shardOf reads)
      const slots = (await Promise.all(nodes.map((n) => command(n.port, "CLUSTER", "SLOTS")))) as unknown[][][];
      const ok =
        states.every((s) => s.includes("cluster_state:ok")) &&
        replication.filter((s) => s.includes("master_link_status:up")).length === masters &&
        slots.every((shards) => shards.length === masters && shards.every((shard) => shard.length >= 4));
      if (ok) break;
      if (Date.now() > deadline) throw new Error(`Redis Cluster not ready in 30 s: ${states.map((s) => s.match(/cluster_state:\w+/)?.[0]).join(", ")}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    // shardOf waits (15 s at most) for the key's shard to list a replica whose
    // link to its master is up: after a failover (an earlier test's) the
    // demoted master rejoins as a replica a moment later.
    const shardOf = async (key: string): Promise<{ master: number; replica: number }> => {
      const slot = Number(await command(nodes[0]!.port, "CLUSTER", "KEYSLOT", key));
      const until = Date.now() + 15_000;
      for (;;) {
        const shards = (await command(nodes[0]!.port, "CLUSTER", "SLOTS")) as Array<[number, number, ...Array<[string, number, string]>]>;
        const shard = shards.find(([from, to]) => slot >= from && slot <= to);
        if (shard !== undefined && shard.length >= 4) {
          const replica = Number(shard[3]![1]);
          if (String(await command(replica, "INFO", "replication")).includes("master_link_status:up")) return { master: Number(shard[2]![1]), replica };
        }
        if (Date.now() > until) throw new Error(`no master with a replica in sync serves slot ${slot} after 15 s`);
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    return { seeds, nodes, command, shardOf, close };
  } catch (err) {
    await close();
    throw err;
  }
}
