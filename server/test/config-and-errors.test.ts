import { Code, ConnectError } from "@connectrpc/connect";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { availableParallelism } from "node:os";
import { ConfigError, DIVIDED_AMONG_WORKERS, SETTINGS, loadConfig, redactUrl, secretsOf, workerShare } from "../src/config.js";
import { Reason, RegistryError, withoutStack } from "../src/domain/errors.js";
import { reasonCodes, toConnectError } from "../src/rpc/errors.js";
import { freePortForTest } from "./support/free-port.js";
import { MAIN } from "./support/server-process.js";

describe("error mapping", () => {
  it("maps every core reason to an RPC code", () => {
    for (const reason of Object.values(Reason)) {
      expect(reasonCodes[reason], reason).toBeDefined();
      const err = toConnectError(new RegistryError(reason, "x: y"));
      expect(err.code).toBe(reasonCodes[reason]);
      expect(err.rawMessage).toBe("x: y");
    }
    expect(Object.keys(reasonCodes).sort()).toEqual(Object.values(Reason).sort());
  });

  it("turns unexpected errors into a retryable UNAVAILABLE without leaking the stack", () => {
    const err = toConnectError(new TypeError("boom at secret/path.ts:1"));
    expect(err.code).toBe(Code.Unavailable);
    expect(err.rawMessage).toBe("registry temporarily unavailable, retry");
    const passthrough = new ConnectError("as is", Code.Aborted);
    expect(toConnectError(passthrough)).toBe(passthrough);
  });

  it("builds a core error and its RPC error without a stack trace (they are answers), and leaves stack traces on for everything else", () => {
    const limit = Error.stackTraceLimit;
    const err = new RegistryError(Reason.NOT_FOUND, "service default/x has no instances");
    expect(err.stack).toBe("RegistryError: service default/x has no instances");
    const mapped = toConnectError(err);
    expect(mapped.code).toBe(Code.NotFound);
    expect(mapped.rawMessage).toBe("service default/x has no instances");
    expect(mapped.stack).not.toMatch(/\n\s+at /);
    expect(Error.stackTraceLimit).toBe(limit);
    expect(new Error("a fault").stack).toMatch(/\n\s+at /);
    expect(() => withoutStack(() => { throw new Error("make failed"); })).toThrow("make failed");
    expect(Error.stackTraceLimit).toBe(limit);
  });
});

describe("configuration", () => {
  it("has defaults for everything", () => {
    const c = loadConfig([], {});
    expect(c).toMatchObject({
      host: "127.0.0.1",
      port: 7400,
      leaseTtlDefaultMs: 10_000,
      leaseTtlMinMs: 1_000,
      leaseTtlMaxMs: 3_600_000,
      graceMs: 1_000,
      maxMessageBytes: 4 * 1024 * 1024,
      watchOverflow: "reset",
    });
  });

  it("reads flags before environment variables", () => {
    const c = loadConfig(["--port", "9000", "--grace=250ms", "--watch-overflow", "close"], {
      MAXINE_PORT: "8000",
      MAXINE_LEASE_TTL_DEFAULT: "2m",
    });
    expect(c).toMatchObject({ port: 9000, graceMs: 250, watchOverflow: "close", leaseTtlDefaultMs: 120_000 });
  });

  it.each([
    [["--port", "70000"], {}, "--port: must be an integer 0..65535, got \"70000\""],
    [[], { MAXINE_GRACE: "soon" }, "MAXINE_GRACE: must be a duration like 500ms, 10s, 5m or 1h"],
    [[], { MAXINE_WATCH_OVERFLOW: "drop" }, "MAXINE_WATCH_OVERFLOW: must be one of reset, close, got \"drop\""],
    [["--nope", "1"], {}, "--nope: unknown flag"],
    [["--port"], {}, "--port: needs a value"],
    [[], { MAXINE_LEASE_TTL_MIN: "2h" }, "MAXINE_LEASE_TTL_MIN: must not exceed MAXINE_LEASE_TTL_MAX"],
    [[], { MAXINE_LEASE_TTL_DEFAULT: "500ms" }, "MAXINE_LEASE_TTL_DEFAULT: must lie within"],
    [[], { MAXINE_CHECK_ALLOW: "10.0.0.0/8,10.1.2.3" }, 'MAXINE_CHECK_ALLOW: must be networks in CIDR notation separated by commas (10.0.0.0/8,::1/128), got "10.1.2.3"'],
    [[], { MAXINE_CHECK_ALLOW: "10.0.0.0/33" }, 'MAXINE_CHECK_ALLOW: must be networks in CIDR notation separated by commas (10.0.0.0/8,::1/128), got "10.0.0.0/33"'],
    [[], { MAXINE_CHECK_INTERVAL_MIN: "2h" }, "MAXINE_CHECK_INTERVAL_MIN: must not exceed MAXINE_CHECK_INTERVAL_MAX"],
    [[], { MAXINE_CHECK_CONCURRENCY: "0" }, "MAXINE_CHECK_CONCURRENCY: must be an integer 1..100000"],
    [[], { MAXINE_WORKERS: "0", MAXINE_STORE: "redis" }, 'MAXINE_WORKERS: must be auto or an integer 1..64, got "0"'],
    [["--workers", "65"], { MAXINE_STORE: "redis" }, '--workers: must be auto or an integer 1..64, got "65"'],
    [[], { MAXINE_WORKERS: "2", MAXINE_WORKER_IPC_BUFFER: "1000" }, "MAXINE_WORKER_IPC_BUFFER: must be an integer 1048576..1099511627776"],
  ])("rejects %j %j with a message naming the setting", (argv, env, message) => {
    expect(() => loadConfig(argv, env)).toThrow(ConfigError);
    expect(() => loadConfig(argv, env)).toThrow(message);
  });

  it("MAXINE_WORKERS: 1 by default, auto is one per CPU (at most 64), and a worker's share divides the server-wide caps", () => {
    expect(loadConfig([], {}).workers).toBe(1);
    // the memory store too: the registry then lives in the primary (docs/workers.md)
    expect(loadConfig([], { MAXINE_WORKERS: "2" })).toMatchObject({ workers: 2, store: "memory", workerIpcBuffer: 268_435_456 });
    expect(loadConfig([], { MAXINE_WORKERS: "auto", MAXINE_STORE: "redis" }).workers).toBe(Math.min(64, availableParallelism()));
    const c = loadConfig(["--workers", "3"], { MAXINE_STORE: "redis", MAXINE_MAX_CONNECTIONS: "10", MAXINE_MAX_CONNECTIONS_PER_ADDRESS: "7" });
    const share = workerShare(c);
    expect(share).toMatchObject({ maxConnections: 4, maxHeartbeatStreams: 33_334, maxWatchers: 33_334, xdsMaxStreams: 3_334, checkConcurrency: 171 });
    expect(share.maxBufferedBytes).toBe(Math.ceil(268_435_456 / 3));
    expect(share.watchMemoryBudget).toBe(Math.ceil(268_435_456 / 3));
    // per address, per principal and per connection: as configured, in each worker
    expect(share).toMatchObject({ maxConnectionsPerAddress: 7, maxHeartbeatsPerPrincipal: 100_000, maxWatchersPerConnection: 1000 });
    for (const key of Object.keys(c) as Array<keyof typeof c>) {
      if (!(DIVIDED_AMONG_WORKERS as readonly string[]).includes(key)) expect(share[key], key).toEqual(c[key]);
    }
    expect(workerShare(loadConfig([], {}))).toEqual(loadConfig([], {}));
  });

  it("documents every setting, with its flag and default, in the README table", () => {
    const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
    for (const s of SETTINGS) {
      const row = readme.split("\n").find((l) => l.startsWith(`| \`${s.env}\``));
      expect(row, `README row for ${s.env}`).toBeDefined();
      expect(row).toContain(`\`${s.flag}\``);
      expect(row).toContain(`\`${s.default}\``);
    }
  });
});

