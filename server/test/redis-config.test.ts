import { spawn } from "node:child_process";
import { once } from "node:events";
import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../src/config.js";
import { MAIN } from "./support/server-process.js";
import { freePortForTest } from "./support/free-port.js";

// The Redis settings: defaults, validation naming the setting, and a
// server that cannot reach Redis at start exits with the address named.

describe("Redis settings", () => {
  it("default to the memory store and a local Redis", () => {
    expect(loadConfig([], {})).toMatchObject({
      store: "memory",
      redisUrl: "redis://127.0.0.1:6379",
      redisSentinels: "",
      redisSentinelName: "mymaster",
      redisCluster: "",
      redisRegistry: "default",
      redisRenewIntervalMs: 250,
      redisLockTtlMs: 2000,
      redisRecoveryWindowMs: 5000,
    });
    expect(loadConfig(["--store", "redis", "--redis-sentinels", "s1:26379, s2:26379"], {})).toMatchObject({
      store: "redis",
      redisSentinels: "s1:26379,s2:26379",
    });
  });

  it.each([
    [{ MAXINE_STORE: "etcd" }, 'MAXINE_STORE: must be one of memory, redis, got "etcd"'],
    [{ MAXINE_REDIS_URL: "http://x:1" }, "MAXINE_REDIS_URL: must start with redis:// or rediss://"],
    [{ MAXINE_REDIS_URL: "redis://x:1/abc" }, "MAXINE_REDIS_URL: the path must be a database number"],
    [{ MAXINE_REDIS_SENTINELS: "s1" }, 'MAXINE_REDIS_SENTINELS: must be a comma-separated list of host:port, got "s1"'],
    [{ MAXINE_REDIS_REGISTRY: "a}b" }, "MAXINE_REDIS_REGISTRY: must be 1..64 letters"],
    [{ MAXINE_REDIS_CLUSTER: "n1" }, 'MAXINE_REDIS_CLUSTER: must be a comma-separated list of host:port, got "n1"'],
    [{ MAXINE_REDIS_CLUSTER: "n1:7000", MAXINE_REDIS_SENTINELS: "s1:26379" }, "MAXINE_REDIS_CLUSTER: set it or MAXINE_REDIS_SENTINELS, not both"],
    [{ MAXINE_REDIS_CLUSTER: "n1:7000", MAXINE_REDIS_URL: "redis://:pw@n1:7000/2" }, "MAXINE_REDIS_URL: a Redis Cluster has only db 0"],
    [{ MAXINE_STORE: "redis", MAXINE_REDIS_RENEW_INTERVAL: "600ms" }, "MAXINE_REDIS_RENEW_INTERVAL: must be at most half of MAXINE_LEASE_TTL_MIN"],
  ])("rejects %j with a message naming the setting", (env, message) => {
    expect(() => loadConfig([], env)).toThrow(ConfigError);
    expect(() => loadConfig([], env)).toThrow(message);
  });

  it("a server that cannot reach Redis at start exits 1, naming the address", async () => {
    const port = await freePortForTest(); // nothing listens there
    const child = spawn(process.execPath, [MAIN], {
      env: {
        ...process.env,
        MAXINE_PORT: "0",
        MAXINE_STORE: "redis",
        MAXINE_REDIS_URL: `redis://127.0.0.1:${port}`,
        MAXINE_REDIS_CONNECT_TIMEOUT: "500ms",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
    const [code] = (await once(child, "exit")) as [number | null];
    expect(code).toBe(1);
    expect(out).toContain(`could not connect to Redis at 127.0.0.1:${port} within 500 ms`);
    expect(out).toContain("maxine could not start");
  });
});
