import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
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