describe("secrets in settings", () => {
  const PASSWORD = "hunter2-S3cr3t";

  it.each([
    ["redis://user:pw@host:6379/0", "redis://user:***@host:6379/0"],
    ["redis://:pw@host", "redis://:***@host"],
    ["rediss://only-user@host", "rediss://***@host"],
    ["redis://u:p@ss/w@rd@host:1", "redis://u:***@host:1"],
    ["u:pw@host", "u:***@host"],
    ["redis://host:6379", "redis://host:6379"],
  ])("redactUrl(%j) is %j", (raw, redacted) => {
    expect(redactUrl(raw)).toBe(redacted);
  });

  it("secretsOf lists the Redis password as written and decoded, and nothing without one", () => {
    expect(secretsOf({ redisUrl: "redis://u:p%40ss@host" })).toEqual(["p%40ss", "p@ss"]);
    expect(secretsOf({ redisUrl: "redis://default@host" })).toEqual([]);
    expect(secretsOf({ redisUrl: "redis://host:6379" })).toEqual([]);
  });

  it.each([
    [`http://user:${PASSWORD}@x:1`, 'MAXINE_REDIS_URL: must start with redis:// or rediss://, got "http://user:***@x:1"'],
    [`redis://user:${PASSWORD}@x:port`, 'MAXINE_REDIS_URL: must be a URL like redis://127.0.0.1:6379, got "redis://user:***@x:port"'],
    [`redis://user:${PASSWORD}@x:1/db`, 'MAXINE_REDIS_URL: the path must be a database number, got "/db"'],
  ])("a bad MAXINE_REDIS_URL %j is refused without its password", (url, message) => {
    expect(() => loadConfig([], { MAXINE_REDIS_URL: url })).toThrow(message);
    expect(() => loadConfig([], { MAXINE_REDIS_URL: url })).not.toThrow(PASSWORD);
  });

  async function run(env: Record<string, string>): Promise<{ code: number | null; out: string }> {
    const child = spawn(process.execPath, [MAIN], {
      env: { ...process.env, MAXINE_HOST: "127.0.0.1", MAXINE_PORT: "0", MAXINE_LOG_LEVEL: "trace", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
    const [code] = (await once(child, "exit")) as [number | null];
    return { code, out };
  }

  it("a server given a bad URL with a password exits 2 without printing it", async () => {
    const { code, out } = await run({ MAXINE_STORE: "redis", MAXINE_REDIS_URL: `redis://admin:${PASSWORD}@127.0.0.1:notaport` });
    expect(code).toBe(2);
    expect(out).toContain('MAXINE_REDIS_URL: must be a URL like redis://127.0.0.1:6379, got "redis://admin:***@127.0.0.1:notaport"');
    expect(out).not.toContain(PASSWORD);
  });

  it("a server that cannot reach Redis exits 1 naming the address, not the password", async () => {
    const port = await freePortForTest(); // nothing listens there
    const { code, out } = await run({
      MAXINE_STORE: "redis",
      MAXINE_REDIS_URL: `redis://admin:${encodeURIComponent(PASSWORD)}@127.0.0.1:${port}/0`,
      MAXINE_REDIS_CONNECT_TIMEOUT: "500ms",
    });
    expect(code).toBe(1);
    expect(out).toContain(`could not connect to Redis at 127.0.0.1:${port} within 500 ms`);
    expect(out).not.toContain(PASSWORD);
  });
});
