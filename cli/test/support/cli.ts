import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";

/** BIN is the `maxine` command as npm links it (node_modules/.bin/maxine points here). */
export const BIN = fileURLToPath(new URL("../../bin/maxine.js", import.meta.url));

/** CliResult is how one CLI run ended. */
export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** cliEnv is the environment CLI runs get: the test's, without MAXINE_* settings or NO_COLOR leaking in. */
export function cliEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("MAXINE_") && k !== "NO_COLOR") env[k] = v;
  return { ...env, ...extra };
}

/** runCli runs `maxine args...` as a child process (stdout a pipe, so never a terminal) and resolves when it exits (bounded). */
export function runCli(args: readonly string[], env: Record<string, string> = {}, timeoutMs = 15_000): Promise<CliResult> {
  const child = spawnCli(args, env);
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`maxine ${args.join(" ")} did not exit in ${timeoutMs} ms; stdout ${stdout} stderr ${stderr}`));
    }, timeoutMs);
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** spawnCli starts `maxine args...` and returns the child (stdio piped). */
export function spawnCli(args: readonly string[], env: Record<string, string> = {}): ChildProcess {
  return spawn(process.execPath, [BIN, ...args], { env: cliEnv(env), stdio: ["ignore", "pipe", "pipe"] });
}

/** Lines collects a child's stdout line by line and waits (bounded) for a line that matches. */
export class Lines {
  readonly lines: string[] = [];
  private buf = "";

  constructor(child: ChildProcess) {
    child.stdout!.on("data", (d: Buffer) => {
      this.buf += d.toString();
      let nl;
      while ((nl = this.buf.indexOf("\n")) >= 0) {
        this.lines.push(this.buf.slice(0, nl));
        this.buf = this.buf.slice(nl + 1);
      }
    });
  }

  /** waitFor resolves with the first line (from index from on) that pred accepts, and its index. */
  async waitFor(pred: (line: string) => boolean, timeoutMs = 10_000, from = 0): Promise<{ line: string; index: number }> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      for (let i = from; i < this.lines.length; i++) if (pred(this.lines[i]!)) return { line: this.lines[i]!, index: i };
      if (Date.now() > deadline) throw new Error(`no matching line in ${timeoutMs} ms; got:\n${this.lines.join("\n")}`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }
}

/** exited resolves with a child's exit code once it exits. */
export function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once("exit", (code) => resolve(code)));
}
