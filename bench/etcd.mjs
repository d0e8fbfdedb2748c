// etcd as the benchmarks' side-by-side anchor: Debian's etcd-server (installed
// with apt when missing), one member on 127.0.0.1 with free ports and a
// temporary data dir on /dev/shm (so that its fsyncs cost what Maxine's
// in-memory store costs: nothing on disk), stopped by PID.
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureCommand, freePort } from "./support.mjs";

/** ensureEtcd returns the etcd binary's path, installing etcd-server with apt when it is missing. */
export function ensureEtcd() {
  return ensureCommand("etcd", "etcd-server");
}

/**
 * startEtcd runs one etcd member on loopback; resolves {addr, version, stop}
 * (pid: its process) once it serves clients. dataBase is where its data dir goes (default
 * /dev/shm, where fsync costs nothing; a disk directory to compare durable
 * writes with another durable store on the same disk).
 */
export async function startEtcd({ dataBase } = {}) {
  const bin = ensureEtcd();
  const version = execFileSync(bin, ["--version"], { encoding: "utf8" }).split("\n")[0].trim();
  const [client, peer] = [await freePort(), await freePort()];
  const base = dataBase ?? (existsDir("/dev/shm") ? "/dev/shm" : tmpdir());
  const dir = mkdtempSync(join(base, "maxine-bench-etcd-"));
  const child = spawn(
    bin,
    [
      "--name", "bench",
      "--data-dir", dir,
      "--listen-client-urls", `http://127.0.0.1:${client}`,
      "--advertise-client-urls", `http://127.0.0.1:${client}`,
      "--listen-peer-urls", `http://127.0.0.1:${peer}`,
      "--initial-advertise-peer-urls", `http://127.0.0.1:${peer}`,
      "--initial-cluster", `bench=http://127.0.0.1:${peer}`,
      "--log-level", "warn",
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  const stop = () =>
    new Promise((resolve) => {
      const done = () => {
        rmSync(dir, { recursive: true, force: true });
        resolve();
      };
      if (child.exitCode !== null || child.signalCode !== null) return done();
      child.once("exit", done);
      child.kill("SIGTERM");
    });
  let log = "";
  child.stderr.on("data", (d) => (log = (log + d).slice(-4000)));
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`etcd exited with ${child.exitCode}: ${log}`);
    try {
      const res = await fetch(`http://127.0.0.1:${client}/health`);
      if (res.ok && (await res.json()).health === "true") break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`etcd did not become healthy in 15 s: ${log}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { addr: `127.0.0.1:${client}`, version, pid: child.pid, stop };
}

function existsDir(p) {
  try {
    execFileSync("test", ["-d", p]);
    return true;
  } catch {
    return false;
  }
}
