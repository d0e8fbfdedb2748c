// Shared helpers for the benchmarks: start the built server as a child
// process on loopback, and summarise samples.
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { create, toBinary } from "@bufbuild/protobuf";
import { DiscoverRequestSchema } from "@maxine/sdk/gen/maxine/registry/v1/registry_pb";

export const MAIN = fileURLToPath(new URL("../server/dist/main.js", import.meta.url));

/** ensureCommand returns cmd's path, installing Debian's pkg with apt-get when it is missing. */
export function ensureCommand(cmd, pkg) {
  const found = which(cmd);
  if (found) return found;
  console.error(`${cmd} not found: installing Debian's ${pkg} (apt-get)`);
  execFileSync("apt-get", ["update"], { stdio: "inherit" });
  execFileSync("apt-get", ["install", "-y", pkg], { stdio: "inherit" });
  const installed = which(cmd);
  if (!installed) throw new Error(`${pkg} was installed but no ${cmd} is on PATH`);
  return installed;
}

function which(cmd) {
  try {
    return execFileSync("sh", ["-c", `command -v ${cmd}`], { encoding: "utf8" }).trim() || undefined;
  } catch {
    return undefined;
  }
}

/**
 * CAN_PIN reports whether processes can be pinned to CPUs here (taskset,
 * util-linux). pinned(cpus, cmd, args) returns the command and arguments
 * that run cmd, every thread of it, on those CPUs only (or cmd unchanged);
 * pinMainThread(cpus, pid) pins only a running process's main thread, so
 * that a Node.js server's event loop has its CPU and its helper threads
 * (GC, libuv) run wherever the scheduler puts them.
 */
export const CAN_PIN = spawnSync("taskset", ["-c", "0", "true"]).status === 0;
export function pinned(cpus, cmd, args) {
  return cpus === undefined || !CAN_PIN ? [cmd, args] : ["taskset", ["-c", cpus, cmd, ...args]];
}
export function pinMainThread(cpus, pid) {
  if (cpus !== undefined && CAN_PIN && spawnSync("taskset", ["-pc", cpus, String(pid)], { stdio: "ignore" }).status !== 0) {
    throw new Error(`taskset -pc ${cpus} ${pid} failed`);
  }
}

/**
 * startServer runs server/dist/main.js on 127.0.0.1 and a free port and
 * resolves {port, listening, child, stop} once it logs "maxine listening" (info level:
 * at info the server logs only its start, stop and instance removals).
 */
export function startServer(env = {}, extraNodeArgs = [], { mainThreadCpus } = {}) {
  // BENCH_SERVER_LOG=1 copies the server's log to stderr.
  // BENCH_SERVER_NODE_ARGS passes flags to the server's node (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof").
  const nodeArgs = [...(process.env.BENCH_SERVER_NODE_ARGS ?? "").split(" ").filter(Boolean), ...extraNodeArgs];
  const child = spawn(process.execPath, [...nodeArgs, MAIN], {
    env: { ...process.env, MAXINE_HOST: "127.0.0.1", MAXINE_PORT: "0", MAXINE_LOG_LEVEL: "info", ...env },
    stdio: ["ignore", "pipe", "inherit"],
  });
  return new Promise((resolve, reject) => {
    let buf = "";
    if (process.env.BENCH_SERVER_LOG === "1") child.stdout.on("data", (d) => process.stderr.write(String(d)));
    const onData = (d) => {
      buf += d;
      const m = /"port":(\d+).*"maxine listening"\}/.exec(buf);
      if (m && child.exitCode === null) {
        // the rest of the log is the bench's to read (or to drop): nothing here keeps it
        child.stdout.off("data", onData);
        child.stdout.resume();
        pinMainThread(mainThreadCpus, child.pid);
        // the line itself: with MAXINE_WORKERS > 1 it names the workers' pids
        const line = buf.split("\n").find((l) => l.includes('"maxine listening"'));
        resolve({
          port: Number(m[1]),
          listening: JSON.parse(line),
          child,
          stop: () => new Promise((r) => (child.exitCode !== null ? r() : (child.once("exit", r), child.kill("SIGTERM")))),
        });
      }
    };
    child.stdout.on("data", onData);
    child.once("exit", (code) => reject(new Error(`server exited with ${code}`)));
  });
}

