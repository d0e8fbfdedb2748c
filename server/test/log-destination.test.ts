import { spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { startServerProcess } from "./support/server-process.js";

// The log destination (server/src/log-destination.ts) in a child process
// writing to a real pipe: lines go out off the event loop, a reader that
// falls behind costs dropped (and counted) lines rather than memory, and a
// process whose reader is gone still exits at once with lines waiting
// (sonic-boom 4's synchronous flush retried EPIPE forever there).

const DESTINATION = fileURLToPath(new URL("../dist/log-destination.js", import.meta.url));

/** child runs script (an ES module body with LogDestination imported) with stdout a pipe. */
function child(script: string) {
  const source = `import { LogDestination } from ${JSON.stringify(DESTINATION)};\n${script}`;
  const proc = spawn(process.execPath, ["--input-type=module", "-e", source], { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  proc.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  const exited = once(proc, "exit").then(([code]) => code as number | null);
  return { proc, exited, stderr: () => stderr };
}

describe("log destination", () => {
  it("writes every line, in order, when the reader keeps up", async () => {
    const c = child(`
      const out = new LogDestination(1, 1 << 20);
      for (let i = 0; i < 5000; i++) out.write(JSON.stringify({ i }) + "\\n");
      setTimeout(() => process.exit(0), 50);
    `);
    let text = "";
    c.proc.stdout!.on("data", (d: Buffer) => (text += d.toString()));
    expect(await c.exited).toBe(0);
    const seen = text.trim().split("\n").map((l) => (JSON.parse(l) as { i: number }).i);
    expect(seen).toEqual(Array.from({ length: 5000 }, (_, i) => i));
  });

  it("exits at once with lines waiting when the reader is gone (EPIPE), and says so on stderr", async () => {
    const c = child(`
      const out = new LogDestination(1, 1 << 20);
      setTimeout(() => {
        for (let i = 0; i < 100; i++) out.write("x".repeat(1000) + "\\n");
        process.exit(0); // the lines still wait: the exit handler flushes them synchronously
      }, 300);
    `);
    c.proc.stdout!.destroy(); // the reader goes before the child writes
    const started = performance.now();
    const code = await Promise.race([c.exited, new Promise<string>((r) => setTimeout(() => r("hung"), 5000).unref())]);
    if (code === "hung") c.proc.kill("SIGKILL");
    expect(code).toBe(0);
    expect(performance.now() - started).toBeLessThan(5000);
    expect(c.stderr()).toContain("log output failed (EPIPE)");
  });

  it("drops and counts lines past maxBytes while the reader does not read, without blocking the event loop", async () => {
    const c = child(`
      const out = new LogDestination(1, 64 * 1024);
      const started = performance.now();
      for (let i = 0; i < 2000; i++) out.write(JSON.stringify({ i, pad: "y".repeat(1000) }) + "\\n");
      const took = performance.now() - started;
      setTimeout(() => {
        process.stderr.write(JSON.stringify({ dropped: out.dropped, took }) + "\\n");
        process.once("message", () => {}); // keep nothing else alive
      }, 200);
      setTimeout(() => process.exit(0), 1500);
    `);
    c.proc.stdout!.pause(); // the pipe fills (64 KB) and the destination's buffer after it
    while (!c.stderr().includes("dropped")) await new Promise((r) => setTimeout(r, 20));
    const report = JSON.parse(c.stderr().trim().split("\n").pop()!) as { dropped: number; took: number };
    let received = 0;
    let rest = "";
    c.proc.stdout!.on("data", (d: Buffer) => {
      rest += d.toString();
      const lines = rest.split("\n");
      rest = lines.pop()!;
      received += lines.length;
    });
    c.proc.stdout!.resume();
    expect(await c.exited).toBe(0);
    expect(report.dropped).toBeGreaterThan(0);
    expect(report.took).toBeLessThan(1000); // 2,000 writes returned without waiting for the reader
    expect(received + report.dropped).toBe(2000); // every line was either written or counted
  });

  it("a server whose log reader stops reading keeps answering and counts the dropped lines in maxine_log_dropped_lines_total", async () => {
    const server = await startServerProcess({ MAXINE_LOG_LEVEL: "debug", MAXINE_LOG_BUFFER: "4096" });
    try {
      server.child.stdout!.pause();
      server.child.stdout!.removeAllListeners("data"); // nothing reads the server's log now
      const calls = [];
      for (let i = 0; i < 400; i++) {
        calls.push(
          fetch(`${server.url}/maxine.registry.v1.RegistryService/ListServices`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ namespace: `n${i}` }),
          }).then((r) => r.status),
        );
      }
      expect(new Set(await Promise.all(calls))).toEqual(new Set([200]));
      const metrics = await (await fetch(`${server.url}/metrics`)).text();
      const dropped = Number(/^maxine_log_dropped_lines_total (\d+)/m.exec(metrics)?.[1]);
      expect(dropped).toBeGreaterThan(0);
    } finally {
      server.child.stdout!.resume();
      expect(await server.stop()).toBe(0);
    }
  }, 20_000);
});
