import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import type { Scope } from "./scope.js";

/**
 * spawnReady runs `node args...` and resolves once it printed "ready" (10 s
 * at most; its stderr is in the error otherwise). scope kills it by PID at
 * the end if the test did not.
 */
export async function spawnReady(scope: Scope, args: readonly string[]): Promise<ChildProcess> {
  const child = spawn(process.execPath, [...args], { stdio: ["ignore", "pipe", "pipe"] });
  scope.defer(child, async (c) => {
    if (c.exitCode === null && c.signalCode === null) {
      process.kill(c.pid!, "SIGKILL");
      await once(c, "exit");
    }
  });
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  const lines = createInterface({ input: child.stdout! });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the child was not ready in 10 s: ${stderr}`)), 10_000);
    lines.on("line", (l) => {
      if (l === "ready") {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`the child exited with ${code} before "ready": ${stderr}`));
    });
  });
  return child;
}