/** GC_PROBE_ARGS are the server's node flags for gcProbe (bench/gc-probe.cjs). */
export const GC_PROBE_ARGS = ["--expose-gc", "--require", fileURLToPath(new URL("./gc-probe.cjs", import.meta.url))];

/** gcProbe asks a server started with GC_PROBE_ARGS for process.memoryUsage() after a full GC. */
export function gcProbe(server) {
  return new Promise((resolve) => {
    let buf = "";
    const onData = (d) => {
      buf += d;
      const m = /\{"gcProbe":(\{[^}]*\})\}/.exec(buf);
      if (m === null) return;
      server.child.stdout.off("data", onData);
      resolve(JSON.parse(m[1]));
    };
    server.child.stdout.on("data", onData);
    server.child.kill("SIGUSR2");
  });
}

/** freePort returns a port free on 127.0.0.1 now (for a process the bench starts). */
export async function freePort() {
  const srv = createServer();
  await new Promise((resolve) => srv.listen(0, "127.0.0.1", resolve));
  const { port } = srv.address();
  await new Promise((resolve) => srv.close(resolve));
  return port;
}

/**
 * startRedis runs a private redis-server (Debian's redis-server; the bench
 * exits when it is missing) on 127.0.0.1 and a free port, with no
 * persistence, in a temporary directory; stop() ends it and removes that.
 */
