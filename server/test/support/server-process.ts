import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";

/** MAIN is the built server entry point (npm run build makes it). */
export const MAIN = fileURLToPath(new URL("../../dist/main.js", import.meta.url));

/** HEADER_ECHO is a fixture that runs the built server and prints each call's authorization header and peer identity (fixtures/header-echo-server.mjs). */
export const HEADER_ECHO = fileURLToPath(new URL("../fixtures/header-echo-server.mjs", import.meta.url));

/** ServerProcess is a real Maxine server running as a child process on loopback. */
export interface ServerProcess {
  readonly port: number;
  readonly url: string;
  readonly child: ChildProcess;
  /** logs collected from stdout so far (pino JSON lines). */
  readonly logs: string[];
  /** stop sends SIGTERM and waits for exit; returns the exit code. */
  stop(): Promise<number | null>;
  /** kill sends SIGKILL and waits for exit. */
  kill(): Promise<void>;
}

/**
 * startServerProcess runs server/dist/main.js with the given settings
 * (environment variables, MAXINE_PORT defaults to 0) and resolves once it
 * logs that it listens; entry may name another script that does (HEADER_ECHO).
 */
export async function startServerProcess(env: Record<string, string> = {}, entry = MAIN): Promise<ServerProcess> {
  const child = spawn(process.execPath, [entry], {
    env: { ...process.env, MAXINE_HOST: "127.0.0.1", MAXINE_PORT: "0", MAXINE_LOG_LEVEL: "info", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const logs: string[] = [];
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  const exited = once(child, "exit");
  const port = await new Promise<number>((resolve, reject) => {
    let buf = "";
    const timer = setTimeout(() => reject(new Error(`server did not start in 10s: ${stderr}`)), 10_000);
    child.stdout!.on("data", (d: Buffer) => {
      buf += d.toString();
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        logs.push(line);
        try {
          const rec = JSON.parse(line) as { msg?: string; port?: number };
          if (rec.msg === "maxine listening" && rec.port !== undefined) {
            clearTimeout(timer);
            resolve(rec.port);
          }
        } catch {
          // not JSON: keep it in logs
        }
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code} before listening: ${stderr}`));
    });
  });
  const wait = async (): Promise<number | null> => {
    if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
    const [code] = (await exited) as [number | null];
    return code;
  };
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    child,
    logs,
    async stop() {
      child.kill("SIGTERM");
      return wait();
    },
    async kill() {
      child.kill("SIGKILL");
      await wait();
    },
  };
}