export async function startRedis() {
  const dir = mkdtempSync(join(tmpdir(), "maxine-bench-redis-"));
  const port = await freePort();
  const child = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  child.once("error", (err) => {
    console.error(`redis-server: ${err.message} (install it: apt-get install -y redis-server)`);
    process.exit(1);
  });
  let out = "";
  await new Promise((resolve) => child.stdout.on("data", (d) => (out += d) && out.includes("Ready to accept connections") && resolve()));
  return {
    url: `redis://127.0.0.1:${port}`,
    async stop() {
      const exited = once(child, "exit");
      child.kill("SIGTERM");
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * h2loadDiscover drives gRPC (or, protocol "json", Connect JSON over HTTP/1.1) Discover calls of service discover-bench with
 * h2load (nghttp2's C client; h2load is its path) for seconds after 2 s of
 * warm-up, over connections HTTP/2 connections with streams concurrent
 * streams each, pinned to cpus (pinned), and returns what loadgen's
 * discover would: req/s, p50, p99, errors, and the client's CPU in cores.
 * h2load checks the HTTP status only, not grpc-status.
 */
export function h2loadDiscover(h2load, port, { seconds, connections, streams, cpus, protocol = "grpc" }) {
  const dir = mkdtempSync(join(tmpdir(), "maxine-h2load-"));
  try {
    const msg = toBinary(DiscoverRequestSchema, create(DiscoverRequestSchema, { service: "discover-bench" }));
    const frame = Buffer.alloc(5 + msg.length); // one gRPC message frame, uncompressed
    frame.writeUInt32BE(msg.length, 1);
    frame.set(msg, 5);
    // protocol "json": Connect JSON over HTTP/1.1 (--h1), one request at a time per connection (-m 1: no pipelining)
    writeFileSync(join(dir, "body"), protocol === "json" ? JSON.stringify({ service: "discover-bench" }) : frame);
    const log = join(dir, "log");
    const args = ["-c", String(connections), "-m", String(protocol === "json" ? 1 : streams), "-t", "1", "-D", String(seconds), "--warm-up-time=2", "-d", join(dir, "body")];
    if (protocol === "json") args.push("--h1", "-H", "content-type: application/json", `--log-file=${log}`);
    else args.push("-H", "content-type: application/grpc", "-H", "te: trailers", `--log-file=${log}`);
    args.push(`http://127.0.0.1:${port}/maxine.registry.v1.RegistryService/Discover`);
    // bash's `times` prints its children's CPU time (user, system) on its second line: the client's CPU
    const [cmd, cmdArgs] = pinned(cpus, h2load, args);
    const r = spawnSync("bash", ["-c", '"$@"; rc=$?; times; exit $rc', "bash", cmd, ...cmdArgs], { encoding: "utf8" });
    const times = /\n(\d+)m([\d.]+)s (\d+)m([\d.]+)s\s*$/.exec(r.stdout);
    const cpuSeconds = times === null ? NaN : Number(times[1]) * 60 + Number(times[2]) + Number(times[3]) * 60 + Number(times[4]);
    const done = /requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded/.exec(r.stdout);
    const ok2xx = /status codes: (\d+) 2xx/.exec(r.stdout);
    if (r.status !== 0 || done === null || ok2xx === null) throw new Error(`h2load failed (${r.status}): ${r.stdout}${r.stderr}`);
    const s = stats(readFileSync(log, "utf8").trim().split("\n").map((l) => Number(l.split("\t")[2]) / 1000));
    // h2load's CPU covers its warm-up too
    return { per_second: Number(done[3]) / seconds, p50_ms: s.median, p99_ms: s.p99, errors: Number(done[1]) - Number(done[3]), client_cpu: cpuSeconds / (seconds + 2) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** stats returns median, p99, min and max of samples (ms). */
export function stats(samples) {
  const s = [...samples].sort((a, b) => a - b);
  const q = (p) => s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)];
  return { n: s.length, median: q(0.5), p99: q(0.99), min: s[0], max: s[s.length - 1] };
}

export const fmt = (ms) => `${ms.toFixed(1)} ms`;

const ROOT = fileURLToPath(new URL("..", import.meta.url));
/** LOADGEN is the Go load client's binary, built by buildLoadgen. */
export const LOADGEN = `${ROOT}.tmp/bin/loadgen`;
/** OUT_DIR is where benchmarks write their JSON and SVG results. */
export const OUT_DIR = `${ROOT}docs/benchmarks`;

/** buildLoadgen builds bench/loadgen (Go) into .tmp/bin. */
export function buildLoadgen() {
  execFileSync("go", ["-C", `${ROOT}bench/loadgen`, "build", "-o", LOADGEN, "."], { stdio: "inherit" });
}

/**
 * loadgen runs one scenario of the Go load client and resolves with its JSON
 * result; onLine receives its stderr lines (progress markers such as READY)
 * and the child, whose stdin takes commands (the storm's "GO"); env is
 * added to its environment (e.g. GOMAXPROCS); cpus pins it (pinned).
 */
export function loadgen(scenario, args, onLine = (line) => process.stderr.write(`${line}\n`), env = {}, { cpus } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(...pinned(cpus, LOADGEN, [scenario, ...args]), { stdio: ["pipe", "pipe", "pipe"], env: { ...process.env, ...env } });
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => {
      err += d;
      const lines = err.split("\n");
      err = lines.pop();
      for (const l of lines) onLine(l, child);
    });
    child.once("exit", (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`loadgen ${scenario} exited with ${code}`))));
  });
}

/** writeResult writes docs/benchmarks/<name>.json and, when given, <name>.svg. */
export function writeResult(name, data, svg) {
  mkdirSync(OUT_DIR, { recursive: true });
  writeFileSync(`${OUT_DIR}/${name}.json`, JSON.stringify({ ...data, date: new Date().toISOString() }, null, 2) + "\n");
  if (svg !== undefined) writeFileSync(`${OUT_DIR}/${name}.svg`, svg);
  console.log(`wrote docs/benchmarks/${name}.json${svg !== undefined ? ` and ${name}.svg` : ""}`);
}
